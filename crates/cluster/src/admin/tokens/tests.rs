use super::*;

use std::os::unix::fs::PermissionsExt;

/// Writes a token file the way an operator should: readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[test]
fn a_token_file_others_may_read_is_refused_with_the_chmod_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.tokens");
    write_private(&path, "alice:aaaaaaaaaaaaaaaaaaaa\n").unwrap();
    assert!(TokenFile::load(&path).is_ok());
    for mode in [0o644, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = TokenFile::load(&path).err().expect("refused").to_string();
        assert!(err.contains("admin.token_file") && err.contains(&format!("chmod 600 {}", path.display())), "{err}");
    }
}

#[test]
fn a_single_token_file_is_the_token_named_admin() {
    let tokens = Tokens::parse("0123456789abcdef0123\n").unwrap();
    assert_eq!(tokens.who("0123456789abcdef0123"), Some(DEFAULT_NAME));
    assert_eq!(tokens.who("0123456789abcdef012"), None);
}

#[test]
fn named_tokens_say_who() {
    let tokens = Tokens::parse("# operators\nalice:aaaaaaaaaaaaaaaaaaaa\nci-bot: bbbbbbbbbbbbbbbbbbbb\n").unwrap();
    assert_eq!(tokens.count(), 2);
    assert_eq!(tokens.who("aaaaaaaaaaaaaaaaaaaa"), Some("alice"));
    assert_eq!(tokens.who("bbbbbbbbbbbbbbbbbbbb"), Some("ci-bot"));
    assert_eq!(tokens.who("cccccccccccccccccccc"), None);
}

#[test]
fn bad_token_files_are_refused_with_the_reason() {
    let err = |text: &str| Tokens::parse(text).unwrap_err().to_string();
    assert!(err("").contains("holds no token"));
    assert!(err("short").contains("at least 16"));
    assert!(err("a:aaaaaaaaaaaaaaaaaaaa\nnoname\n").contains("line 2: expected name:token"));
    assert!(err("a:aaaaaaaaaaaaaaaaaaaa\na:bbbbbbbbbbbbbbbbbbbb\n").contains("used twice"));
    assert!(err("bad name:aaaaaaaaaaaaaaaaaaaa\nb:bbbbbbbbbbbbbbbbbbbb").contains("must be letters"));
}

#[test]
fn a_bad_file_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.tokens");
    let missing = TokenFile::load(&path).err().unwrap().to_string();
    assert!(missing.starts_with(&format!("cannot read admin.token_file {}: ", path.display())), "{missing}");
    write_private(&path, "short\n").unwrap();
    let short = TokenFile::load(&path).err().unwrap().to_string();
    assert!(short.starts_with(&format!("admin.token_file {}: ", path.display())) && short.contains("at least 16"), "{short}");
}

/// Lets the next call look at the file now instead of after `RECHECK`.
fn due(file: &TokenFile) {
    let mut watched = file.state.lock().unwrap();
    watched.checked = Instant::now().checked_sub(RECHECK).unwrap_or(watched.checked);
}

#[test]
fn a_changed_file_is_read_again_and_a_bad_one_keeps_the_tokens_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.tokens");
    write_private(&path, "alice:aaaaaaaaaaaaaaaaaaaa\n").unwrap();
    let file = TokenFile::load(&path).unwrap();
    assert_eq!(file.who("aaaaaaaaaaaaaaaaaaaa").as_deref(), Some("alice"));

    // Rotation: the new token joins, then the old one leaves.
    write_private(&path, "alice:aaaaaaaaaaaaaaaaaaaa\nbob:bbbbbbbbbbbbbbbbbbbb\n").unwrap();
    due(&file);
    assert_eq!(file.who("bbbbbbbbbbbbbbbbbbbb").as_deref(), Some("bob"));
    write_private(&path, "bob:bbbbbbbbbbbbbbbbbbbb\n").unwrap();
    due(&file);
    assert_eq!(file.who("aaaaaaaaaaaaaaaaaaaa"), None);
    assert_eq!(file.who("bbbbbbbbbbbbbbbbbbbb").as_deref(), Some("bob"));

    // Not re-read before RECHECK has passed since the last look.
    write_private(&path, "carol:cccccccccccccccccccc\n").unwrap();
    assert_eq!(file.who("cccccccccccccccccccc"), None);
    due(&file);
    assert_eq!(file.who("cccccccccccccccccccc").as_deref(), Some("carol"));

    // A broken, emptied or removed file keeps the tokens in force.
    for broken in ["carol:short\n", "", "dave:dddddddddddddddddddd\nnoname\n"] {
        write_private(&path, broken).unwrap();
        due(&file);
        assert_eq!(file.who("cccccccccccccccccccc").as_deref(), Some("carol"), "after writing {broken:?}");
        assert_eq!(file.who("dddddddddddddddddddd"), None);
    }
    std::fs::remove_file(&path).unwrap();
    due(&file);
    assert_eq!(file.who("cccccccccccccccccccc").as_deref(), Some("carol"));

    // Fixed again: read again.
    write_private(&path, "erin:eeeeeeeeeeeeeeeeeeee\n").unwrap();
    due(&file);
    assert_eq!(file.who("eeeeeeeeeeeeeeeeeeee").as_deref(), Some("erin"));
    assert_eq!(file.who("cccccccccccccccccccc"), None);
}
