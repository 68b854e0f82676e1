#!/usr/bin/python3
"""Checks that no source compiled once for every worker executable
(kmbench_worker_library's shared objects, cmake/KmbenchWorkers.cmake) can see
the backend list: none of the project headers it includes, directly or
through others, may test KMBENCH_WORKER_<W>.

    check-worker-sources.py --root SRC LIST_FILE

LIST_FILE: the shared sources, one absolute path a line (written by CMake).
Exit 0 when all are clean, 1 naming each source and the include chain that
reaches the list, 2 on bad input.
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
MARKER = "KMBENCH_WORKER_"


def resolve(name, here, roots):
    for base in [here] + roots:
        path = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(path):
            return path
    return None  # a system header


def chain_to_marker(source, roots, memo):
    """The include chain from source to a file naming MARKER, or None."""
    if source in memo:
        return memo[source]
    memo[source] = None  # cycles end here
    with open(source, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if MARKER in text:
        memo[source] = [source]
        return memo[source]
    for name in INCLUDE.findall(text):
        path = resolve(name, os.path.dirname(source), roots)
        if path is None:
            continue
        chain = chain_to_marker(path, roots, memo)
        if chain:
            memo[source] = [source] + chain
            return memo[source]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("list_file")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    roots = [root, os.path.join(root, "kpi", "include")]
    try:
        with open(args.list_file, encoding="utf-8") as f:
            sources = [line.strip() for line in f if line.strip()]
    except OSError as e:
        print(f"check-worker-sources: {args.list_file}: {e.strerror}", file=sys.stderr)
        return 2
    memo, bad = {}, 0
    for s in sources:
        if not os.path.isfile(s):
            print(f"check-worker-sources: {s}: no such source", file=sys.stderr)
            return 2
        chain = chain_to_marker(s, roots, memo)
        if chain:
            bad += 1
            rel = [os.path.relpath(p, root) for p in chain]
            print(f"{rel[0]}: compiled once for every worker, but reaches the backend list: "
                  f"{' -> '.join(rel)}; name it in WORKER_SOURCES")
    print(f"check-worker-sources: {len(sources)} shared sources, {bad} reaching the backend list")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
