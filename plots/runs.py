"""Reading a kmbench run directory (results/README.md), and comparing two runs
group by group (the statistics are stats.py's).

A missing or failed cell has no value: it is absent from every list here,
never a zero.
"""
import json
import math
import os
import sys

from stats import DEFAULT_ALPHA, DEFAULT_MARGIN, compare_samples, judge

EXIT_BAD_INPUT = 2

# (key, JSON path inside a cell's result, unit, which way is better)
METRICS = [
    ("allocator_ns_per_op", ("allocator_ns_per_op",), "ns", "lower"),
    ("ops_per_sec", ("ops_per_sec",), "ops/s", "higher"),
    ("alloc_p50_ns", ("latency", "alloc", "p50_ns"), "ns", "lower"),
    ("alloc_p99_ns", ("latency", "alloc", "p99_ns"), "ns", "lower"),
    ("free_p99_ns", ("latency", "free", "p99_ns"), "ns", "lower"),
    ("peak_footprint_bytes", ("footprint", "peak_footprint_bytes"), "bytes", "lower"),
    ("fragmentation", ("footprint", "fragmentation"), "footprint/live", "lower"),
]


class BadInput(Exception):
    """A run directory or file that cannot be read; exits 2."""


def fail_bad_input(err):
    print(f"kmbench: {err}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def output_dir(option, path):
    """Creates the directory an option names (and its parents), or BadInput naming the option, the
    path and why not."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadInput(f"{option} {path}: is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise BadInput(f"{option} {path}: cannot create the directory ({e.strerror})")


def check_output_file(option, path):
    """Before anything is computed: the file an option names can be written (it is not a directory,
    its directory exists), or BadInput naming the option, the path and why not."""
    parent = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise BadInput(f"{option} {path}: is a directory")
    if not os.path.isdir(parent):
        raise BadInput(f"{option} {path}: its directory {parent} "
                       f"{'is not a directory' if os.path.exists(parent) else 'does not exist'}")


def write_output(option, path, text):
    """text into the file an option names, atomically (a temporary file, then rename: an earlier file
    stays whole when this fails), or BadInput naming the option, the path and why not."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise BadInput(f"{option} {path}: cannot write ({e.strerror})")


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})")
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{e.lineno}: not valid JSON ({e.msg})")


def dig(obj, path):
    """obj[path[0]][path[1]]... as a float, or None when absent or null (a figure a cell did not
    measure, e.g. time.* with --no-latency: docs/REPLAY.md). A value of another type (a string, a
    bool, an object where a number belongs, or a number or string where an object belongs) is no
    figure: BadInput naming the JSON path, never a value silently dropped."""
    for i, key in enumerate(path):
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise BadInput(f"{'.'.join(path[:i])}: is {json.dumps(obj)[:40]}, not an object")
        if key not in obj:
            return None
        obj = obj[key]
    if obj is None:
        return None
    if isinstance(obj, bool) or not isinstance(obj, (int, float)):
        raise BadInput(f"{'.'.join(path)}: is {json.dumps(obj)[:40]}, not a number")
    v = float(obj)
    return v if math.isfinite(v) else None


# The fields every reader here takes from an index entry and a cell file's
# "cell", with their JSON types (results/README.md): a run written by hand,
# merged from elsewhere or damaged is refused naming the field, not met with
# a traceback half way through a chart.
ENTRY_FIELDS = {"id": str, "group": str, "status": str, "file": str, "backend": str, "label": str,
                "threads": int, "placement": str, "topology": str, "mode": str}
CELL_FIELDS = {"id": str, "group": str, "backend": str, "label": str, "threads": int, "repetition": int}
STATUSES = ("ok", "failed", "pending")
# What an index entry and its cell file's "cell" both hold (kmbench run writes both from one cell): the
# index sorts a cell into its group and the file gives its figures, so they must agree.
SHARED_FIELDS = ("id", "group", "backend", "label", "source_kind", "threads", "placement", "topology", "mode",
                 "repetition", "sweep", "base_label")

# Every figure the readers here take from an ok cell's result with dig() (METRICS; the charts' time
# split, faults, DMA and live bytes): each is a number or null, checked when the run is read.
NUMBER_PATHS = list(dict.fromkeys(
    [path for _, path, _, _ in METRICS] +
    [("events",), ("faults", "minor_per_op"), ("footprint", "peak_live_bytes")] +
    [("dma", k) for k in ("transfers", "segments", "segments_per_transfer", "bounce_bytes")] +
    [("time", k) for k in ("allocator_ns", "touch_ns", "dma_ns", "wait_ns", "harness_ns", "sampling_ns",
                           "pacing_ns", "idle_ns")]))


# The index's other fields the readers take (results/README.md): (JSON path, what it must be, whether null
# stands for "not recorded"); "*" is every member of an object or list. An absent field is not recorded.
INDEX_FIELDS = [
    (("backends",), "a list of strings", True),
    (("op_kinds",), "a list of strings", True),
    (("summary",), "an object", False),
    *((("summary", k), "a whole number", False) for k in ("cells", "ok", "failed", "pending")),
    (("matrix",), "an object", False),
    *((("matrix", k), "a string", False) for k in ("name", "path", "hash", "text")),
    (("shards",), "a list of objects", False),
    (("shards", "*", "shard"), "a string", False),
    (("topology",), "an object", False),
    (("topology", "real_nodes"), "a whole number", False),
    (("topology", "used"), "an object", False),
    (("topology", "used", "*"), "an object", False),
    (("latency_reference",), "an object", True),
    (("environment",), "an object", False),
    (("environment", "git"), "an object", False),
    (("environment", "versions"), "an object", False),
    (("environment", "versions", "*"), "an object", False),
    (("environment", "machine"), "an object", False),
    (("environment", "machine", "memory_bytes"), "a number", True),
    (("environment", "machine", "caches"), "a list of objects", True),
    (("environment", "machine", "load_avg"), "a list of numbers", True),
    (("environment", "machine", "cpu_governor"), "a string or an object of CPU lists", True),
    (("environment", "machine", "smt"), "an object", True),
    (("environment", "machine", "smt", "active"), "true or false", True),
    (("environment", "machine", "transparent_hugepages"), "an object", True),
    (("environment", "machine", "not_read"), "an object", False),
    # a cell entry's sweep point (the sweep charts group and order by them)
    (("cells", "*", "sweep"), "a list of [key, value] pairs of strings", False),
    (("cells", "*", "base_label"), "a string", False),
]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


KINDS = {
    "an object": lambda v: isinstance(v, dict),
    "a string": lambda v: isinstance(v, str),
    "a number": is_number,
    "a whole number": is_whole,
    "true or false": lambda v: isinstance(v, bool),
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "a list of numbers": lambda v: isinstance(v, list) and all(is_number(x) for x in v),
    "a list of objects": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "a list of [key, value] pairs of strings": lambda v: isinstance(v, list) and all(
        isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in v),
    "a string or an object of CPU lists": lambda v: isinstance(v, str) or isinstance(v, dict) and all(
        isinstance(cpus, list) and all(is_whole(c) for c in cpus) for cpus in v.values()),
}


def members(obj, path, where):
    """(JSON path, value) of each field `path` names in obj, null ones too; none below an absent or null
    field, or below one of another type (its own entry in INDEX_FIELDS names it)."""
    key, rest = path[0], path[1:]
    if key == "*" and isinstance(obj, dict):
        found = [(f"{where}.{k}", v) for k, v in obj.items()]
    elif key == "*" and isinstance(obj, list):
        found = [(f"{where}[{i}]", v) for i, v in enumerate(obj)]
    elif key != "*" and isinstance(obj, dict) and key in obj:
        found = [(f"{where}.{key}" if where else key, obj[key])]
    else:
        found = []
    for name, v in found:
        if not rest:
            yield name, v
        elif v is not None:
            yield from members(v, rest, name)


def check_index_fields(index, where):
    """Each of INDEX_FIELDS the index holds is what the readers take it for, or BadInput naming its JSON
    path (a field is checked before its members)."""
    for path, kind, nullable in INDEX_FIELDS:
        for name, v in members(index, path, ""):
            if not (v is None and nullable) and not KINDS[kind](v):
                raise BadInput(f"{where}: {name}: is {json.dumps(v)[:40]}, not {kind}")


def check_fields(obj, fields, where):
    """obj must be a JSON object holding each of `fields` with its type (a bool is no number)."""
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: is not an object")
    for key, kind in fields.items():
        v = obj.get(key)
        if key not in obj:
            raise BadInput(f"{where}.{key}: is missing")
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise BadInput(f"{where}.{key}: is {json.dumps(v)[:40]}, not {'a whole number' if kind is int else 'a string'}")


def check_agrees(cell, path, entry, where):
    """A cell file says what its index entry says of the cell (SHARED_FIELDS, as far as both hold them)
    and of its status, or BadInput naming the file, the field and both values: the index sorts the cell
    into its group, the file gives its figures."""
    pairs = [(f"cell.{k}", cell["cell"][k], k, entry[k]) for k in SHARED_FIELDS if k in cell["cell"] and k in entry]
    for field, mine, key, theirs in pairs + [("status", cell["status"], "status", entry["status"])]:
        if mine != theirs or type(mine) is not type(theirs):
            raise BadInput(f"{path}: {field}: is {json.dumps(mine)[:40]}, but the index ({where}.{key}) "
                           f"has {json.dumps(theirs)[:40]}")


class Run:
    """One run directory: its index and cell files."""

    def __init__(self, run_dir):
        self.dir = run_dir
        index_path = os.path.join(run_dir, "index.json")
        if not os.path.isfile(index_path):
            raise BadInput(f"{run_dir}: not a run directory (no index.json)")
        self.index = read_json(index_path)
        if not isinstance(self.index, dict) or self.index.get("schema") != "kmbench.run/1":
            raise BadInput(f"{index_path}: not a kmbench.run/1 index")
        check_index_fields(self.index, index_path)
        entries = self.index.get("cells", [])
        if not isinstance(entries, list):
            raise BadInput(f"{index_path}: cells: is not a list")
        self.cells = []  # cell files (dicts), in index order; pending cells have none
        self.files = {}  # cell id -> the path of its file
        for i, entry in enumerate(entries):
            where = f"{index_path}: cells[{i}]"
            check_fields(entry, ENTRY_FIELDS, where)
            if entry["status"] not in STATUSES:
                raise BadInput(f"{where}.status: is {json.dumps(entry['status'])}, not ok, failed or pending")
            path = os.path.join(run_dir, entry["file"])
            if entry["status"] == "pending":
                continue
            if not os.path.isfile(path):
                if entry["status"] == "ok":  # its repetition would vanish from every figure unnoticed
                    raise BadInput(f"{path}: is missing, but the index ({where}) records the cell as ok")
                continue  # a failed cell: no figures either way
            cell = read_json(path)
            if not isinstance(cell, dict) or cell.get("schema") != "kmbench.run-cell/1":
                raise BadInput(f"{path}: not a kmbench.run-cell/1 file")
            check_fields(cell.get("cell"), CELL_FIELDS, f"{path}: cell")
            if cell.get("status") not in STATUSES:
                raise BadInput(f"{path}: status: is {json.dumps(cell.get('status'))[:40]}, not ok, failed or pending")
            check_agrees(cell, path, entry, where)
            if cell["status"] == "ok" and not isinstance(cell.get("result"), dict):
                raise BadInput(f"{path}: result: an ok cell's result is not an object")
            if cell["status"] == "ok":
                for number in NUMBER_PATHS:
                    try:
                        dig(cell["result"], number)
                    except BadInput as e:
                        raise BadInput(f"{path}: result.{e}") from None
            self.cells.append(cell)
            self.files[entry["id"]] = path
        self.entries = entries

    def file_of(self, cell):
        """The path of a cell's file."""
        return self.files[cell["cell"]["id"]]

    def backend_order(self):
        """The backends in the catalogue's order (index "backends"); a run
        written before the index listed them: in order of first appearance."""
        order = list(self.index.get("backends") or [])
        for e in self.entries:
            if e.get("backend") not in order:
                order.append(e.get("backend"))
        return order

    def backend_key(self, backend):
        order = self.backend_order()
        return (order.index(backend) if backend in order else len(order), backend)

    def op_kinds(self):
        """The op kinds results report latency for, in the replay's order
        (index "op_kinds"); for an older run, those its cells report."""
        kinds = list(self.index.get("op_kinds") or [])
        if not kinds:
            for c in self.ok():
                for k in (c["result"].get("latency") or {}):
                    if k not in kinds:
                        kinds.append(k)
        return kinds

    def labels(self, sweep_points=False):
        """The sources (workload or trace labels), in the matrix file's order (the line of their entry, as
        the cell files give it; else first appearance); without the points of sweeps (their own chart
        shows them) unless asked."""
        labels = list(dict.fromkeys(e["label"] for e in self.entries if sweep_points or not e.get("sweep")))
        line = {}
        for c in self.cells:
            line.setdefault(c["cell"]["label"], c["cell"].get("line", 0))
        return sorted(labels, key=lambda label: line.get(label, 0))

    def label_threads(self, label):
        return sorted({e["threads"] for e in self.entries if e["label"] == label})

    def primary(self, label):
        """The placement, topology and mode a label is shown in first: local placement when it was run."""
        es = [e for e in self.entries if e["label"] == label]
        placements = [e["placement"] for e in es]
        placement = "local" if "local" in placements else placements[0]
        topology = next(e["topology"] for e in es if e["placement"] == placement)
        mode = next(e["mode"] for e in es if e["placement"] == placement and e["topology"] == topology)
        return placement, topology, mode

    @property
    def run_id(self):
        return self.index.get("run_id", os.path.basename(os.path.normpath(self.dir)))

    @property
    def environment(self):
        return self.index.get("environment", {})

    def machine_line(self):
        m = self.environment.get("machine", {})
        mem = m.get("memory_bytes")
        mem_text = f", {mem / 2**30:.0f} GiB" if mem else ""
        return (f"{m.get('cpu_model', 'unknown CPU')}, {m.get('online_cpus', '?')} CPUs{mem_text}, "
                f"{m.get('kernel', '')} — run {self.run_id}")

    def machine_state(self):
        """(label, text) rows of the kernel's state when the run began; a fact the
        run could not read says why, one it predates says "not recorded"."""
        m = self.environment.get("machine", {})
        not_read = m.get("not_read", {})

        def row(label, key, fmt):
            if key not in m:
                return (label, "not recorded")
            if m[key] is None:
                return (label, f"not read: {not_read.get(key, 'no reason recorded')}")
            return (label, fmt(m[key]))

        def governor(g):
            if isinstance(g, str):
                return f"{g} (every CPU)"
            return "; ".join(f"{k} on CPUs {cpu_ranges(v)}" for k, v in g.items())

        def smt(s):
            active = {True: "active", False: "inactive", None: "active: unknown"}[s.get("active")]
            return f"{active}, control {s.get('control') or 'unknown'}"

        def caches(cs):
            return "; ".join(f"L{c.get('level', '?')} {c.get('type', '?')} {fmt_num(c.get('size_bytes'), 'bytes')}"
                             f", {c.get('num_sharing', '?')} CPU(s)" for c in cs)

        return [
            row("CPU clock", "cpu_mhz", lambda v: f"{v} MHz ({m.get('cpu_mhz_source') or 'source not recorded'})"),
            row("caches", "caches", caches),
            row("load average at start", "load_avg", lambda v: " ".join(f"{x:.2f}" for x in v) + " (1, 5, 15 min)"),
            row("CPU governor", "cpu_governor", governor),
            row("SMT", "smt", smt),
            row("transparent huge pages", "transparent_hugepages",
                lambda t: f"enabled {t.get('enabled') or 'unknown'}, defrag {t.get('defrag') or 'unknown'}"),
            row("kernel command line", "kernel_cmdline", str),
        ]

    def ok(self):
        return [c for c in self.cells if c.get("status") == "ok" and isinstance(c.get("result"), dict)]

    def groups(self):
        """group id → list of index entries (every repetition, whatever its status)."""
        out = {}
        for e in self.entries:
            out.setdefault(e["group"], []).append(e)
        return out

    def values(self, group, path):
        """Values of one metric over the group's successful repetitions."""
        out = []
        for c in self.ok():
            if c["cell"]["group"] == group:
                v = dig(c["result"], path)
                if v is not None:
                    out.append(v)
        return out

    def cell_of(self, group):
        for e in self.entries:
            if e["group"] == group:
                return e
        return None


def compare_runs(run_a, run_b, alpha=DEFAULT_ALPHA, margin=DEFAULT_MARGIN):
    """Rows for every group in either run and every metric with values, judged together
    (stats.judge: one correction over all of them)."""
    rows = []
    ga, gb = run_a.groups(), run_b.groups()
    for group in sorted(set(ga) | set(gb)):
        if group not in ga or group not in gb:
            rows.append({"group": group, "metric": "*", "verdict": f"only in run {'B' if group in gb else 'A'}"})
            continue
        if not run_a.values(group, ("ops_per_sec",)) or not run_b.values(group, ("ops_per_sec",)):
            which = [n for n, r in (("A", run_a), ("B", run_b)) if not r.values(group, ("ops_per_sec",))]
            rows.append({"group": group, "metric": "*",
                         "verdict": f"missing: no successful repetition in run {' and '.join(which)}"})
            continue
        rows += metric_rows(run_a, group, run_b, group)
    return judge(rows, alpha, margin)


def metric_rows(run_a, group_a, run_b, group_b):
    """group_b of run_b against group_a of run_a, one unjudged row per metric either has values of;
    the rows are named after group_b."""
    rows = []
    for key, path, unit, better in METRICS:
        a, b = run_a.values(group_a, path), run_b.values(group_b, path)
        if not a and not b:
            continue
        r = compare_samples(a, b)
        r.update(group=group_b, metric=key, unit=unit, better=better)
        rows.append(r)
    return rows


def cpu_ranges(cpus):
    """[0, 1, 2, 5] → "0-2,5"."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def fmt_num(v, unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if unit == "bytes":
        for u, s in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(v) >= u:
                return f"{v / u:.2f} {s}"
        return f"{v:.0f} B"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g} M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g} k"
    return f"{v:.3g}"
