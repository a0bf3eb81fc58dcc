#!/usr/bin/env python3
"""Deletes test and binary executables that the current build no longer uses.

Every test binary of this workspace links DuckDB statically (hundreds of MB
in a debug build), and a changed crate relinks them under new hashed names,
so a build directory reused across runs (as `.ci/run` reuses one) grows by
tens of GB a week.

Reads `cargo test --no-run --message-format=json` on standard input, keeps
every file the build reported (and its hard links, by inode), and deletes the
other large executables in the `deps` directory given as the argument.
Libraries (`.rlib`, `.so`, `.a`) are never touched, so DuckDB is never rebuilt.

    cargo test --workspace --no-run --message-format=json \
        | scripts/prune-test-binaries.py "$CARGO_TARGET_DIR/debug/deps"
"""

import json
import os
import stat
import sys

MIN_BYTES = 20 << 20


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    deps = sys.argv[1]
    keep = set()
    artifacts = 0
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact":
            continue
        artifacts += 1
        paths = list(message.get("filenames") or [])
        if message.get("executable"):
            paths.append(message["executable"])
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            keep.add((st.st_dev, st.st_ino))
    if artifacts == 0:
        print("prune: the build reported no artifacts; nothing deleted", file=sys.stderr)
        return 0
    freed = removed = 0
    for entry in os.scandir(deps):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IXUSR:
            continue
        if st.st_size < MIN_BYTES or "." in entry.name:
            continue
        if (st.st_dev, st.st_ino) in keep:
            continue
        os.remove(entry.path)
        freed += st.st_size
        removed += 1
    print(f"prune: removed {removed} stale executables, {freed / 1e9:.1f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
