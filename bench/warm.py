#!/usr/bin/env python3
"""Fill Flotilla's cache and check it serves nginx's bytes (Python 3 stdlib only).

    warm.py --reference URL --through URL --paths FILE [--workers 8] [--timeout 600]

GETs every path listed in FILE (one per line) from the reference server
(nginx serving the tree) and through the server under test (Flotilla, whose
upstream is that nginx), and compares the bodies' sha256. `@v/list` bodies
are compared as sets of lines: Flotilla merges a list with its catalog, so
the order may differ. Every request uses a kept-alive connection per worker.

Exits 0 when everything matched, 1 with one line per mismatch or failure
(at most 20 are printed) otherwise. Prints "<paths> <bytes>" on success.
"""

import argparse
import hashlib
import http.client
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


class Client:
    """One kept-alive HTTP/1.1 connection per thread and base URL."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"warm.py: only http://host:port URLs are supported, not {base!r}")
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.local = threading.local()

    def get(self, path):
        for attempt in (0, 1):  # a kept-alive connection the server closed is retried once
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                return resp.status, body
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def digest(path, body):
    if path.endswith("/@v/list"):
        lines = sorted(set(line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()))
        return "list:" + ",".join(lines)
    return hashlib.sha256(body).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="base URL of the server with the original files")
    ap.add_argument("--through", required=True, help="base URL of the server under test")
    ap.add_argument("--paths", required=True, help="file with one URL path per line")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    args = ap.parse_args()

    with open(args.paths) as f:
        paths = [p.strip() for p in f if p.strip()]
    ref, test = Client(args.reference, args.timeout), Client(args.through, args.timeout)

    def check(path):
        try:
            s1, b1 = ref.get(path)
        except (http.client.HTTPException, OSError) as e:
            return 0, f"{path}: reference server failed: {e}"
        try:
            s2, b2 = test.get(path)
        except (http.client.HTTPException, OSError) as e:
            return 0, f"{path}: server under test failed: {e}"
        if s1 != 200:
            return 0, f"{path}: reference server answered {s1}"
        if s2 != 200:
            reason = b2[:200].decode("utf-8", "replace").strip()
            return 0, f"{path}: server under test answered {s2}: {reason}"
        if digest(path, b1) != digest(path, b2):
            return 0, f"{path}: different bytes ({len(b2)} bytes vs {len(b1)} from the reference)"
        return len(b2), None

    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(check, paths))
    errors = [e for _, e in results if e]
    for e in errors[:20]:
        print("warm.py: " + e, file=sys.stderr)
    if errors:
        print(f"warm.py: {len(errors)} of {len(paths)} paths failed", file=sys.stderr)
        return 1
    print(f"{len(paths)} {sum(n for n, _ in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
