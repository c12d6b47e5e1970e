#!/usr/bin/env python3
"""Write a static GOPROXY tree for the serving benchmark (Python 3 stdlib only).

    gen_modules.py --out DIR [--module example.com/bench] [--small-mib 1] [--large-mib 100]
                   [--many 200 --many-prefix example.com/gen --many-min-kib 5 --many-max-kib 200
                    --require-file go.mod]

Creates, under DIR/<module>/@v/:

    list                      one version per line
    <v>.info                  {"Version":"<v>","Time":"2024-01-02T03:04:05Z"}
    <v>.mod                   module <module>\\n
    <v>.zip                   a valid Go module zip (see below)

Versions:

    v1.0.0   zip of about --small-mib MiB (default 1)
    v1.1.0   zip of about --large-mib MiB (default 100)

With --many N, also N modules <many-prefix>/m000, m001, ... each with one
version, v1.0.0, whose zip size is drawn from a log-uniform distribution
between --many-min-kib and --many-max-kib (fixed seed): most Go module zips
are a few KiB to a few hundred KiB, and small ones are the most common.
--require-file writes a go.mod for a main module that requires all of them
(what `go mod download` of the set needs).

Every zip holds `<module>@<v>/go.mod` (the same bytes as the .mod file) and
`<module>@<v>/data/blob.bin` filled with pseudo-random bytes stored with
ZIP_STORED, so the zip's size on disk is really the size asked for and
nothing compresses it on the wire. The bytes come from a fixed seed, so two
runs produce identical zips. The zips satisfy Go's module zip rules
(golang.org/x/mod/zip): one prefix, valid file paths, no directories, no
duplicates, at most 500 MiB.

Prints one line per module version on stdout: "<module>@<version> <zip bytes> <zip path>".
"""

import argparse
import json
import math
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


def write_module(root, module, versions, check, seed0):
    """Writes <module>/@v/ with .info, .mod, .zip per (version, zip size) and the list."""
    vdir = os.path.join(root, *module.split("/"), "@v")
    os.makedirs(vdir, exist_ok=True)
    go_mod = f"module {module}\n".encode()
    for i, (version, size) in enumerate(versions):
        info = json.dumps({"Version": version, "Time": INFO_TIME}, separators=(",", ":")).encode()
        with open(os.path.join(vdir, version + ".info"), "wb") as f:
            f.write(info)
        with open(os.path.join(vdir, version + ".mod"), "wb") as f:
            f.write(go_mod)
        zpath = os.path.join(vdir, version + ".zip")
        zsize = write_zip(zpath, module, version, go_mod, size, seed=seed0 + i)
        if check:
            check_zip(zpath, module, version, go_mod)
        print(f"{module}@{version} {zsize} {zpath}")
    with open(os.path.join(vdir, "list"), "w") as f:
        f.write("".join(v + "\n" for v, _ in versions))


def log_uniform_sizes(n, lo, hi, seed):
    rng = random.Random(seed)
    return [int(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="root of the GOPROXY tree (created if missing)")
    ap.add_argument("--module", default="example.com/bench")
    ap.add_argument("--small-mib", type=float, default=1.0, help="size of the v1.0.0 zip in MiB")
    ap.add_argument("--large-mib", type=float, default=100.0, help="size of the v1.1.0 zip in MiB")
    ap.add_argument("--many", type=int, default=0, help="also write this many small modules (default 0)")
    ap.add_argument("--many-prefix", default="example.com/gen", help="path prefix of the --many modules")
    ap.add_argument("--many-min-kib", type=float, default=5.0, help="smallest --many zip in KiB")
    ap.add_argument("--many-max-kib", type=float, default=200.0, help="largest --many zip in KiB")
    ap.add_argument("--require-file", help="write a go.mod requiring every --many module here")
    ap.add_argument("--no-check", action="store_true", help="skip re-reading the zips (CRC check)")
    args = ap.parse_args()

    for m in (args.module, args.many_prefix):
        if m != m.lower():
            raise SystemExit("use lower-case module paths (no !-escaping is done here)")
    if not 0 <= args.many <= 100000:
        raise SystemExit("--many must be between 0 and 100000")
    if not 0 < args.many_min_kib <= args.many_max_kib:
        raise SystemExit("need 0 < --many-min-kib <= --many-max-kib")
    versions = [("v1.0.0", int(args.small_mib * (1 << 20))), ("v1.1.0", int(args.large_mib * (1 << 20)))]
    for _, size in versions:
        if size > MAX_ZIP:
            raise SystemExit(f"a {size}-byte zip is over Go's 500 MiB limit")

    write_module(args.out, args.module, versions, not args.no_check, 1000)

    sizes = log_uniform_sizes(args.many, args.many_min_kib * 1024, args.many_max_kib * 1024, seed=7)
    width = max(3, len(str(args.many - 1)))
    many = [f"{args.many_prefix}/m{i:0{width}d}" for i in range(args.many)]
    for i, (module, size) in enumerate(zip(many, sizes)):
        write_module(args.out, module, [("v1.0.0", size)], not args.no_check, 2000 + i)

    if args.require_file:
        reqs = "".join(f"\t{m} v1.0.0\n" for m in many)
        with open(args.require_file, "w") as f:
            f.write(f"module bench.local/download\n\ngo 1.17\n\nrequire (\n{reqs})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
