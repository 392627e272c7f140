#!/usr/bin/env python3
"""Searches log files for secrets; exits 1 on any hit.

    secret-scan.py --secrets FILE [--secrets FILE]... LOG...

Each --secrets file holds one secret a line (private keys, Digest response
values). Every LOG is searched for every secret as a plain substring, and for
the shapes of an Authorization header with HTTP Digest credentials. A hit is
reported as file:line with the secret replaced by <secret>, never the secret.
"""

import argparse
import re
import sys

# An Authorization header or its Digest parameters, whatever the value.
SHAPES = [
    re.compile(rb"(?i)authorization\s*[:=]\s*\"?digest\s"),
    re.compile(rb"(?i)digest\s+username=\""),
    re.compile(rb'(?i)\bresponse="[0-9a-f]{32,}"'),
]
# Shorter strings are not secrets we record and would only give false hits.
MIN_SECRET_LEN = 16


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", action="append", default=[])
    parser.add_argument("logs", nargs="+")
    args = parser.parse_args()

    secrets = set()
    for path in args.secrets:
        with open(path, "rb") as f:
            secrets.update(s for s in (line.strip() for line in f) if len(s) >= MIN_SECRET_LEN)
    if not secrets:
        print("secret-scan: no secrets to search for; the check would prove nothing", file=sys.stderr)
        return 2

    hits = 0
    scanned = 0
    for path in args.logs:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                scanned += len(line)
                found = [s for s in secrets if s in line]
                shapes = [p.pattern.decode() for p in SHAPES if p.search(line)]
                if not found and not shapes:
                    continue
                hits += 1
                shown = line
                for s in found:
                    shown = shown.replace(s, b"<secret>")
                shown = re.sub(rb'(?i)(response=")[0-9a-f]+', rb"\1<secret>", shown)
                what = f"{len(found)} secret(s)" if found else f"credential shape {shapes[0]}"
                print(f"secret-scan: {path}:{number}: {what}: "
                      f"{shown.decode(errors='replace').strip()[:300]}", file=sys.stderr)
    print(f"secret-scan: {len(secrets)} secrets, {len(args.logs)} files, {scanned} bytes, {hits} hits")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
