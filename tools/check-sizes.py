#!/usr/bin/python3
"""Holds the tree to its size limits: no source file over 800 lines and no
function over 120, outside tests/ and the Apple-shaped KPI headers (whose
shape the originals set). Functions are found by Universal Ctags.

    tools/check-sizes.py [--root DIR] [--list N]

--root names the repository, or a directory in it to check alone (default:
this script's repository); paths are relative to the repository's top, which
the exemptions are written against. Exit status 0 within the limits, 1 over
them (each offender listed), 2 when ctags or git is missing, --root is not a
directory in a git repository, or N is negative."""
import argparse
import json
import os
import shutil
import subprocess
import sys

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 120
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".h", ".hpp")
EXEMPT_PREFIXES = ("tests/", "kpi/include/IOKit/", "kpi/include/libkern/", "kpi/include/mach/",
                   "kpi/include/os/")


def git(root, *args):
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True)


def tracked_sources(top, root):
    """The sources tracked under root, relative to the repository's top. A
    tracked file deleted from the working tree has no size: it is skipped."""
    out = git(root, "ls-files", "--full-name").stdout
    return [p for p in out.splitlines()
            if p.endswith(SOURCE_SUFFIXES) and not p.startswith(EXEMPT_PREFIXES)
            and os.path.isfile(os.path.join(top, p))]


def count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def function_lengths(root, files):
    """(lines, path, first line, name) of every function definition."""
    proc = subprocess.run(["ctags", "--fields=+ne", "--c++-kinds=+f-p", "--c-kinds=+f-p", "--output-format=json",
                           "-o", "-", "-L", "-"], cwd=root, input="\n".join(files), check=True,
                          capture_output=True, text=True)
    rows = []
    for line in proc.stdout.splitlines():
        tag = json.loads(line)
        if tag.get("_type") == "tag" and tag.get("kind") == "function" and "end" in tag:
            scope = tag.get("scope", "")
            name = f"{scope}::{tag['name']}" if scope else tag["name"]
            rows.append((tag["end"] - tag["line"] + 1, tag["path"], tag["line"], name))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--list", type=count, default=0, metavar="N", help="also print the N longest functions")
    args = ap.parse_args()
    for tool in ("git", "ctags"):
        if shutil.which(tool) is None:
            print(f"check-sizes: {tool} not found (Debian: apt-get install {'universal-ctags' if tool == 'ctags' else tool})",
                  file=sys.stderr)
            return 2
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(f"check-sizes: --root {args.root}: not a directory", file=sys.stderr)
        return 2
    proc = git(root, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        print(f"check-sizes: --root {args.root}: git: {(proc.stderr.strip() or 'failed').splitlines()[0]}",
              file=sys.stderr)
        return 2
    top = proc.stdout.strip()
    files = tracked_sources(top, root)
    over = []
    for path in files:
        with open(os.path.join(top, path), "rb") as f:
            n = f.read().count(b"\n")
        if n > MAX_FILE_LINES:
            over.append(f"{path}: {n} lines (limit {MAX_FILE_LINES})")
    functions = sorted(function_lengths(top, files), reverse=True)
    for lines, path, line, name in functions:
        if lines > MAX_FUNCTION_LINES:
            over.append(f"{path}:{line}: {name} is {lines} lines (limit {MAX_FUNCTION_LINES})")
    for lines, path, line, name in functions[:args.list]:
        print(f"{lines:5d}  {path}:{line}  {name}")
    for o in over:
        print(o, file=sys.stderr)
    print(f"check-sizes: {len(files)} files, {len(functions)} functions, {len(over)} over the limits")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
