//! `golang.org/toolchain`, the module the go command (1.21 and newer)
//! downloads when `GOTOOLCHAIN` or a go.mod asks for another Go version,
//! goes through the mirror like any module: its `.info`, `.mod` and zip are
//! fetched, checked and kept, and the go command can download and unpack
//! it.
//!
//! The machine's go command is 1.19, which predates toolchain switching, so
//! the go command test downloads the toolchain module explicitly with
//! `go mod download`: the same download and unpacking (`modfetch.Download`)
//! that a switch performs before it runs `bin/go`.

use harness::modules::{toolchain_version, TOOLCHAIN_MODULE};
use harness::{start_mirror, GoEnv, ModuleSet};

const GO: &str = "go1.22.0";

fn set() -> ModuleSet {
    ModuleSet::standard().with_toolchain(GO, "linux", "amd64")
}

#[test]
fn toolchain_info_mod_and_zip_are_served_and_kept() {
    let (origin, node) = start_mirror(set(), |o| o);
    let v = origin.modules().get(TOOLCHAIN_MODULE, &toolchain_version(GO, "linux", "amd64")).clone();
    assert_eq!(v.url_path("zip"), "/golang.org/toolchain/@v/v0.0.1-go1.22.0.linux-amd64.zip");
    for round in 1..=2 {
        for (ext, want) in [("info", &v.info), ("mod", &v.go_mod), ("zip", &v.zip)] {
            let r = node.get(&v.url_path(ext));
            assert_eq!(r.status, 200, "round {round} .{ext}: {}", r.summary());
            assert!(&r.body == want, "round {round}: .{ext} differs from the origin's");
        }
    }
    for ext in ["info", "mod", "zip"] {
        assert_eq!(origin.count(&v.url_path(ext)), 1, ".{ext} is fetched once and then served from the mirror");
    }
}

#[test]
fn go_command_downloads_and_unpacks_a_toolchain_through_the_mirror() {
    let (origin, node) = start_mirror(set(), |o| o);
    let version = toolchain_version(GO, "linux", "amd64");
    let go = GoEnv::new(&node.url());
    let spec = format!("{TOOLCHAIN_MODULE}@{version}");
    let out = go.ok(&["mod", "download", "-json", &spec]);
    let dir = go.modcache().join(format!("{TOOLCHAIN_MODULE}@{version}"));
    for file in ["bin/go", "bin/gofmt", "pkg/tool/linux_amd64/compile", "src/_go.mod", "VERSION"] {
        assert!(dir.join(file).is_file(), "{file} missing from the unpacked toolchain in {}:\n{out}", dir.display());
    }
    assert_eq!(origin.count(&format!("/golang.org/toolchain/@v/{version}.zip")), 1);
}
