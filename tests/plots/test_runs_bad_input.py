"""A run directory that was written by hand, merged from elsewhere or damaged
is refused naming the file and the field (plots/runs.py, exit 2 from
`kmbench compare` and `kmbench plot`), never met with a traceback; so are
two runs with nothing to compare, a --baseline the run lacks, a --compare run
that does not read (before any chart is written), a profile_fidelity.py run
without capture pairs, with half a pair, without a figure the table needs or
with a --json path it cannot write, and a rankings.py --pair that is no pair or
run with nothing to rank.
Run by ctest (plots.runs_bad_input) as:
    KMBENCH=path/to/kmbench python3 -m pytest tests/plots/test_runs_bad_input.py"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import leaderboard
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


def ok_cell_file(run_dir):
    """The path of the run's first ok cell file."""
    with open(os.path.join(run_dir, "index.json")) as f:
        entry = next(e for e in json.load(f)["cells"] if e["status"] == "ok")
    return os.path.join(run_dir, entry["file"])


def without_first_ok_cell_file(fixture_run, tmp_path):
    out = damaged(fixture_run, tmp_path)
    os.remove(ok_cell_file(out))
    return out


def test_an_ok_cell_whose_file_is_missing_is_refused_naming_the_file(fixture_run, tmp_path):
    out = without_first_ok_cell_file(fixture_run, tmp_path)
    message = refusal(out)
    assert ok_cell_file(out) in message and "is missing, but the index" in message and "as ok" in message


def test_a_run_without_its_cells_directory_is_refused(fixture_run, tmp_path):
    out = damaged(fixture_run, tmp_path)
    shutil.rmtree(os.path.join(out, "cells"))
    assert "/cells/" in refusal(out) and "is missing, but the index" in refusal(out)


def test_a_failed_cell_without_its_file_is_still_read(fixture_run, tmp_path):
    out = damaged(fixture_run, tmp_path)
    with open(os.path.join(out, "index.json")) as f:
        failed = [e for e in json.load(f)["cells"] if e["status"] == "failed"]
    for e in failed:
        os.remove(os.path.join(out, e["file"]))
    assert len(runs.Run(out).cells) == 100 - len(failed)


def set_in_result(cell, path, value):
    obj = cell["result"]
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    return cell


@pytest.mark.parametrize("path,value,says", [
    (("ops_per_sec",), "fast", 'result.ops_per_sec: is "fast", not a number'),
    (("ops_per_sec",), True, "result.ops_per_sec: is true, not a number"),
    (("allocator_ns_per_op",), {"ns": 1}, 'result.allocator_ns_per_op: is {"ns": 1}, not a number'),
    (("footprint", "peak_footprint_bytes"), "4 MiB", 'result.footprint.peak_footprint_bytes: is "4 MiB", not a number'),
    (("footprint",), 5, "result.footprint: is 5, not an object"),
    (("time", "allocator_ns"), "12", 'result.time.allocator_ns: is "12", not a number'),
    (("dma", "transfers"), [1], "result.dma.transfers: is [1], not a number"),
])
def test_a_metric_that_is_not_a_number_is_refused_naming_the_file_and_field(fixture_run, tmp_path, path, value,
                                                                            says):
    message = refusal(damaged(fixture_run, tmp_path, change_cell=lambda c: set_in_result(c, path, value)))
    assert says in message and "/cells/" in message


def test_a_null_metric_is_no_value_not_an_error(fixture_run, tmp_path):
    """As --no-latency writes them (docs/REPLAY.md): allocator time and time.* parts null."""
    def no_latency(cell):
        for path in (("allocator_ns_per_op",), ("time", "allocator_ns"), ("time", "touch_ns"),
                     ("time", "harness_ns"), ("footprint", "fragmentation")):
            set_in_result(cell, path, None)
        return cell
    out = damaged(fixture_run, tmp_path, change_cell=no_latency)
    run = runs.Run(out)
    cell = next(c for c in run.cells if c["status"] == "ok")
    group = cell["cell"]["group"]
    ok = sum(1 for c in run.ok() if c["cell"]["group"] == group)
    assert len(run.values(group, ("allocator_ns_per_op",))) == ok - 1
    assert len(run.values(group, ("ops_per_sec",))) == ok


def kmbench(*args):
    p = subprocess.run([os.environ["KMBENCH"], *args], capture_output=True, text=True)
    assert "Traceback" not in p.stderr, (args, p.stderr)
    return p


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_compare_and_plot_exit_2_naming_a_missing_or_non_numeric_cell(fixture_run, tmp_path):
    missing = without_first_ok_cell_file(fixture_run, tmp_path / "missing")
    not_number = damaged(fixture_run, tmp_path / "not_number",
                         change_cell=lambda c: set_in_result(c, ("ops_per_sec",), "fast"))
    for bad, says in ((missing, f"{ok_cell_file(missing)}: is missing"),
                      (not_number, f'{ok_cell_file(not_number)}: result.ops_per_sec: is "fast", not a number')):
        for args in (["compare", fixture_run, bad], ["plot", bad, "-o", str(tmp_path / "charts")]):
            p = kmbench(*args)
            assert p.returncode == 2, (args, p.stderr)
            assert says in p.stderr


def with_cell(cell, **fields):
    cell["cell"].update(fields)
    return cell


# The first ok cell of the fixture is cells[0] of its index: nic.system.t1.local.real.fast.r0.
@pytest.mark.parametrize("change,says", [
    (lambda c: with_cell(c, backend="slab"), 'cell.backend: is "slab", but the index ({index}: cells[0].backend) '
                                             'has "system"'),
    (lambda c: with_cell(c, group="nic.slab.t1.local.real.fast"),
     'cell.group: is "nic.slab.t1.local.real.fast", but the index ({index}: cells[0].group) has '
     '"nic.system.t1.local.real.fast"'),
    (lambda c: with_cell(c, label="churn"),
     'cell.label: is "churn", but the index ({index}: cells[0].label) has "nic"'),
    (lambda c: with_cell(c, threads=2), "cell.threads: is 2, but the index ({index}: cells[0].threads) has 1"),
    (lambda c: with_cell(c, placement="remote"),
     'cell.placement: is "remote", but the index ({index}: cells[0].placement) has "local"'),
    (lambda c: with_cell(c, repetition=4), "cell.repetition: is 4, but the index ({index}: cells[0].repetition) has 0"),
    (lambda c: with_cell(c, source_kind="trace"),
     'cell.source_kind: is "trace", but the index ({index}: cells[0].source_kind) has "workload"'),
    (lambda c: dict(c, status="failed", result=None),
     'status: is "failed", but the index ({index}: cells[0].status) has "ok"'),
])
def test_a_cell_file_that_disagrees_with_its_index_entry_is_refused_naming_both(fixture_run, tmp_path, change, says):
    """The index sorts a cell into its group, its file gives the figures: a file of another backend, source,
    thread count, ... or status would count under the wrong group."""
    out = damaged(fixture_run, tmp_path, change_cell=change)
    assert f"{ok_cell_file(out)}: " + says.format(index=os.path.join(out, "index.json")) in refusal(out)


def test_an_index_entry_failed_whose_file_says_ok_is_refused(fixture_run, tmp_path):
    """Else groups() counts the repetition as failed while values() takes its figures."""
    out = damaged(fixture_run, tmp_path, change_index=lambda i: first(i, status="failed"))
    path = os.path.join(out, "cells", "nic.system.t1.local.real.fast.r0.json")
    assert (f'{path}: status: is "ok", but the index ({out}/index.json: cells[0].status) has "failed"'
            in refusal(out))


def test_a_sweep_point_is_compared_with_its_index_entry_too(fixture_run, tmp_path):
    """sweep and base_label, which kmbench run writes in both, are compared too (the fixture's cells hold
    neither: a field only one side holds is not compared)."""
    def sweep_index(index):
        for e in index["cells"]:
            e.update(sweep=[["packets", "200"]], base_label="nic")
        return index
    out = damaged(fixture_run, tmp_path, change_index=sweep_index)
    for name in os.listdir(os.path.join(out, "cells")):
        path = os.path.join(out, "cells", name)
        with open(path) as f:
            cell = json.load(f)
        cell["cell"].update(sweep=[["packets", "200"]], base_label="nic")
        with open(path, "w") as f:
            json.dump(cell, f)
    assert len(runs.Run(out).cells) == 100
    with open(ok_cell_file(out)) as f:
        cell = json.load(f)
    with open(ok_cell_file(out), "w") as f:
        json.dump(with_cell(cell, sweep=[["packets", "400"]]), f)
    assert 'cell.sweep: is [["packets", "400"]], but the index' in refusal(out)


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_compare_and_plot_exit_2_naming_a_cell_file_that_disagrees_with_its_index(fixture_run, tmp_path):
    bad = damaged(fixture_run, tmp_path, change_cell=lambda c: with_cell(c, backend="slab"))
    says = (f'{ok_cell_file(bad)}: cell.backend: is "slab", but the index ({bad}/index.json: cells[0].backend) '
            'has "system"')
    for args in (["compare", fixture_run, bad], ["plot", bad, "-o", str(tmp_path / "charts")]):
        p = kmbench(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert says in p.stderr


def entry(index, **fields):
    index["cells"][0].update(fields)
    return index


def machine(index, **fields):
    index["environment"]["machine"].update(fields)
    return index


@pytest.mark.parametrize("change,says", [
    (lambda i: dict(i, backends="system"), 'index.json: backends: is "system", not a list of strings'),
    (lambda i: dict(i, backends=["system", 3]), 'index.json: backends: is ["system", 3], not a list of strings'),
    (lambda i: dict(i, op_kinds={"alloc": 1}), 'index.json: op_kinds: is {"alloc": 1}, not a list of strings'),
    (lambda i: dict(i, summary=[]), "index.json: summary: is [], not an object"),
    (lambda i: dict(i, summary=dict(i["summary"], ok="all")), 'index.json: summary.ok: is "all", not a whole number'),
    (lambda i: dict(i, matrix="fixture"), 'index.json: matrix: is "fixture", not an object'),
    (lambda i: dict(i, environment=None), "index.json: environment: is null, not an object"),
    (lambda i: dict(i, environment=dict(i["environment"], machine="Fixture CPU")),
     'index.json: environment.machine: is "Fixture CPU", not an object'),
    (lambda i: machine(i, memory_bytes="8 GiB"),
     'index.json: environment.machine.memory_bytes: is "8 GiB", not a number'),
    (lambda i: machine(i, load_avg="0.5 0.25"), 'index.json: environment.machine.load_avg: is "0.5 0.25", not a list'),
    (lambda i: machine(i, cpu_governor={"performance": "0"}),
     'environment.machine.cpu_governor: is {"performance": "0"}, not a string or an object of CPU lists'),
    (lambda i: machine(i, smt={"active": "yes"}),
     'index.json: environment.machine.smt.active: is "yes", not true or false'),
    (lambda i: machine(i, not_read=None), "index.json: environment.machine.not_read: is null, not an object"),
    (lambda i: dict(i, environment=dict(i["environment"], versions={"kmbench": "0.1.0"})),
     'index.json: environment.versions.kmbench: is "0.1.0", not an object'),
    (lambda i: dict(i, shards=[{"shard": 1}]), "index.json: shards[0].shard: is 1, not a string"),
    (lambda i: dict(i, topology=dict(i["topology"], real_nodes="1")),
     'index.json: topology.real_nodes: is "1", not a whole number'),
    (lambda i: dict(i, latency_reference=[]), "index.json: latency_reference: is [], not an object"),
    (lambda i: entry(i, sweep=[["magazine", 16]]),
     'index.json: cells[0].sweep: is [["magazine", 16]], not a list of [key, value] pairs of strings'),
    (lambda i: entry(i, base_label=None), "index.json: cells[0].base_label: is null, not a string"),
])
def test_an_index_field_of_another_type_is_refused_naming_its_json_path(fixture_run, tmp_path, change, says):
    assert says in refusal(damaged(fixture_run, tmp_path, change_index=change))


def test_an_index_field_null_or_absent_where_that_means_not_recorded_still_reads(fixture_run, tmp_path):
    def not_recorded(index):
        index.update(backends=None, op_kinds=None, latency_reference=None)
        del index["summary"]
        return machine(index, memory_bytes=None, caches=None, load_avg=None, cpu_governor=None, smt=None,
                       transparent_hugepages=None)
    assert len(runs.Run(damaged(fixture_run, tmp_path, change_index=not_recorded)).cells) == 100


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
@pytest.mark.parametrize("change,says", [
    (lambda i: dict(i, environment=dict(i["environment"], machine="Fixture CPU")),
     'index.json: environment.machine: is "Fixture CPU", not an object'),
    (lambda i: dict(i, backends="system"), 'index.json: backends: is "system", not a list of strings'),
])
def test_compare_and_plot_exit_2_naming_an_index_field_of_another_type(fixture_run, tmp_path, change, says):
    bad = damaged(fixture_run, tmp_path, change_index=change)
    for args in (["compare", fixture_run, bad], ["plot", bad, "-o", str(tmp_path / "charts")]):
        p = kmbench(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert f"{bad}/{says}" in p.stderr


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_plot_to_a_file_exits_2_naming_the_option_and_leaves_the_file(fixture_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("kept\n")
    p = kmbench("plot", fixture_run, "-o", str(afile))
    assert p.returncode == 2, p.stderr
    assert f"-o {afile}: is not a directory" in p.stderr
    assert afile.read_text() == "kept\n"


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
@pytest.mark.parametrize("where,says", [
    ("nonexist/dir/x.json", "nonexist/dir does not exist"),
    ("somedir", "is a directory"),
    ("afile/x.json", "afile is not a directory"),
])
def test_compare_json_that_cannot_be_written_exits_2_naming_the_option(fixture_run, tmp_path, where, says):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "afile").write_text("kept\n")
    path = str(tmp_path / where)
    p = kmbench("compare", fixture_run, fixture_run, "--json", path)
    assert p.returncode == 2, p.stderr
    line = next(l for l in p.stderr.splitlines() if "--json" in l)
    assert f"--json {path}: " in line and says in line
    assert (tmp_path / "afile").read_text() == "kept\n"


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_compare_json_is_written(fixture_run, tmp_path):
    path = tmp_path / "x.json"
    p = kmbench("compare", fixture_run, fixture_run, "--json", str(path))
    assert p.returncode == 0, p.stderr
    assert json.loads(path.read_text())["verdict"] in p.stdout
    assert not os.path.exists(str(path) + ".tmp")


def with_cells(fixture_run, tmp_path, keep):
    """A copy of the fixture run with only the index entries `keep` accepts."""
    return damaged(fixture_run, tmp_path, change_index=lambda i: dict(i, cells=[e for e in i["cells"] if keep(e)]))


def all_failed(fixture_run, tmp_path):
    """A copy of the fixture run whose every cell failed (without its file, as a failed cell may be)."""
    def fail_all(index):
        for e in index["cells"]:
            e["status"] = "failed"
        return index
    out = damaged(fixture_run, tmp_path, change_index=fail_all)
    shutil.rmtree(os.path.join(out, "cells"))
    return out


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
@pytest.mark.parametrize("other", ["another matrix", "every cell failed", "no cells"])
def test_compare_of_runs_sharing_no_successful_group_exits_2_and_leaves_the_json(fixture_run, tmp_path, other):
    """CI reads the exit status: "nothing to compare" is no pass."""
    run_a = with_cells(fixture_run, tmp_path / "a", keep=lambda e: e["label"] == "nic")
    run_b = {"another matrix": lambda: with_cells(fixture_run, tmp_path / "b", keep=lambda e: e["label"] == "churn"),
             "every cell failed": lambda: all_failed(fixture_run, tmp_path / "b"),
             "no cells": lambda: with_cells(fixture_run, tmp_path / "b", keep=lambda e: False)}[other]()
    earlier = tmp_path / "cmp.json"
    earlier.write_text("kept\n")
    p = kmbench("compare", run_a, run_b, "--json", str(earlier))
    assert p.returncode == 2, p.stderr
    assert f"{run_a} and {run_b}: the runs share no group with successful cells in both" in p.stderr
    assert earlier.read_text() == "kept\n"


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_compare_of_runs_sharing_some_successful_group_exits_0(fixture_run, tmp_path):
    p = kmbench("compare", fixture_run, with_cells(fixture_run, tmp_path, keep=lambda e: e["label"] == "nic"))
    assert p.returncode == 0, p.stderr
    assert "only in run A" in p.stdout


CATALOGUE = ["system", "mimalloc", "zones", "slab", "buddy", "jemalloc"]  # index "backends": every one kmbench has


def with_catalogue(index):
    index["backends"] = CATALOGUE
    return index


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
@pytest.mark.parametrize("run,baseline,says", [
    ("no cells", "nosuch", "--baseline nosuch: the run has no such backend (it has no cells)"),
    ("catalogue lists it", "mimalloc", "--baseline mimalloc: the run has no such backend (it has system, zones"),
])
def test_plot_with_a_baseline_the_run_lacks_exits_2_naming_the_option(fixture_run, tmp_path, run, baseline, says):
    if run == "no cells":
        bad = with_cells(fixture_run, tmp_path, keep=lambda e: False)
    else:  # a backend of the catalogue the matrix did not run
        bad = damaged(fixture_run, tmp_path, change_index=with_catalogue)
    out = tmp_path / "report"
    p = kmbench("plot", bad, "-o", str(out), "--baseline", baseline)
    assert p.returncode == 2, p.stderr
    assert says in p.stderr
    assert not out.exists()


def test_the_default_baseline_is_a_backend_with_cells(fixture_run, tmp_path):
    """Not system when the catalogue lists it but the matrix did not run it: every verdict would be missing."""
    no_system = damaged(fixture_run, tmp_path, change_index=lambda i: with_catalogue(
        dict(i, cells=[e for e in i["cells"] if e["backend"] != "system"])))
    assert leaderboard.pick_baseline(runs.Run(no_system)) == "zones"
    no_cells = with_cells(fixture_run, tmp_path / "empty", keep=lambda e: False)
    assert leaderboard.pick_baseline(runs.Run(no_cells)) is None


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs KMBENCH=path/to/kmbench")
def test_plot_with_a_damaged_compare_run_exits_2_before_writing_anything(fixture_run, tmp_path):
    bad = damaged(fixture_run, tmp_path, change_index=lambda i: first(i, threads="2"))
    out = tmp_path / "report"
    p = kmbench("plot", fixture_run, "-o", str(out), "--compare", bad)
    assert p.returncode == 2, p.stderr
    assert f"{bad}/index.json: cells[0].threads: is \"2\", not a whole number" in p.stderr
    assert not out.exists()


def profile_fidelity(*args):
    script = os.path.join(os.path.dirname(runs.__file__), "profile_fidelity.py")
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert "Traceback" not in p.stderr, (args, p.stderr)
    return p


def capture_pair(fixture_run, tmp_path, names=None):
    """A copy of the fixture run whose sources are one capture: nic as cap-real, churn as cap-synth (or
    its sources renamed as `names` says)."""
    names = names or {"nic": "cap-real", "churn": "cap-synth"}
    out = damaged(fixture_run, tmp_path, change_index=lambda i: dict(
        i, cells=[dict(e, label=names[e["label"]]) for e in i["cells"]]))
    for name in os.listdir(os.path.join(out, "cells")):
        path = os.path.join(out, "cells", name)
        with open(path) as f:
            cell = json.load(f)
        cell["cell"]["label"] = names[cell["cell"]["label"]]
        with open(path, "w") as f:
            json.dump(cell, f)
    return out


def test_profile_fidelity_of_a_run_without_capture_pairs_exits_2(fixture_run):
    p = profile_fidelity(fixture_run)
    assert p.returncode == 2, p.stderr
    assert f"{fixture_run}: no capture pairs found" in p.stderr


@pytest.mark.parametrize("where,says", [
    ("nonexist/dir/x.json", "nonexist/dir does not exist"),
    ("somedir", "is a directory"),
    ("afile/x.json", "afile is not a directory"),
])
def test_profile_fidelity_json_that_cannot_be_written_exits_2_naming_the_option(fixture_run, tmp_path, where, says):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "afile").write_text("kept\n")
    path = str(tmp_path / where)
    p = profile_fidelity(capture_pair(fixture_run, tmp_path), "--json", path)
    assert p.returncode == 2, p.stderr
    assert f"--json {path}: " in p.stderr and says in p.stderr
    assert p.stdout == ""  # refused before any work
    assert (tmp_path / "afile").read_text() == "kept\n"


def test_profile_fidelity_json_is_written(fixture_run, tmp_path):
    path = tmp_path / "fidelity.json"
    p = profile_fidelity(capture_pair(fixture_run, tmp_path), "--json", str(path))
    assert p.returncode == 0, p.stderr
    assert [r["capture"] for r in json.loads(path.read_text())] == ["cap"]
    assert "| cap |" in p.stdout
    assert not os.path.exists(str(path) + ".tmp")


DELETE = object()  # in_ok_cell: remove the figure


def in_ok_cell(run_dir, path, value):
    """The run's first ok cell file with the figure at `path` set to value (None: null), or removed (DELETE)."""
    with open(ok_cell_file(run_dir)) as f:
        cell = json.load(f)
    if value is DELETE:
        obj = cell["result"]
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    else:
        set_in_result(cell, path, value)
    with open(ok_cell_file(run_dir), "w") as f:
        json.dump(cell, f)
    return run_dir


@pytest.mark.parametrize("path,value,says", [
    (("allocator_ns_per_op",), None, "result.allocator_ns_per_op: is null or missing, and the profile fidelity "
                                     "table needs it (a run made with --no-latency times no calls)"),
    (("allocator_ns_per_op",), DELETE, "result.allocator_ns_per_op: is null or missing"),
    (("footprint", "peak_live_bytes"), None, "result.footprint.peak_live_bytes: is null or missing"),
    (("footprint", "peak_footprint_bytes"), None, "result.footprint.peak_footprint_bytes: is null or missing"),
    (("footprint", "peak_footprint_bytes"), 0, "result.footprint.peak_footprint_bytes: is 0, not a peak above 0 bytes"),
    (("footprint", "peak_live_bytes"), 0, "result.footprint.peak_live_bytes: is 0, not a peak above 0 bytes"),
])
def test_profile_fidelity_without_a_figure_it_needs_exits_2_naming_the_cell_file(fixture_run, tmp_path, path, value,
                                                                                 says):
    run = in_ok_cell(capture_pair(fixture_run, tmp_path), path, value)
    p = profile_fidelity(run)
    assert p.returncode == 2, p.stderr
    assert f"{ok_cell_file(run)}: {says}" in p.stderr


@pytest.mark.parametrize("lone", ["lone-synth", "lone-real"])
def test_profile_fidelity_with_half_a_capture_pair_exits_2_naming_the_label(fixture_run_with_trace, tmp_path, lone):
    """Beside a whole pair (cap), a NAME-synth without NAME-real, or the reverse, is not passed over."""
    run = capture_pair(fixture_run_with_trace, tmp_path, {"nic": "cap-real", "churn": "cap-synth", "capture": lone})
    p = profile_fidelity(run)
    assert p.returncode == 2, p.stderr
    other = lone.replace("synth", "real") if lone.endswith("synth") else lone.replace("real", "synth")
    assert f"{run}: label {lone} has no {other} beside it" in p.stderr


def rankings(*args):
    script = os.path.join(os.path.dirname(runs.__file__), "rankings.py")
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert "Traceback" not in p.stderr, (args, p.stderr)
    return p


@pytest.mark.parametrize("pair", ["nic", "nic:", ":churn"])
def test_rankings_with_a_pair_that_is_not_label_colon_other_exits_2_naming_the_option(fixture_run, pair):
    p = rankings(fixture_run, "--pair", pair)
    assert p.returncode == 2, p.stderr
    assert f"--pair {pair}: is not LABEL:OTHER" in p.stderr
    assert p.stdout == ""  # refused before any ranking


def no_allocator_time(fixture_run, tmp_path):
    """A copy of the fixture run as --no-latency writes it: every allocator time null."""
    out = damaged(fixture_run, tmp_path)
    for name in os.listdir(os.path.join(out, "cells")):
        path = os.path.join(out, "cells", name)
        with open(path) as f:
            cell = json.load(f)
        if cell["status"] == "ok":
            with open(path, "w") as f:
                json.dump(set_in_result(cell, ("allocator_ns_per_op",), None), f)
    return out


@pytest.mark.parametrize("run,says", [
    ("no cells", "the run has no cells, nothing to rank"),
    ("every cell failed", "no cell has an allocator time to rank by"),
    ("no allocator time", "no cell has an allocator time to rank by"),
])
def test_rankings_of_a_run_with_nothing_to_rank_exits_2(fixture_run, tmp_path, run, says):
    run_dir = {"no cells": lambda: with_cells(fixture_run, tmp_path, keep=lambda e: False),
               "every cell failed": lambda: all_failed(fixture_run, tmp_path),
               "no allocator time": lambda: no_allocator_time(fixture_run, tmp_path)}[run]()
    p = rankings(run_dir)
    assert p.returncode == 2, p.stderr
    assert f"{run_dir}: {says}" in p.stderr


def test_rankings_of_the_fixture_exits_0(fixture_run):
    p = rankings(fixture_run, "--pair", "nic:churn")
    assert p.returncode in (0, 1), p.stderr
    assert "== nic t2 vs churn t2:" in p.stdout
