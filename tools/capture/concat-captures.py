#!/usr/bin/python3
"""Joins ftrace text captures into one, end to end in time.

Each capture's timestamps are shifted so that it starts 1 ms after the one
before it ends; comment and marker lines are kept as they are. A large
capture made this way is what `kmbench trace import` is measured on where one
capture of that size cannot be taken (docs/kmt-format.md, "Large captures").

    tools/capture/concat-captures.py -o BIG.txt CAPTURE.txt [CAPTURE.txt ...]

A capture may be named several times. Captures may be compressed (.gz, .xz,
.zst: decoded with the system's gzip, xz or zstd). Exits 2 naming the file and
line of a capture whose event lines carry no readable timestamp.
"""
import argparse
import re
import subprocess
import sys

# "TASK-PID [CPU] FLAGS TIMESTAMP: event:" -- the timestamp is the last number
# before the first ": " that follows the "[CPU]" field.
STAMP = re.compile(rb"^(.*?\[\d+\]\s+(?:\S+\s+)?)(\d+)\.(\d+)(: )")
GAP_NS = 1_000_000


def open_capture(path):
    for ext, tool in ((".gz", "gzip"), (".xz", "xz"), (".zst", "zstd")):
        if path.endswith(ext):
            proc = subprocess.Popen([tool, "-dc", path], stdout=subprocess.PIPE)
            return proc.stdout, proc
    return open(path, "rb"), None


def to_ns(whole, frac):
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("captures", nargs="+")
    args = ap.parse_args()
    shift = None  # ns added to the current capture's stamps
    end = 0       # the last stamp written, shifted
    written = 0
    with open(args.output, "wb") as out:
        for path in args.captures:
            f, proc = open_capture(path)
            first = True
            for n, line in enumerate(f, 1):
                m = STAMP.match(line)
                if not m:
                    if not line.startswith((b"#", b"CPU:", b"cpus=", b"version =")) and line.strip():
                        print(f"concat-captures: {path}:{n}: no timestamp in an event line", file=sys.stderr)
                        sys.exit(2)
                    if shift is None or first:
                        out.write(line)  # every capture's header, as a capture has it
                    continue
                ns = to_ns(m.group(2), m.group(3))
                if first:
                    shift = (end + GAP_NS - ns) if written else 0
                    first = False
                t = ns + shift
                end = max(end, t)
                digits = len(m.group(3))
                frac = (t % 1_000_000_000) // 10 ** (9 - digits)
                out.write(b"%s%d.%0*d%s%s" % (m.group(1), t // 1_000_000_000, digits, frac, m.group(4),
                                             line[m.end():]))
                written += 1
            f.close()
            if proc is not None and proc.wait() != 0:
                print(f"concat-captures: cannot decode {path}", file=sys.stderr)
                sys.exit(2)
    print(f"{args.output}: {written} event lines from {len(args.captures)} captures, "
          f"{end / 1e9:.3f} s of capture time")


if __name__ == "__main__":
    main()
