#!/usr/bin/python3
"""Rewrites which object each free of a trace takes, class by class.

Every free keeps its time, stream, kind, call site and flags; only the object
it frees changes, to another live object of the same class, chosen by
--order:

  recorded  the object the capture freed (the output is the input)
  random    any live object of the class, each as likely (--seed)
  oldest    the class's longest-lived live object (first in, first out)
  newest    the class's most recent live object (last in, first out)

So the trace keeps its arrivals, its frees' times and CPUs, and each class's
live count at every instant; what changes is which blocks stay live, and with
that the lifetimes and the addresses an allocator hands out again. Replaying
a capture and its reorderings side by side measures how much a backend's
cost depends on the order of frees within a class, which a profile does not
keep (docs/profiles.md, "What a profile cannot carry").

A class is what `kmbench trace profile` groups by with sites kept: the kind
(alloc, page, dma), the allocation's call site, its cache when flagged as
one, and the power-of-two band of its size. The input and output are the
text form of `kmbench trace dump` and `kmbench trace undump`:

    kmbench trace dump CAPTURE > in.txt
    tools/reorder-frees.py --order random in.txt out.txt
    kmbench trace undump out.txt -o random.kmt

The input or the output may be - for standard input or output. An output
file is written beside itself and renamed when whole, so an earlier one
stays as it was when writing fails. Traces with DMA maps or KPI calls are
refused: a map names its object, and a KPI free its family. Exits 2 naming
the file and line of a line it cannot read, or an output it cannot write.
"""
import argparse
import bisect
import os
import random
import sys
from collections import Counter, defaultdict, deque

ALLOCS = {"alloc": "alloc", "page_alloc": "page", "dma_alloc": "dma"}
FREES = {"free", "page_free", "dma_free"}
ORDERS = ("recorded", "random", "oldest", "newest")


class BadInput(Exception):
    pass


class Op:
    """One op line: its fields, kept as text, and where it was read."""

    __slots__ = ("time", "kind", "obj", "size", "rest", "line")

    def __init__(self, text, line):
        fields = text.split()
        if len(fields) < 4:
            raise BadInput(f"{line}: an op line needs TIME KIND OBJECT SIZE")
        try:
            self.time, self.obj, self.size = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError:
            raise BadInput(f"{line}: TIME, OBJECT and SIZE must be numbers") from None
        self.kind, self.rest, self.line = fields[1], fields[4:], line
        if self.kind in ("dma_map", "dma_unmap") or any(f.startswith("call=") for f in self.rest):
            raise BadInput(f"{line}: DMA maps and KPI calls name their objects; such a trace cannot be reordered")
        if self.kind not in ALLOCS and self.kind not in FREES:
            raise BadInput(f"{line}: unknown op kind {self.kind!r}")

    def field(self, name):
        for f in self.rest:
            if f.startswith(name + "="):
                return f[len(name) + 1:]
        return None

    def text(self):
        return " ".join([str(self.time), self.kind, str(self.obj), str(self.size)] + self.rest)


def read_dump(path):
    """(header lines, [(stream line, [Op])]) of a `trace dump` text."""
    head, streams, ended = [], [], False
    with (sys.stdin.buffer if path == "-" else open(path, "rb")) as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                text = raw.decode("ascii").rstrip("\n")
            except UnicodeDecodeError:
                raise BadInput(f"{where}: not ASCII text (`kmbench trace dump` escapes every other byte)") from None
            if ended:
                if text.strip():
                    raise BadInput(f"{where}: text after 'end'")
                continue
            if text.startswith("stream "):
                streams.append((text, []))
            elif text == "end":
                ended = True
            elif not streams:
                head.append(text)
            elif text.startswith("#") or not text.strip():
                continue
            else:
                streams[-1][1].append(Op(text, where))
    if not head or not head[0].startswith("kmt-text "):
        raise BadInput(f"{path}:1: not the text form of a trace (`kmbench trace dump`)")
    if not ended:
        raise BadInput(f"{path}: no 'end' line: the text is cut short")
    return head, streams


class LiveSet:
    """A class's live objects, taken in the chosen order."""

    def __init__(self, order, rng):
        self.order, self.rng = order, rng
        self.objects = deque() if order in ("oldest", "newest") else []
        self.where = {}  # object -> index in objects (random)

    def add(self, obj):
        if self.order == "recorded":
            return  # each free takes its own object: nothing to choose from
        if self.order == "random":
            self.where[obj] = len(self.objects)
        self.objects.append(obj)

    def take(self, recorded):
        if self.order == "recorded":
            return recorded
        if self.order == "oldest":
            return self.objects.popleft()
        if self.order == "newest":
            return self.objects.pop()
        i = self.rng.randrange(len(self.objects))
        obj, last = self.objects[i], self.objects[-1]
        self.objects[i] = last
        self.where[last] = i
        self.objects.pop()
        del self.where[obj]
        return obj


class FreeKinds:
    """Counts which of its class's live objects each free takes (the only
    one, the newest, the oldest or another, by allocation order), and how
    many newer ones a free with a choice leaves live."""

    def __init__(self):
        self.live = defaultdict(list)  # class -> allocation numbers of its live objects, ascending
        self.counts, self.reach = Counter(), []  # reach: (newer live objects left, of how many others)

    def allocated(self, key, n):
        self.live[key].append(n)  # allocations come in ascending number

    def freed(self, key, n):
        live = self.live[key]
        j = bisect.bisect_left(live, n)
        newer = len(live) - 1 - j
        kind = "only" if len(live) == 1 else "newest" if newer == 0 else "oldest" if j == 0 else "other"
        self.counts[kind] += 1
        if len(live) > 1:
            self.reach.append((newer, len(live) - 1))
        del live[j]

    def summary(self):
        total = max(1, sum(self.counts.values()))
        split = ", ".join(f"{kind} {100 * self.counts[kind] / total:.1f}%" for kind in ("only", "newest", "oldest", "other"))
        if not self.reach:
            return split
        share = sorted(newer / others for newer, others in self.reach)
        count = sorted(newer for newer, _ in self.reach)
        at = lambda v, q: v[int(q * (len(v) - 1))]
        return (f"{split}; a free with a choice leaves newer live objects of its class: median {at(count, 0.5)} "
                f"({100 * at(share, 0.5):.1f}% of the others), p75 {at(count, 0.75)} ({100 * at(share, 0.75):.1f}%)")


def reorder(streams, order, seed, kinds):
    """Re-points every free in place, counting into `kinds` what each takes;
    returns how many changed object."""
    rng = random.Random(seed)
    # Time order over all streams, ties to the lower stream: the order
    # `kmbench trace profile` walks a trace in.
    ops = sorted(((op.time, s, i) for s, (_, body) in enumerate(streams) for i, op in enumerate(body)))
    # A free's class is its recorded object's; the object it takes is one of
    # the class's live ones in the rewritten trace, of which there are as
    # many at every instant as in the recorded one.
    recorded_class, size_of, classes, number = {}, {}, {}, {}  # number: each object's in allocation order
    moved = 0
    for _, s, i in ops:
        op = streams[s][1][i]
        if op.kind in ALLOCS:
            if op.obj in number:
                raise BadInput(f"{op.line}: object {op.obj} is allocated a second time; reordering needs an object "
                               "id per allocation, as `kmbench trace import` gives")
            flags = (op.field("flags") or "").split("|")
            cache = op.field("tag") if "cache" in flags else None
            key = (ALLOCS[op.kind], op.field("site"), cache, op.size.bit_length())
            live = classes.get(key)
            if live is None:
                live = classes[key] = LiveSet(order, rng)
            live.add(op.obj)
            recorded_class[op.obj], size_of[op.obj] = key, op.size
            number[op.obj] = len(number)
            kinds.allocated(key, number[op.obj])
        elif op.obj in recorded_class:
            key = recorded_class.pop(op.obj)
            taken = classes[key].take(op.obj)
            kinds.freed(key, number[taken])
            moved += taken != op.obj
            op.obj, op.size = taken, size_of.pop(taken)
    return moved


def check_output(path):
    """Before the input is read: the output can be written, or BadInput naming it."""
    if path == "-":
        return
    parent = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise BadInput(f"output {path}: is a directory")
    if not os.path.isdir(parent):
        raise BadInput(f"output {path}: its directory {parent} "
                       f"{'is not a directory' if os.path.exists(parent) else 'does not exist'}")


def dump_lines(head, streams):
    yield from head
    for header, body in streams:
        yield header
        yield from (op.text() for op in body)
    yield "end"


def write_dump(path, head, streams):
    """The text to path: - is standard output, a regular file is replaced only once written whole, and
    anything else (/dev/null) is written in place."""
    if path == "-":
        sys.stdout.writelines(line + "\n" for line in dump_lines(head, streams))
        sys.stdout.flush()
        return
    in_place = os.path.exists(path) and not os.path.isfile(path)
    tmp = path if in_place else path + ".tmp"
    try:
        with open(tmp, "w", encoding="ascii") as out:
            out.writelines(line + "\n" for line in dump_lines(head, streams))
        if not in_place:
            os.replace(tmp, path)
    except OSError as e:
        if not in_place and os.path.exists(tmp):
            os.remove(tmp)
        raise BadInput(f"output {path}: cannot write ({e.strerror})") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", choices=ORDERS, required=True, help="which live object of its class each free takes")
    ap.add_argument("--seed", type=int, default=1, help="for --order random (default 1)")
    ap.add_argument("input", help="`kmbench trace dump` text, or - for stdin")
    ap.add_argument("output", help="text for `kmbench trace undump`, or - for stdout")
    args = ap.parse_args()
    try:
        check_output(args.output)
        head, streams = read_dump(args.input)
        kinds = FreeKinds()
        moved = reorder(streams, args.order, args.seed, kinds)
        write_dump(args.output, head, streams)
    except BadInput as e:
        print(f"reorder-frees: {e}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # standard output closed early: no more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as e:
        print(f"reorder-frees: {e.filename}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    frees = sum(op.kind in FREES for _, body in streams for op in body)
    name = "standard output" if args.output == "-" else args.output
    print(f"reorder-frees: {name}: {moved} of {frees} frees take another object (--order {args.order}); "
          f"of its class's live objects a free takes the {kinds.summary()}", file=sys.stderr)


if __name__ == "__main__":
    main()
