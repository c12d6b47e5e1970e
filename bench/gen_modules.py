#!/usr/bin/env python3
"""Write a static GOPROXY tree for the serving benchmark (Python 3 stdlib only).

    gen_modules.py --out DIR [--module example.com/bench] [--small-mib 1] [--large-mib 100]

Creates, under DIR/<module>/@v/:

    list                      one version per line
    <v>.info                  {"Version":"<v>","Time":"2024-01-02T03:04:05Z"}
    <v>.mod                   module <module>\\n
    <v>.zip                   a valid Go module zip (see below)

Versions:

    v1.0.0   zip of about --small-mib MiB (default 1)
    v1.1.0   zip of about --large-mib MiB (default 100)

Every zip holds `<module>@<v>/go.mod` (the same bytes as the .mod file) and
`<module>@<v>/data/blob.bin` filled with pseudo-random bytes stored with
ZIP_STORED, so the zip's size on disk is really the size asked for and
nothing compresses it on the wire. The bytes come from a fixed seed, so two
runs produce identical zips. The zips satisfy Go's module zip rules
(golang.org/x/mod/zip): one prefix, valid file paths, no directories, no
duplicates, at most 500 MiB.

Prints one line per version on stdout: "<version> <zip bytes> <zip path>".
"""

import argparse
import json
import os
import random
import sys
import zipfile

INFO_TIME = "2024-01-02T03:04:05Z"
ZIP_DATE = (2024, 1, 2, 3, 4, 6)  # zip timestamps have 2-second resolution
MAX_ZIP = 500 << 20
CHUNK = 1 << 20
# Bytes a zip adds around its payload: local headers, central directory and
# end record for two entries with short names. Subtracted from the payload so
# the whole zip comes out close to the size asked for.
OVERHEAD_GUESS = 400


def write_zip(path, module, version, go_mod, size, seed):
    prefix = f"{module}@{version}/"
    payload = max(0, size - len(go_mod) - OVERHEAD_GUESS)
    rng = random.Random(seed)
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        info = zipfile.ZipInfo(prefix + "go.mod", date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        z.writestr(info, go_mod)

        info = zipfile.ZipInfo(prefix + "data/blob.bin", date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        info.file_size = payload
        with z.open(info, "w") as w:
            left = payload
            while left > 0:
                n = min(CHUNK, left)
                w.write(rng.randbytes(n))
                left -= n
    os.replace(tmp, path)
    return os.path.getsize(path)


def check_zip(path, module, version, go_mod):
    """The rules Flotilla (and the go command) apply, checked here so a broken
    generator fails early instead of as an upstream-verification 502."""
    prefix = f"{module}@{version}/"
    size = os.path.getsize(path)
    if size > MAX_ZIP:
        raise SystemExit(f"{path}: {size} bytes is over Go's 500 MiB zip limit")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if len(set(n.lower() for n in names)) != len(names):
            raise SystemExit(f"{path}: duplicate names")
        for n in names:
            if not n.startswith(prefix) or n.endswith("/"):
                raise SystemExit(f"{path}: bad entry {n!r}")
        if z.read(prefix + "go.mod") != go_mod:
            raise SystemExit(f"{path}: go.mod differs from the .mod file")
        total = sum(i.file_size for i in z.infolist())
        if total > MAX_ZIP:
            raise SystemExit(f"{path}: {total} bytes uncompressed is over 500 MiB")
        bad = z.testzip()  # CRC of every entry
        if bad is not None:
            raise SystemExit(f"{path}: CRC error in {bad}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="root of the GOPROXY tree (created if missing)")
    ap.add_argument("--module", default="example.com/bench")
    ap.add_argument("--small-mib", type=float, default=1.0, help="size of the v1.0.0 zip in MiB")
    ap.add_argument("--large-mib", type=float, default=100.0, help="size of the v1.1.0 zip in MiB")
    ap.add_argument("--no-check", action="store_true", help="skip re-reading the zips (CRC check)")
    args = ap.parse_args()

    module = args.module
    if module != module.lower():
        raise SystemExit("use a lower-case module path (no !-escaping is done here)")
    versions = [("v1.0.0", int(args.small_mib * (1 << 20))), ("v1.1.0", int(args.large_mib * (1 << 20)))]
    for _, size in versions:
        if size > MAX_ZIP:
            raise SystemExit(f"a {size}-byte zip is over Go's 500 MiB limit")

    vdir = os.path.join(args.out, *module.split("/"), "@v")
    os.makedirs(vdir, exist_ok=True)
    go_mod = f"module {module}\n".encode()

    for i, (version, size) in enumerate(versions):
        info = json.dumps({"Version": version, "Time": INFO_TIME}, separators=(",", ":")).encode()
        with open(os.path.join(vdir, version + ".info"), "wb") as f:
            f.write(info)
        with open(os.path.join(vdir, version + ".mod"), "wb") as f:
            f.write(go_mod)
        zpath = os.path.join(vdir, version + ".zip")
        zsize = write_zip(zpath, module, version, go_mod, size, seed=1000 + i)
        if not args.no_check:
            check_zip(zpath, module, version, go_mod)
        print(f"{version} {zsize} {zpath}")

    with open(os.path.join(vdir, "list"), "w") as f:
        f.write("".join(v + "\n" for v, _ in versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
