#!/usr/bin/python3
"""Joins ftrace text captures into one, end to end in time.

Each capture's timestamps are shifted so that it starts 1 ms after the one
before it ends; comment and marker lines ("CPU:1 [LOST 12 EVENTS]") are kept
as they are, wherever they are. A large capture made this way is what
`kmbench trace import` is measured on where one capture of that size cannot
be taken (docs/kmt-format.md, "Large captures").

    tools/capture/concat-captures.py -o BIG.txt CAPTURE.txt [CAPTURE.txt ...]

A capture may be named several times. Captures may be compressed (.gz, .xz,
.zst: decoded with the system's gzip, xz or zstd). The output is written to a
temporary file beside it and renamed when complete, so a run that fails leaves
an existing BIG.txt as it was. Exits 2 naming the file (and line) at fault: a
capture that is missing, not a regular file, unreadable, the output itself,
cannot be decoded or has an event line with no readable timestamp; an output
that is a directory or another file that is not a regular one (a device), or
in a directory that does not exist or cannot be written.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

# "TASK-PID [CPU] FLAGS TIMESTAMP: event:" -- the timestamp is the last number
# before the first ": " that follows the "[CPU]" field.
STAMP = re.compile(rb"^(.*?\[\d+\]\s+(?:\S+\s+)?)(\d+)\.(\d+)(: )")
GAP_NS = 1_000_000
DECODERS = ((".gz", "gzip"), (".xz", "xz"), (".zst", "zstd"))


class Bad(Exception):
    """A message for stderr and the exit status."""
    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def decoder(path):
    return next((tool for ext, tool in DECODERS if path.endswith(ext)), None)


def open_capture(path):
    tool = decoder(path)
    if tool:
        proc = subprocess.Popen([tool, "-dc", path], stdout=subprocess.PIPE)
        return proc.stdout, proc
    return open(path, "rb"), None


def to_ns(whole, frac):
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])


def check(output, captures):
    """Refuses bad paths before anything is read or written; returns where
    the output goes (a symlink's target)."""
    for path in captures:
        if not os.path.exists(path):
            raise Bad(f"{path}: no such file")
        if not os.path.isfile(path):
            raise Bad(f"{path}: not a regular file")
        try:
            open(path, "rb").close()
        except OSError as e:
            raise Bad(f"{path}: cannot read: {e.strerror}")
        tool = decoder(path)
        if tool and not shutil.which(tool):
            raise Bad(f"{path}: {tool} is needed to decode it and is not installed", 1)
        if os.path.exists(output) and os.path.samefile(path, output):
            raise Bad(f"{path}: is the output (-o {output}) too: name another output")
    dest = os.path.realpath(output)
    if os.path.isdir(dest):
        raise Bad(f"-o {output}: is a directory")
    if os.path.exists(dest) and not os.path.isfile(dest):
        raise Bad(f"-o {output}: not a regular file")
    if not os.path.isdir(os.path.dirname(dest)):
        raise Bad(f"-o {output}: no such directory {os.path.dirname(dest)}")
    return dest


def concat(out, captures):
    """Writes the captures to out; returns (event lines, last stamp in ns)."""
    shift = 0     # ns added to the current capture's stamps
    end = 0       # the last stamp written, shifted
    written = 0
    for path in captures:
        f, proc = open_capture(path)
        try:
            first = True
            for n, line in enumerate(f, 1):
                m = STAMP.match(line)
                if not m:
                    if not line.startswith((b"#", b"CPU", b"cpus=", b"version =")) and line.strip():
                        if proc and not line.endswith(b"\n") and proc.wait() != 0:
                            break  # the decoder stopped in a line: said below
                        raise Bad(f"{path}:{n}: no timestamp in an event line")
                    out.write(line)  # headers, and "CPU:N [LOST M EVENTS]" wherever they are
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
        finally:
            f.close()
            if proc and proc.poll() is None:
                proc.kill()  # stopped early: the rest is not wanted
        if proc and proc.wait() != 0:
            raise Bad(f"cannot decode {path} ({decoder(path)} exited with status {proc.returncode})")
    return written, end


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("captures", nargs="+")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):  # interrupted: the temporary file goes too
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    tmp = None
    try:
        dest = check(args.output, args.captures)
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=f".{os.path.basename(dest)}.")
        except OSError as e:
            raise Bad(f"-o {args.output}: cannot write there: {e.strerror}")
        with os.fdopen(fd, "wb") as out:
            written, end = concat(out, args.captures)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, os.stat(dest).st_mode & 0o7777 if os.path.exists(dest) else 0o666 & ~umask)
        os.replace(tmp, dest)
        tmp = None
    except Bad as e:
        print(f"concat-captures: {e}", file=sys.stderr)
        sys.exit(e.status)
    except OSError as e:
        where = e.filename or f"-o {args.output}"
        print(f"concat-captures: {where}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    finally:
        if tmp:
            os.unlink(tmp)
    print(f"{args.output}: {written} event lines from {len(args.captures)} captures, "
          f"{end / 1e9:.3f} s of capture time")


if __name__ == "__main__":
    main()
