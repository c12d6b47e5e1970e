use super::*;

fn catalog(dir: &tempfile::TempDir) -> Catalog {
    Catalog::new(Db::open(&dir.path().join("db")).unwrap())
}

fn put_version(info: &str, go_mod: &str, sha: char) -> CatalogOp {
    let zip = ZipRef { sha256: sha.to_string().repeat(64).parse().unwrap(), size: 1, h1: format!("h1:{sha}"), fetched_at_ms: 0 };
    let parts = VersionParts { info: Some(info.into()), go_mod: Some(go_mod.into()), zip: Some(zip) };
    CatalogOp::PutVersion { module: ModulePath::new("example.com/m").unwrap(), version: Version::new("v1.0.0").unwrap(), parts }
}

#[test]
fn the_first_recorded_parts_of_a_version_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(&dir);
    let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
    assert_eq!(cat.apply(&put_version("first", "module a\n", 'a')).unwrap(), Vec::<&str>::new());
    assert_eq!(cat.apply(&put_version("first", "module a\n", 'a')).unwrap(), Vec::<&str>::new(), "the same again is no conflict");
    assert_eq!(cat.apply(&put_version("second", "module b\n", 'b')).unwrap(), ["info", "mod", "zip"]);
    assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(cat.go_mod(&m, &v).unwrap().as_deref(), Some(&b"module a\n"[..]));
    assert_eq!(cat.zip(&m, &v).unwrap().map(|z| z.h1), Some("h1:a".to_string()));

    cat.apply(&CatalogOp::Purge { module: m.clone(), version: v.clone() }).unwrap();
    assert_eq!(cat.apply(&put_version("after purge", "module c\n", 'c')).unwrap(), Vec::<&str>::new());
    assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"after purge"[..]));
}

#[test]
fn the_same_zip_fetched_again_keeps_its_first_fetch_time_and_old_records_read_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(&dir);
    let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
    let put = |at: u64| {
        let zip = ZipRef { sha256: "a".repeat(64).parse().unwrap(), size: 1, h1: "h1:a".into(), fetched_at_ms: at };
        let parts = VersionParts { zip: Some(zip), ..Default::default() };
        CatalogOp::PutVersion { module: m.clone(), version: v.clone(), parts }
    };
    assert_eq!(cat.apply(&put(1000)).unwrap(), Vec::<&str>::new());
    assert_eq!(cat.apply(&put(2000)).unwrap(), Vec::<&str>::new(), "the same zip fetched later is no conflict");
    assert_eq!(cat.zip(&m, &v).unwrap().map(|z| z.fetched_at_ms), Some(1000), "first writer wins");

    let old = format!(r#"{{"sha256":"{}","size":1,"h1":"h1:x"}}"#, "ab".repeat(32));
    let old: ZipRef = serde_json::from_str(&old).unwrap();
    assert_eq!(old.fetched_at_ms, 0);
    assert!(!serde_json::to_string(&old).unwrap().contains("fetched_at_ms"), "unknown stays absent");
}

#[test]
fn within_one_batch_the_first_write_of_a_part_wins_too() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(&dir);
    let mut pending = Pending::default();
    let first = cat.plan(&put_version("first", "module a\n", 'a'), &mut pending).unwrap();
    let second = cat.plan(&put_version("second", "module b\n", 'b'), &mut pending).unwrap();
    assert_eq!((first.written.len(), first.kept.len()), (3, 0));
    assert!(second.ops.is_empty(), "{:?}", second.ops);
    assert_eq!(second.kept, ["info", "mod", "zip"]);
    let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
    assert_eq!(cat.zip_pending(&m, &v, &pending).unwrap().map(|z| z.h1), Some("h1:a".to_string()));

    let purge = cat.plan(&CatalogOp::Purge { module: m.clone(), version: v.clone() }, &mut pending).unwrap();
    assert_eq!(cat.zip_pending(&m, &v, &pending).unwrap(), None);
    let third = cat.plan(&put_version("third", "module c\n", 'c'), &mut pending).unwrap();
    assert_eq!(third.written, ["info", "mod", "zip"]);
    cat.db().write([first.ops, purge.ops, third.ops].concat(), true).unwrap();
    assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"third"[..]));
}

#[test]
fn sumdb_lookups_stay_tiles_widen_and_heads_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(&dir);
    let lookup = |body: &str| CatalogOp::PutSumdbLookup { db: "d".into(), key: "lookup/m@v1.0.0".into(), body: body.into() };
    cat.apply(&lookup("first")).unwrap();
    cat.apply(&lookup("second")).unwrap();
    assert_eq!(cat.sumdb("d", "lookup/m@v1.0.0").unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(cat.sumdb("other", "lookup/m@v1.0.0").unwrap(), None);

    let tile = |data: &[u8]| CatalogOp::PutSumdbTile { db: "d".into(), tile: "tile/8/0/000".into(), data: data.to_vec() };
    for data in [&[1u8; 64][..], &[1u8; 96][..], &[1u8; 32][..]] {
        cat.apply(&tile(data)).unwrap();
    }
    assert_eq!(cat.sumdb("d", "tile/8/0/000").unwrap().map(|d| d.len()), Some(96));

    let head = |size: i64, at: u64| CatalogOp::PutSumdbHead {
        db: "d".into(),
        head: SumdbHead { note: format!("tree {size}"), size, fetched_at_ms: at },
    };
    for (size, at) in [(5, 1), (9, 2), (7, 3), (9, 4)] {
        cat.apply(&head(size, at)).unwrap();
    }
    let got = cat.sumdb_head("d").unwrap().unwrap();
    assert_eq!((got.size, got.fetched_at_ms), (9, 4));
    let json = serde_json::to_string(&tile(b"ab")).unwrap();
    assert!(json.contains("\"data\":\"YWI=\""), "{json}");
    assert_eq!(serde_json::from_str::<CatalogOp>(&json).unwrap(), tile(b"ab"));
}

#[test]
fn version_parts_carry_bytes_as_base64_and_still_read_number_arrays() {
    let parts = VersionParts { info: Some(b"{\"Version\":\"v1.0.0\"}".to_vec()), go_mod: Some(vec![0, 255, 10]), zip: None };
    let json = serde_json::to_string(&parts).unwrap();
    assert!(json.contains("\"info\":\"eyJWZXJzaW9uIjoidjEuMC4wIn0=\""), "{json}");
    assert_eq!(serde_json::from_str::<VersionParts>(&json).unwrap(), parts);
    let old = r#"{"info":[123,125],"go_mod":null,"zip":null}"#;
    let read: VersionParts = serde_json::from_str(old).unwrap();
    assert_eq!((read.info, read.go_mod), (Some(b"{}".to_vec()), None));
    assert!(serde_json::from_str::<VersionParts>(r#"{"info":"not base64!","zip":null}"#).is_err());
}
