#!/usr/bin/env python3
"""Writes a zip archive whose bytes depend only on the members' contents and names.

    reproducible-zip.py <out.zip> <epoch> <member>=<file>[:<mode>] ...

Members are stored in the order given, each with the time <epoch> (UTC, clamped to the
zip format's 1980 floor), the octal Unix mode given (default 644), no extra fields, no
owner or host data, deflated at a fixed level: the same inputs give the same archive
on any machine, at any time, in any directory.
"""

import sys
import time
import zipfile


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__.strip())
    out, epoch = argv[1], int(argv[2])
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # 1980-01-01T00:00:00Z
    with zipfile.ZipFile(out, "w") as archive:
        for spec in argv[3:]:
            name, _, source = spec.partition("=")
            source, _, mode = source.partition(":")
            if not name or not source:
                sys.exit(f"reproducible-zip.py: bad member {spec!r}, want <name>=<file>[:<mode>]")
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so unzip applies the mode below
            info.external_attr = (0o100000 | int(mode or "644", 8)) << 16
            with open(source, "rb") as f:
                archive.writestr(info, f.read(), compresslevel=9)


if __name__ == "__main__":
    main(sys.argv)
