#!/usr/bin/env python3
"""Writes THIRD-PARTY-NOTICES for release artifacts from `cargo metadata`.

Usage (from the workspace root):
    python3 gateway/daemon/packaging/third-party-notices.py [--target TRIPLE] > THIRD-PARTY-NOTICES

`--target` (default: the host) picks the platform whose dependencies are
listed: `x86_64-pc-windows-msvc` for the Windows build adds `windows-service`
and its dependencies, a Linux build does not ship them.

Lists every third-party crate that the `ehr-gateway` binary links for the host
target (normal dependencies only, no dev/build-only crates), with its version,
SPDX license expression and repository, followed by the license texts found
in the crate's package (LICENSE*, COPYING*, NOTICE*). No network access:
`cargo metadata --locked` reads the local registry cache.
"""

import json
import pathlib
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--target"] and len(args) == 2:
        target = args[1]
    elif not args:
        target = (subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True)
                  .stdout.split("host: ")[1].split()[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform",
             target],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    workspace = set(meta["workspace_members"])
    root = next(i for i in workspace if packages[i]["name"] == "ehr-gateway")
    seen, stack = set(), [root]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in nodes[current]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    third = sorted((packages[i] for i in seen - workspace), key=lambda p: (p["name"], p["version"]))
    out = sys.stdout
    out.write("Third-party software in ehr-gateway\n")
    out.write("===================================\n\n")
    for p in third:
        out.write(f"{p['name']} {p['version']}  license: {p.get('license') or 'see files'}"
                  f"  {p.get('repository') or ''}\n")
    for p in third:
        folder = pathlib.Path(p["manifest_path"]).parent
        texts = sorted(f for f in folder.iterdir()
                       if f.is_file() and f.name.upper().startswith(("LICENSE", "COPYING", "NOTICE")))
        if not texts:
            continue
        out.write(f"\n\n==== {p['name']} {p['version']} ====\n")
        for f in texts:
            out.write(f"\n---- {f.name} ----\n")
            out.write(f.read_text(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
