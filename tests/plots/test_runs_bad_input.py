"""A run directory that was written by hand, merged from elsewhere or damaged
is refused naming the file and the field (plots/runs.py, exit 2 from
`kmbench compare` and `kmbench plot`), never met with a traceback.
Run by ctest (plots.runs_bad_input) as:
    KMBENCH=path/to/kmbench python3 -m pytest tests/plots/test_runs_bad_input.py"""
import json
import os
import shutil
import subprocess

import pytest

import runs


def damaged(fixture_run, tmp_path, change_index=None, change_cell=None):
    """A copy of the fixture run with its index, or its first ok cell file, changed."""
    out = str(tmp_path / "run")
    shutil.copytree(fixture_run, out)
    index_path = os.path.join(out, "index.json")
    with open(index_path) as f:
        index = json.load(f)
    if change_index:
        index = change_index(index)
        with open(index_path, "w") as f:
            json.dump(index, f)
    if change_cell:
        entry = next(e for e in index["cells"] if e["status"] == "ok")
        path = os.path.join(out, entry["file"])
        with open(path) as f:
            cell = json.load(f)
        with open(path, "w") as f:
            json.dump(change_cell(cell), f)
    return out


def refusal(run_dir):
    with pytest.raises(runs.BadInput) as e:
        runs.Run(run_dir)
    return str(e.value)


def first(index, **fields):
    index["cells"][0].update(fields)
    return index


def without(d, key):
    del d[key]
    return d


def test_the_fixture_reads(fixture_run):
    assert len(runs.Run(fixture_run).cells) == 100  # 2 sources, 5 backends, 2 thread counts, 5 repetitions


@pytest.mark.parametrize("change,says", [
    (lambda i: [i], "index.json: not a kmbench.run/1 index"),
    (lambda i: dict(i, cells={"a": 1}), "index.json: cells: is not a list"),
    (lambda i: dict(i, cells=[7]), "index.json: cells[0]: is not an object"),
    (lambda i: first(i, threads="2"), 'index.json: cells[0].threads: is "2", not a whole number'),
    (lambda i: first(i, threads=True), "index.json: cells[0].threads: is true, not a whole number"),
    (lambda i: first(i, label=None), "index.json: cells[0].label: is null, not a string"),
    (lambda i: dict(i, cells=[without(i["cells"][0], "group")]), "index.json: cells[0].group: is missing"),
    (lambda i: first(i, status="done"), 'index.json: cells[0].status: is "done", not ok, failed or pending'),
])
def test_a_damaged_index_is_refused_naming_the_field(fixture_run, tmp_path, change, says):
    assert says in refusal(damaged(fixture_run, tmp_path, change_index=change))


@pytest.mark.parametrize("change,says", [
    (lambda c: [c], "not a kmbench.run-cell/1 file"),
    (lambda c: dict(c, cell=[]), ": cell: is not an object"),
    (lambda c: dict(c, cell=dict(c["cell"], repetition=1.5)), ": cell.repetition: is 1.5, not a whole number"),
    (lambda c: dict(c, cell=dict(c["cell"], id="someone.else.r0")),
     ': cell.id: is "someone.else.r0", but the index'),
    (lambda c: dict(c, status=None), ": status: is null, not ok, failed or pending"),
    (lambda c: dict(c, result=[]), ": result: an ok cell's result is not an object"),
])
def test_a_damaged_cell_file_is_refused_naming_the_file_and_field(fixture_run, tmp_path, change, says):
    message = refusal(damaged(fixture_run, tmp_path, change_cell=change))
    assert says in message and "/cells/" in message


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_compare_and_plot_exit_2_with_the_message(fixture_run, tmp_path):
    bad = damaged(fixture_run, tmp_path, change_index=lambda i: first(i, threads="2"))
    for args in (["compare", fixture_run, bad], ["plot", bad, "-o", str(tmp_path / "charts")]):
        p = subprocess.run([os.environ["KMBENCH"]] + args, capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
        assert "cells[0].threads: is \"2\", not a whole number" in p.stderr
        assert "Traceback" not in p.stderr
