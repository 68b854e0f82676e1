"""tools/: bad arguments and bad input get a short message naming the
argument or file and exit 2 (1 for a run that failed), before anything is
written or deleted, and a failed run keeps the results it would replace.
Stand-ins for kmbench, bench_kpi, valgrind and callgrind_annotate keep every
run short (KMBENCH: the kmbench binary; KMBENCH_SOURCE_DIR: the tree whose
tools/ is tested, by default this one)."""
import gzip
import lzma
import os
import re
import shutil
import stat
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KMBENCH_SOURCE_DIR", os.path.join(HERE, "..", ".."))
TOOLS = os.path.join(SOURCE, "tools")
DATA = os.path.join(HERE, "..", "trace", "data")
KMBENCH = os.environ.get("KMBENCH", os.path.join(SOURCE, "build", "harness", "kmbench"))
needs_kmbench = pytest.mark.skipif(not os.access(KMBENCH, os.X_OK), reason="needs the kmbench binary (KMBENCH)")


def run(tool, *args, env=None, cwd=None):
    cmd = [os.path.join(TOOLS, tool), *map(str, args)]
    if tool.endswith(".py"):
        cmd.insert(0, "/usr/bin/python3")
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd,
                          timeout=110)


def refused(p, *words):
    """Exit 2, each word in the message, and none of bash's, Python's or seq's own."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    for w in words:
        assert w in p.stderr, p.stderr
    for noise in ("Traceback", "unbound variable", "command not found", "seq:"):
        assert noise not in p.stderr, p.stderr
    assert not re.search(r"line \d+: ", p.stderr), p.stderr  # bash's own


def script(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def snapshot(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


def text_capture(tmp_path, name="cap.txt"):
    path = tmp_path / name
    shutil.copy(os.path.join(DATA, "imperfect.ftrace"), path)
    return path


def small_capture(tmp_path, name="cap.txt"):
    """The sample capture's first 3000 lines: a capture each bench takes (no DMA maps), quick to run."""
    with lzma.open(os.path.join(DATA, "ftrace-sample.txt.xz"), "rt") as f:
        lines = [next(f) for _ in range(3000)]
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


# --- bench-profile-fidelity.sh and bench-free-order.sh -----------------------------------------------

BENCHES = ["bench-profile-fidelity.sh", "bench-free-order.sh"]


def earlier_out(tmp_path):
    """An OUTDIR holding an earlier run and its table."""
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "run" / "cells.csv").write_text("an earlier run\n")
    (out / "fidelity.md").write_text("an earlier table\n")
    return out


def real_build(tmp_path):
    (tmp_path / "build" / "harness").mkdir(parents=True)
    os.symlink(os.path.abspath(KMBENCH), tmp_path / "build" / "harness" / "kmbench")
    return {"BUILD": str(tmp_path / "build")}


@needs_kmbench
@pytest.mark.parametrize("tool", BENCHES)
@pytest.mark.parametrize("var, value", [("REPS", "abc"), ("REPS", "0"), ("THREADS", "x"), ("THREADS", "-1")])
def test_bench_refuses_bad_reps_and_threads_keeping_outdir(tmp_path, tool, var, value):
    out = earlier_out(tmp_path)
    before = snapshot(out)
    p = run(tool, out, small_capture(tmp_path), env={**real_build(tmp_path), var: value})
    refused(p, var, repr(value))
    assert snapshot(out) == before


@needs_kmbench
@pytest.mark.parametrize("tool", BENCHES)
def test_bench_refuses_two_captures_of_one_name(tmp_path, tool):
    out = earlier_out(tmp_path)
    before = snapshot(out)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = small_capture(tmp_path / "a", "x.txt"), small_capture(tmp_path / "b", "x.txt.gz")
    b.write_bytes(gzip.compress(b.read_bytes()))
    p = run(tool, out, a, b, env=real_build(tmp_path))
    refused(p, str(a), str(b))
    assert snapshot(out) == before


@needs_kmbench
@pytest.mark.parametrize("tool", BENCHES)
@pytest.mark.parametrize("outdir", ["my-capture.txt.xz", "cap.txt", "notes"])
def test_bench_refuses_a_capture_or_a_file_as_outdir(tmp_path, tool, outdir):
    env = real_build(tmp_path)
    text_capture(tmp_path)
    (tmp_path / "notes").write_text("a file\n")
    before = snapshot(tmp_path)
    p = run(tool, outdir, env=env, cwd=tmp_path)
    refused(p, outdir, "the output directory" if "." in outdir else "not a directory")
    assert snapshot(tmp_path) == before and not (tmp_path / "my-capture.txt.xz").exists()


@pytest.mark.parametrize("tool", BENCHES)
def test_bench_keeps_the_earlier_run_when_the_new_one_fails(tmp_path, tool):
    # A kmbench whose run fails after writing part of its run directory.
    script(tmp_path / "build" / "harness" / "kmbench", """case "$1 $2" in
  "trace profile" | "trace undump") echo '{}' > "$5" ;;
  "trace dump") printf 'kmt-text 1\\nend\\n' ;;
  "run "*) mkdir -p "$4" && echo partial > "$4/cells.csv" && exit 1 ;;
esac
""")
    out = earlier_out(tmp_path)
    p = run(tool, out, small_capture(tmp_path), env={"BUILD": str(tmp_path / "build")})
    assert p.returncode == 1, p.stderr
    assert "kept" in p.stderr, p.stderr
    assert (out / "run" / "cells.csv").read_text() == "an earlier run\n"
    assert (out / "fidelity.md").read_text() == "an earlier table\n"


# --- bench-kpi.sh --------------------------------------------------------------------------------

KPI_FILES = ["zones", "slab", "buddy", "system", "jemalloc", "mimalloc"]


def fake_kpi_build(tmp_path, status):
    """bench_kpi and its jemalloc and mimalloc builds: each empties its --benchmark_out file and exits
    with status, as one that aborts does."""
    for exe in ("bench_kpi", "bench_kpi_jemalloc", "bench_kpi_mimalloc"):
        script(tmp_path / "build" / "kpi" / exe, f"""for a; do case $a in --benchmark_out=*) : > "${{a#*=}}" ;; esac; done
exit {status}
""")
    return {"BUILD": str(tmp_path / "build")}


def kpi_out(tmp_path):
    out = tmp_path / "kpi"
    out.mkdir()
    for name in KPI_FILES:
        (out / f"{name}.json").write_text(f'{{"an earlier result": "{name}"}}\n')
    return out


@pytest.mark.parametrize("reps", ["0", "-1", "abc"])
def test_bench_kpi_refuses_bad_repetitions_keeping_results(tmp_path, reps):
    out = kpi_out(tmp_path)
    before = snapshot(out)
    p = run("bench-kpi.sh", out, reps, env=fake_kpi_build(tmp_path, 0))
    refused(p, "REPETITIONS", repr(reps))
    assert snapshot(out) == before


def test_bench_kpi_keeps_a_result_whose_run_fails(tmp_path):
    out = kpi_out(tmp_path)
    before = snapshot(out)
    p = run("bench-kpi.sh", out, 1, env=fake_kpi_build(tmp_path, 134))
    assert p.returncode == 1, p.stderr
    assert "zones.json is kept" in p.stderr, p.stderr
    assert {k: v for k, v in snapshot(out).items() if k.endswith(".json")} == before


def test_bench_kpi_refuses_a_file_as_outdir(tmp_path):
    (tmp_path / "notes").write_text("a file\n")
    p = run("bench-kpi.sh", tmp_path / "notes", env=fake_kpi_build(tmp_path, 0))
    refused(p, "OUTDIR", "not a directory")
    assert (tmp_path / "notes").read_text() == "a file\n"


# --- kpi-instructions.sh -------------------------------------------------------------------------

# callgrind_annotate's tree under the benchmark loop: the allocation and the free 1000 times each
# (94 and 100 instructions a call); LONG_ANNOTATION goes on, as a real one does, long after.
ANNOTATION = """--------
1,000,000 (100.0%)  *  ???:void (anonymous namespace)::lifo<Own>(benchmark::State&, Own) [/b/bench_kpi]
   94,000 (9.4%)  >   ???:alloc (1,000x) [/b/bench_kpi]
  100,000 (10.0%)  >   ???:free (1,000x) [/b/bench_kpi]
       10 (0.0%)  >   ???:setup (1x) [/b/bench_kpi]

"""
LONG_ANNOTATION = ANNOTATION + "  5 (0.0%)  *  ???:another_function [/b/bench_kpi]\n" * 100000


def fake_callgrind(tmp_path, valgrind_fails=False, annotation=ANNOTATION):
    """A bench_kpi that knows the backends system and slab, a valgrind that writes an empty profile
    (or fails, saying why) and a callgrind_annotate that prints the annotation."""
    script(tmp_path / "build" / "kpi" / "bench_kpi", """case $KMBENCH_BACKEND in system | slab) ;; *)
  echo "kmbench: KMBENCH_BACKEND=$KMBENCH_BACKEND: unknown backend '$KMBENCH_BACKEND' (known: system, slab)" >&2
  exit 2 ;;
esac
""")
    (tmp_path / "annotation").write_text(annotation)
    script(tmp_path / "bin" / "valgrind", ("echo 'valgrind: bench_kpi: no such luck' >&2; exit 1\n" if valgrind_fails else "")
           + """for a; do case $a in --callgrind-out-file=*) : > "${a#*=}" ;; esac; done\n""")
    script(tmp_path / "bin" / "callgrind_annotate", f"cat {tmp_path / 'annotation'}\n")
    return {"BUILD": str(tmp_path / "build"), "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}


def test_kpi_instructions_reads_the_whole_annotation(tmp_path):
    p = run("kpi-instructions.sh", env=fake_callgrind(tmp_path, annotation=LONG_ANNOTATION))
    assert p.returncode == 0, (p.returncode, p.stderr)
    rows = [line for line in p.stdout.splitlines() if line.endswith("| 194 |")]
    assert len(rows) == 5, p.stdout


@pytest.mark.parametrize("args, words", [
    (["bogus"], ["BACKEND-SPEC 'bogus'", "known: system, slab"]),
    (["slab", "63"], ["SIZE", "'63'", "4096"]),
    (["slab", "64", "bogus"], ["PATTERN", "'bogus'", "lifo or batch"]),
])
def test_kpi_instructions_refuses_what_the_benchmark_has_not_before_the_table(tmp_path, args, words):
    p = run("kpi-instructions.sh", *args, env=fake_callgrind(tmp_path))
    refused(p, *words)
    assert p.stdout == ""


@pytest.mark.skipif(not os.access(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(KMBENCH))), "kpi",
                                                "bench_kpi"), os.X_OK), reason="needs build/kpi/bench_kpi")
def test_kpi_instructions_refuses_an_unknown_backend_of_the_real_benchmark():
    p = run("kpi-instructions.sh", "bogus", env={"BUILD": os.path.dirname(os.path.dirname(os.path.abspath(KMBENCH)))})
    refused(p, "BACKEND-SPEC 'bogus'", "unknown backend 'bogus'", "slab")
    assert p.stdout == ""


def test_kpi_instructions_shows_why_a_run_failed(tmp_path):
    p = run("kpi-instructions.sh", env=fake_callgrind(tmp_path, valgrind_fails=True))
    assert p.returncode == 1, p.stderr
    assert "own.call failed" in p.stderr and "no such luck" in p.stderr, p.stderr


# --- import-speed.sh, profile-speed.sh and tracedat-speed.sh -------------------------------------

SPEEDS = ["import-speed.sh", "profile-speed.sh", "tracedat-speed.sh"]


def speed_args(tmp_path, tool, capture=None):
    """The arguments before RUNS: a trace.dat and its text for tracedat-speed.sh."""
    if tool == "tracedat-speed.sh":
        return [capture or os.path.join(DATA, "small-trace.dat"), text_capture(tmp_path)]
    return [capture or text_capture(tmp_path)]


@pytest.mark.parametrize("tool", SPEEDS)
def test_speed_without_arguments_prints_its_usage(tool):
    p = run(tool, env={"KMBENCH": KMBENCH})
    refused(p, f"usage: tools/{tool}")


@needs_kmbench
@pytest.mark.parametrize("tool", SPEEDS)
@pytest.mark.parametrize("runs", ["0", "abc", "-2"])
def test_speed_refuses_bad_runs(tmp_path, tool, runs):
    p = run(tool, *speed_args(tmp_path, tool), runs, env={"KMBENCH": KMBENCH})
    refused(p, "RUNS", repr(runs))
    assert p.stdout == ""


@needs_kmbench
@pytest.mark.parametrize("tool", ["import-speed.sh", "profile-speed.sh"])
@pytest.mark.parametrize("name", ["cap.txt.xz", "cap.txt"])
def test_speed_refuses_a_compressed_capture(tmp_path, tool, name):
    path = tmp_path / name
    if name.endswith(".xz"):
        shutil.copy(os.path.join(DATA, "ftrace-sample.txt.xz"), path)
    else:  # gzip under a plain name: told by its bytes
        with open(os.path.join(DATA, "imperfect.ftrace"), "rb") as f:
            path.write_bytes(gzip.compress(f.read()))
    p = run(tool, path, 1, env={"KMBENCH": KMBENCH})
    refused(p, str(path), "compressed", "decompress it first")
    assert p.stdout == ""


@needs_kmbench
@pytest.mark.parametrize("which", ["swapped", "dat twice"])
def test_tracedat_speed_refuses_files_in_the_wrong_places(tmp_path, which):
    dat, txt = os.path.join(DATA, "small-trace.dat"), str(text_capture(tmp_path))
    args = [txt, dat] if which == "swapped" else [dat, dat]
    p = run("tracedat-speed.sh", *args, 1, env={"KMBENCH": KMBENCH})
    refused(p, args[0] if which == "swapped" else dat, "not a trace.dat" if which == "swapped" else "not text")
    assert p.stdout == ""


@needs_kmbench
@pytest.mark.parametrize("tool", SPEEDS)
def test_speed_refuses_a_directory_as_capture(tmp_path, tool):
    (tmp_path / "dir").mkdir()
    p = run(tool, *speed_args(tmp_path, tool, str(tmp_path / "dir")), 1, env={"KMBENCH": KMBENCH})
    refused(p, str(tmp_path / "dir"), "directory")


@needs_kmbench
@pytest.mark.parametrize("tool", SPEEDS)
def test_speed_passes_kmbench_refusing_a_damaged_capture_through(tmp_path, tool):
    if tool == "tracedat-speed.sh":
        bad = os.path.join(DATA, "damaged-trace.dat")
    else:
        bad = tmp_path / "damaged.txt"
        bad.write_text("not an ftrace line\n")
    p = run(tool, *speed_args(tmp_path, tool, str(bad)), 1, env={"KMBENCH": KMBENCH})
    refused(p, f"kmbench: {bad}")
    assert p.stdout == ""


# --- check-sizes.py ------------------------------------------------------------------------------

needs_git_ctags = pytest.mark.skipif(not (shutil.which("git") and shutil.which("ctags")),
                                     reason="needs git and ctags")


def repo(tmp_path):
    """A repository with a tracked test source of 900 lines (exempt) and a small source."""
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "tests" / "big.cpp").write_text("int x;\n" * 900)
    (root / "src" / "ok.cpp").write_text("int f() {\n  return 1;\n}\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    return root


@needs_git_ctags
def test_check_sizes_refuses_a_negative_list(tmp_path):
    p = run("check-sizes.py", "--root", repo(tmp_path), "--list", "-3")
    refused(p, "--list", "'-3'")
    assert p.stdout == ""


@needs_git_ctags
def test_check_sizes_under_a_subdirectory_keeps_the_exemptions(tmp_path):
    p = run("check-sizes.py", "--root", repo(tmp_path) / "tests")
    assert p.returncode == 0, p.stderr
    assert "big.cpp" not in p.stderr


@needs_git_ctags
def test_check_sizes_skips_a_tracked_file_deleted_from_the_tree(tmp_path):
    root = repo(tmp_path)
    (root / "src" / "ok.cpp").unlink()
    p = run("check-sizes.py", "--root", root)
    assert p.returncode == 0, p.stderr
    assert "0 files" in p.stdout, p.stdout


@needs_git_ctags
@pytest.mark.parametrize("which, words", [("missing", ["not a directory"]), ("file", ["not a directory"]),
                                          ("no repository", ["not a git repository"])])
def test_check_sizes_refuses_a_root_outside_a_repository(tmp_path, which, words):
    root = {"missing": tmp_path / "nope", "file": tmp_path / "notes", "no repository": tmp_path}[which]
    (tmp_path / "notes").write_text("a file\n")
    # git looks no higher than tmp_path (pytest may put it inside a checkout: a build directory)
    p = run("check-sizes.py", "--root", root, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    refused(p, f"--root {root}", *words)
