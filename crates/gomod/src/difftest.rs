use crate::*;
#[test]
#[ignore]
fn difftest() {
    let input = std::fs::read_to_string("/tmp/gomoddiff/inputs.txt").unwrap();
    let mut out = String::new();
    for line in input.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let b = |x: bool| if x { "1" } else { "0" };
        let o = match f[0] {
            "semver" => format!("{} {} {} {}", b(is_valid_semver(f[1])), canonical(f[1]).unwrap_or_default(),
                match compare(f[1], f[2]) { std::cmp::Ordering::Less => -1, std::cmp::Ordering::Equal => 0, _ => 1 },
                b(is_pseudo_version(f[1]))),
            "path" => format!("{} {}", b(ModulePath::new(f[1]).is_ok()),
                ModulePath::from_escaped(f[1]).map(|p| p.as_str().to_string()).unwrap_or("-".into())),
            "file" => b(crate::path::check_file_path(f[1]).is_ok()).to_string(),
            "check" => b(ModulePath::new(f[1]).and_then(|p| Version::new(f[2]).and_then(|v| check_module_version(&p, &v))).is_ok()).to_string(),
            "match" => match path_match(f[1], f[2]) { Some(true) => "1".into(), Some(false) => "0".into(), None => "err".into() },
            "prefix" => b(match_prefix_patterns(f[1], f[2])).to_string(),
            _ => unreachable!(),
        };
        out.push_str(&o);
        out.push('\n');
    }
    std::fs::write("/tmp/gomoddiff/rust.txt", out).unwrap();
}
