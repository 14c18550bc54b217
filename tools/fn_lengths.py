#!/usr/bin/env python3
"""The longest Rust functions of the workspace, for reviews of function size.

Usage: python3 tools/fn_lengths.py [DIR|FILE ...]   (default: .)
       TOP=20 python3 tools/fn_lengths.py gateway adapters

Prints `lines path:line name`, longest first. A function's length runs from
its `fn` line to its closing brace; comments, strings (raw strings too) and
char literals are blanked before the braces are matched, so braces inside
them do not count. Test modules and test files are included: filter the
output (e.g. `grep -v /tests/`) to look at production code only.
Standard library only; no build needed.
"""

import os
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
RAW = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(\\.[^']*|[^\\'])'")
SKIP_DIRS = {"target", ".git", "node_modules"}


def blank(text):
    """`text` with every character but newlines replaced by a space."""
    return re.sub(r"[^\n]", " ", text)


def strip(src):
    """The source with comments, strings and char literals blanked out."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(blank(src[i:j]))
            i = j
            continue
        raw = RAW.match(src, i)
        if raw and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + raw.group(1)
            j = src.find(end, raw.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(src[i:j]))
            i = j
            continue
        c = src[i]
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(blank(src[i:j]))
            i = j
            continue
        if c == "'":
            ch = CHAR.match(src, i)
            if ch:
                out.append(" " * len(ch.group(0)))
                i = ch.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def rust_files(root):
    if os.path.isfile(root):
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for f in filenames:
            if f.endswith(".rs"):
                yield os.path.join(dirpath, f)


def functions(path):
    """(lines, path, line, name) of every function with a body in `path`."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = strip(f.read())
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for number, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, start = 0, offsets[number]
        for k in range(start, len(text)):
            ch = text[k]
            if ch == ";" and depth == 0:
                break  # a declaration without a body
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    yield (text.count("\n", start, k) + 1, path, number + 1, m.group(6))
                    break


def main():
    roots = sys.argv[1:] or ["."]
    found = [f for root in roots for p in rust_files(root) for f in functions(p)]
    found.sort(reverse=True)
    for length, path, line, name in found[: int(os.environ.get("TOP", "10"))]:
        print(f"{length:5d} {path}:{line} {name}")


if __name__ == "__main__":
    main()
