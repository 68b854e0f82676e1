"""tools/capture: concat-captures.py joins captures end to end in time, and
refuses bad input (exit 2 naming it) leaving an existing output byte for byte;
ftrace-capture.sh and record-program.sh check their arguments before they
trace or run anything (KMBENCH: the kmbench binary; KMBENCH_RECORDER: the
LD_PRELOAD recorder, for the tests that record)."""
import lzma
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent.parent / "tools" / "capture"
SAMPLE = HERE / "data" / "ftrace-sample.txt.xz"
EVENTS = 19999  # event lines in the sample (traces/README.md)
STAMP = re.compile(r"\[\d+\]\s+\S+\s+(\d+)\.(\d+): ")
LOST = "CPU:1 [LOST 12 EVENTS]\n"


def limit_output():
    # A run that reads its own output would fill the disk: stop it at 64 MiB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))


def concat(*args, cwd=None):
    return subprocess.run([sys.executable, str(TOOLS / "concat-captures.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60, preexec_fn=limit_output)


def stamps(text):
    return [int(m.group(1)) * 10**6 + int(m.group(2)) for m in map(STAMP.search, text.splitlines()) if m]


@pytest.fixture
def capture(tmp_path):
    """The sample as plain text, with a lost-events marker among its events."""
    lines = lzma.decompress(SAMPLE.read_bytes()).decode().splitlines(keepends=True)
    path = tmp_path / "a.txt"
    path.write_text("".join(lines[:600] + [LOST] + lines[600:]))
    return path


@pytest.fixture
def existing(tmp_path):
    path = tmp_path / "existing.txt"
    path.write_bytes(b"an earlier output\n")
    return path


def assert_refused(p, *names):
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "unbound variable" not in p.stderr, p.stderr
    for name in names:
        assert str(name) in p.stderr, p.stderr


def test_captures_are_joined_end_to_end_in_time(tmp_path, capture, existing):
    p = concat("-o", existing, capture, SAMPLE, capture)
    assert p.returncode == 0, p.stderr
    assert f"{existing}: {3 * EVENTS} event lines from 3 captures" in p.stdout
    text = existing.read_text()
    t = stamps(text)
    assert len(t) == 3 * EVENTS
    one = stamps(capture.read_text())
    for i in (1, 2):  # each capture starts 1 ms after the one before ends, its steps kept
        assert t[i * EVENTS] == t[i * EVENTS - 1] + 1000
        assert [b - t[i * EVENTS] for b in t[i * EVENTS:(i + 1) * EVENTS]] == [b - one[0] for b in one]
    assert t[:EVENTS] == one
    assert text.count("# tracer: nop\n") == 3, "every capture's header"
    assert text.count(LOST) == 2, "lost-events markers stay where they are"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "existing.txt"], "no temporary file is left"
    if "KMBENCH" in os.environ:
        info = subprocess.run([os.environ["KMBENCH"], "trace", "info", "--json", str(existing)],
                              capture_output=True, text=True, check=True).stdout
        assert f'"import.events": {3 * EVENTS},' in info and '"import.lost_events": 24,' in info


@pytest.mark.parametrize("how", ["output last", "output only", "output among", "symlink to input", "input symlink",
                                 "hard link"])
def test_an_output_that_is_an_input_is_refused(tmp_path, capture, existing, how):
    link = tmp_path / "link.txt"
    args = {"output last": [existing, capture, existing], "output only": [existing, existing],
            "output among": [existing, existing, capture]}.get(how)
    if how == "symlink to input":
        link.symlink_to(existing)
        args = [link, capture, existing]
    elif how == "input symlink":
        link.symlink_to(existing)
        args = [existing, capture, link]
    elif how == "hard link":
        os.link(existing, link)
        args = [link, existing]
    before = sorted(os.listdir(tmp_path))
    p = concat("-o", *args)
    assert_refused(p, "is the output")
    assert existing.read_bytes() == b"an earlier output\n"
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("fault", ["missing", "cut xz", "bad line", "a directory", "not zstd"])
def test_a_failed_run_leaves_an_existing_output_as_it_was(tmp_path, capture, existing, fault):
    bad = tmp_path / "bad"
    if fault == "cut xz":
        bad = tmp_path / "cut.txt.xz"
        bad.write_bytes(SAMPLE.read_bytes()[:60000])
    elif fault == "bad line":
        bad.write_text(capture.read_text() + "this line has no timestamp\n")
    elif fault == "a directory":
        bad.mkdir()
    elif fault == "not zstd":
        bad = tmp_path / "bad.txt.zst"
        bad.write_bytes(b"not zstd at all\n" * 100)
    before = sorted(os.listdir(tmp_path))
    p = concat("-o", existing, capture, bad)
    assert_refused(p, bad)
    if fault == "bad line":
        assert f"{bad}:{len(capture.read_text().splitlines()) + 1}: no timestamp" in p.stderr
    assert existing.read_bytes() == b"an earlier output\n"
    assert sorted(os.listdir(tmp_path)) == before, "no temporary file is left"


@pytest.mark.parametrize("where", ["nodir/big.txt", "adir"])
def test_an_output_that_cannot_be_written_is_refused(tmp_path, capture, where):
    (tmp_path / "adir").mkdir()
    p = concat("-o", tmp_path / where, capture)
    assert_refused(p, "-o", tmp_path / where)
    assert os.listdir(tmp_path / "adir") == [] and not (tmp_path / "nodir").exists()


# ftrace-capture.sh: bad arguments exit 2, naming what is at fault, before
# tracing starts: nothing in TMPDIR, no output, an existing output untouched.
@pytest.mark.parametrize("args, names", [
    (["-t", "garbage"], ["-t garbage"]),
    (["-t", "-5"], ["-t -5"]),
    (["-t", "0"], ["-t 0"]),
    (["-t", "1", "--", "true"], ["not both"]),
    (["-b", "garbage", "-t", "1"], ["-b garbage"]),
    (["-p", "garbage", "-t", "1"], ["-p garbage"]),
    (["-e", "bogus", "-t", "1"], ["-e bogus", "'bogus'"]),
    (["--", "no-such-command-kmbench"], ["no-such-command-kmbench"]),
    (["-o", "{tmp}/nodir/x.txt", "-t", "1"], ["{tmp}/nodir"]),
    (["-o", "{tmp}/adir", "-t", "1"], ["-o {tmp}/adir", "directory"]),
    ([], ["-t SECONDS or a command"]),
], ids=["t garbage", "t negative", "t zero", "t and a command", "b garbage", "p garbage", "e bogus",
        "missing command", "o in a missing dir", "o a directory", "no t and no command"])
def test_ftrace_capture_refuses_bad_arguments_before_tracing(tmp_path, existing, args, names):
    (tmp_path / "adir").mkdir()
    (tmp_path / "tmp").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    if "-o" not in args:
        args = ["-o", str(existing), *args]
    before = sorted(os.listdir(tmp_path))
    p = subprocess.run([str(TOOLS / "ftrace-capture.sh"), *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert_refused(p, *(n.format(tmp=tmp_path) for n in names))
    assert p.stdout == "", "errors and usage go to stderr"
    assert existing.read_bytes() == b"an earlier output\n"
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "tmp") == [] and os.listdir(tmp_path / "adir") == []


def tracefs():
    return os.geteuid() == 0 and any(os.path.exists(f"{d}/trace_pipe")
                                     for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))


@pytest.mark.skipif(not tracefs(), reason="needs root and tracefs")
def test_ftrace_capture_of_a_failed_load_leaves_an_existing_output(tmp_path, existing):
    (tmp_path / "tmp").mkdir()
    p = subprocess.run([str(TOOLS / "ftrace-capture.sh"), "-o", str(existing), "--", "sh", "-c", "exit 3"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert p.returncode == 1, p.stderr
    assert "failed (exit status 3)" in p.stderr and f"{existing}.failed" in p.stderr
    assert existing.read_bytes() == b"an earlier output\n"
    assert Path(f"{existing}.failed").read_text().startswith("# kmbench ftrace capture")
    assert os.listdir(tmp_path / "tmp") == []


# record-program.sh: the same before the command runs (it would make "ran").
def record(tmp_path, *args):
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([str(TOOLS / "record-program.sh"), *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})


@pytest.mark.parametrize("args, names", [
    (["nodir/out.kmt", "--", "touch", "ran"], ["nodir"]),
    (["adir", "--", "touch", "ran"], ["adir", "directory"]),
    (["existing.txt", "--", "no-such-command-kmbench"], ["no-such-command-kmbench"]),
    (["-b"], ["-b"]),
    (["-b", "{tmp}/adir", "out.kmt", "--", "touch", "ran"], [": {tmp}/adir/tools/capture/recorder/"]),
    (["-b", "{tmp}/nobuild", "out.kmt", "--", "touch", "ran"], ["-b {tmp}/nobuild"]),
], ids=["out in a missing dir", "out a directory", "missing command", "b without a value",
        "b absolute, no recorder there", "b a missing dir"])
def test_record_program_refuses_bad_arguments_before_running(tmp_path, existing, args, names):
    (tmp_path / "adir").mkdir()
    before = sorted(os.listdir(tmp_path)) + ["tmp"]
    p = record(tmp_path, *(a.format(tmp=tmp_path) for a in args))
    assert_refused(p, *(n.format(tmp=tmp_path) for n in names))
    assert existing.read_bytes() == b"an earlier output\n"
    assert sorted(os.listdir(tmp_path)) == sorted(before), "the command did not run; nothing is written"
    assert os.listdir(tmp_path / "tmp") == [] and os.listdir(tmp_path / "adir") == []


RECORDER = os.environ.get("KMBENCH_RECORDER")
needs_recorder = pytest.mark.skipif(not RECORDER, reason="needs the recorder (ctest sets KMBENCH_RECORDER)")


def build_dir():
    return Path(RECORDER).parents[3]  # BUILD/tools/capture/recorder/libkmbench_recorder.so


@needs_recorder
def test_record_program_keeps_the_busiest_recording(tmp_path, existing):
    p = record(tmp_path, "-b", build_dir(), existing, "--", "/bin/echo", "hi")
    assert p.returncode == 0, p.stderr
    assert f"as {existing} (" in p.stdout
    assert existing.read_bytes().startswith(b"KMBTRACE")
    assert sorted(os.listdir(tmp_path)) == ["existing.txt", "tmp"] and os.listdir(tmp_path / "tmp") == []


@needs_recorder
@pytest.mark.parametrize("command, status, message", [
    (["env", "true"], 1, "no operation recorded"),
    (["ls", "/no-such-file-kmbench"], 1, "the command failed (exit status 2)"),
], ids=["no operation", "command fails"])
def test_record_program_keeps_an_existing_output_when_nothing_or_a_failure_is_recorded(tmp_path, existing, command,
                                                                                       status, message):
    p = record(tmp_path, "-b", build_dir(), existing, "--", *command)
    assert p.returncode == status, p.stderr
    assert message in p.stderr
    assert existing.read_bytes() == b"an earlier output\n"
    failed = tmp_path / "existing.txt.failed"
    assert failed.exists() == ("failed" in message)
    if failed.exists():
        assert failed.read_bytes().startswith(b"KMBTRACE") and f"{failed.name} (" in p.stdout
    assert os.listdir(tmp_path / "tmp") == []
