"""tools/reorder-frees.py: each free keeps its time, stream and class and takes
a live object of its class in the order asked; the recorded order gives the
input back; bad input exits 2 naming the line, and an output that cannot be
written naming it; - is standard output; and a real capture's reorderings
load back as traces (KMBENCH: the kmbench binary)."""
import collections
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "tools", "reorder-frees.py")
SAMPLE = os.path.join(HERE, "data", "ftrace-sample.txt.xz")

HEAD = """kmt-text 1
source "test"
capture_tool "hand"
page_size 4096
cpu_count 2
node_count 1
time_base_ns 0
object_count 9
string 1 "a_site"
string 2 "b_site"
string 3 "a_cache"
"""
# Class A (site 1, cache 3, 64..127 B): objects 0, 1, 2, 5, 6, 8; class B
# (site 2, 64..127 B): objects 3, 4 and 7, sizes 64 and 100; one page class.
OPS = [
    ("stream 0", [
        "10 alloc 0 64 site=1 tag=3 flags=cache",
        "20 alloc 1 64 site=1 tag=3 flags=cache",
        "30 alloc 3 64 site=2",
        "40 alloc 2 64 site=1 tag=3 flags=cache",
        "50 free 1 64 site=1 tag=3 flags=cache",
        "60 alloc 4 100 site=2",
        "70 free 2 64 site=1 tag=3 flags=cache",
        "90 page_alloc 9 4096",
        "100 free 3 64 site=2",
        "120 free 0 64 site=1 tag=3 flags=cache",
    ]),
    ("stream 1", [
        "15 alloc 5 64 site=1 tag=3 flags=cache",
        "35 alloc 6 64 site=1 tag=3 flags=cache",
        "55 free 5 64 site=1 tag=3 flags=cache",
        "65 alloc 7 100 site=2",
        "80 free 7 100 site=2",
        "95 page_free 9 4096",
        "110 alloc 8 64 site=1 tag=3 flags=cache",
        "130 free 8 64 site=1 tag=3 flags=cache",
    ]),
]


def dump_text(streams=OPS):
    return HEAD + "".join(s + "\n" + "".join(op + "\n" for op in ops) for s, ops in streams) + "end\n"


def run(tmp_path, text, order, *extra):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text(text)
    p = subprocess.run([sys.executable, TOOL, "--order", order, *extra, str(src), str(dst)],
                       capture_output=True, text=True)
    return p, (dst.read_text() if dst.exists() else None)


def ops_of(text):
    """[(stream, time, kind, object, size, rest)] in file order."""
    out, stream = [], None
    for line in text.splitlines():
        if line.startswith("stream "):
            stream = int(line.split()[1])
        elif stream is not None and line != "end":
            f = line.split()
            out.append((stream, int(f[0]), f[1], int(f[2]), int(f[3]), tuple(f[4:])))
    return out


def class_key(op):
    _, _, kind, _, size, rest = op
    fields = dict(f.split("=", 1) for f in rest)
    cache = fields.get("tag") if "cache" in fields.get("flags", "").split("|") else None
    return (kind.replace("_alloc", ""), fields.get("site"), cache, size.bit_length())


def frees_in_time_order(text):
    """Walks the trace in time order (ties: lower stream) and yields
    (free op, class of its object, the class's live objects before it in
    allocation order), checking that every free takes a live object."""
    ops = sorted(ops_of(text), key=lambda op: (op[1], op[0]))
    live, cls, size = collections.defaultdict(list), {}, {}
    for op in ops:
        if op[2].endswith("alloc"):
            key = class_key(op)
            cls[op[3]], size[op[3]] = key, op[4]
            live[key].append(op[3])
        else:
            key = cls.pop(op[3])  # KeyError: a free of an object not live
            assert op[4] == size.pop(op[3]), "a free carries its allocation's size"
            yield op, key, list(live[key])
            live[key].remove(op[3])


def test_the_recorded_order_gives_the_input_back(tmp_path):
    p, out = run(tmp_path, dump_text(), "recorded")
    assert p.returncode == 0, p.stderr
    assert out == dump_text()
    assert "0 of 8 frees take another object" in p.stderr


@pytest.mark.parametrize("order", ["random", "oldest", "newest"])
def test_each_free_keeps_its_place_and_class_and_takes_a_live_object_of_it(tmp_path, order):
    p, out = run(tmp_path, dump_text(), order, "--seed", "3")
    assert p.returncode == 0, p.stderr
    before, after = ops_of(dump_text()), ops_of(out)
    assert len(before) == len(after)
    recorded_class = {op[3]: class_key(op) for op in before if op[2].endswith("alloc")}
    for b, a in zip(before, after):
        # Stream, time, kind, site and flags stay; allocations stay whole.
        assert (b[0], b[1], b[2], b[5]) == (a[0], a[1], a[2], a[5])
        if b[2].endswith("alloc"):
            assert a == b
        else:
            assert recorded_class[a[3]] == recorded_class[b[3]], "a free takes an object of its own class"
    for op, key, live in frees_in_time_order(out):
        if order == "oldest":
            assert op[3] == live[0]
        elif order == "newest":
            assert op[3] == live[-1]


def test_orders_differ_where_a_class_has_a_choice(tmp_path):
    # At 50 class A holds 0, 5, 1, 6, 2: the recording frees 1.
    _, oldest = run(tmp_path, dump_text(), "oldest")
    _, newest = run(tmp_path, dump_text(), "newest")
    assert "50 free 0 64" in oldest and "50 free 2 64" in newest
    # Class B's sizes differ: a free carries the size of the object it takes.
    assert "80 free 3 64 site=2" in oldest and "80 free 7 100 site=2" in newest


def test_it_says_what_the_frees_take(tmp_path):
    # Recorded, in time order: A's frees take another (2 newer left), another
    # (2), the newest, the oldest (2), the newest; B's the newest, the
    # oldest (1); the page's free its class's only live object.
    p, _ = run(tmp_path, dump_text(), "recorded")
    assert ("the only 12.5%, newest 37.5%, oldest 25.0%, other 25.0%; a free with a choice leaves newer live "
            "objects of its class: median 1 (50.0% of the others), p75 2 (66.7%)") in p.stderr, p.stderr
    p, _ = run(tmp_path, dump_text(), "oldest")
    assert "the only 12.5%, newest 0.0%, oldest 87.5%, other 0.0%" in p.stderr, p.stderr
    p, _ = run(tmp_path, dump_text(), "newest")
    assert "the only 12.5%, newest 87.5%, oldest 0.0%, other 0.0%; a free with a choice leaves newer live " \
           "objects of its class: median 0 (0.0% of the others)" in p.stderr, p.stderr


def test_random_is_the_same_for_a_seed_and_moves_some_frees(tmp_path):
    p1, a = run(tmp_path, dump_text(), "random", "--seed", "5")
    p2, b = run(tmp_path, dump_text(), "random", "--seed", "5")
    assert a == b
    outs = {run(tmp_path, dump_text(), "random", "--seed", str(s))[1] for s in range(8)}
    assert len(outs) > 1


@pytest.mark.parametrize("line, message", [
    ("25 dma_map 0 64", "DMA maps and KPI calls"),
    ("25 alloc 10 64 site=1 call=IOMalloc", "DMA maps and KPI calls"),
    ("25 wobble 0 64", "unknown op kind 'wobble'"),
    ("25 alloc x 64", "must be numbers"),
    ("25 alloc 1 64", "object 1 is allocated a second time"),
    ("25 alloc 10 64 site=\u00e9", "not ASCII text"),
])
def test_bad_input_exits_2_naming_the_line(tmp_path, line, message):
    streams = [(OPS[0][0], OPS[0][1][:2] + [line] + OPS[0][1][2:]), OPS[1]]
    p, out = run(tmp_path, dump_text(streams), "random")
    assert p.returncode == 2
    assert "in.txt:15:" in p.stderr, p.stderr
    assert message in p.stderr
    assert out is None, "nothing is written"


def test_a_cut_text_and_a_stranger_are_refused(tmp_path):
    p, _ = run(tmp_path, dump_text()[:-len("end\n")], "oldest")
    assert p.returncode == 2 and "no 'end' line" in p.stderr
    p, _ = run(tmp_path, "hello\n", "oldest")
    assert p.returncode == 2 and "not the text form of a trace" in p.stderr


@pytest.mark.skipif("KMBENCH" not in os.environ, reason="needs the kmbench binary (ctest sets KMBENCH)")
def test_a_real_capture_reordered_loads_back_with_every_free_matched(tmp_path):
    kmbench = os.environ["KMBENCH"]
    dump = subprocess.run([kmbench, "trace", "dump", SAMPLE], capture_output=True, text=True, check=True).stdout
    for order in ("recorded", "random", "oldest", "newest"):
        p, out = run(tmp_path, dump, order)
        assert p.returncode == 0, p.stderr
        frees = sum(1 for _ in frees_in_time_order(out))  # every free takes a live object
        assert frees == sum(1 for op in ops_of(dump) if not op[2].endswith("alloc"))
        kmt = tmp_path / f"{order}.kmt"
        subprocess.run([kmbench, "trace", "undump", str(tmp_path / "out.txt"), "-o", str(kmt)], check=True)
        back = subprocess.run([kmbench, "trace", "dump", str(kmt)], capture_output=True, text=True, check=True)
        assert back.stdout == out


@pytest.mark.parametrize("output", ["missing/out.txt", "adir", "afile/out.txt"])
def test_an_output_that_cannot_be_written_exits_2_naming_it(tmp_path, output):
    (tmp_path / "in.txt").write_text(dump_text())
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a file\n")
    p = subprocess.run([sys.executable, TOOL, "--order", "oldest", "in.txt", output], capture_output=True,
                       text=True, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert f"output {output}:" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "afile").read_text() == "a file\n" and not os.listdir(tmp_path / "adir")


def test_dash_is_standard_output_as_it_is_standard_input(tmp_path):
    (tmp_path / "in.txt").write_text(dump_text())
    p = subprocess.run([sys.executable, TOOL, "--order", "recorded", "-", "-"], capture_output=True, text=True,
                       cwd=tmp_path, input=dump_text())
    assert p.returncode == 0, p.stderr
    assert p.stdout == dump_text()
    assert "standard output: 0 of 8 frees" in p.stderr, p.stderr
    assert not (tmp_path / "-").exists()
