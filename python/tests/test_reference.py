"""Equivalence with the Python reference engine (operonx 0.8.2) on generated graphs.

Every case is a workflow generated from a seed (``random.Random(seed)``) as the source
text of an operonx builder, so a failing case prints a builder you can paste and run.
Each graph is built twice and run once by each engine:

* reference: ``asyncio.run(operonx.core.Operon(graph).run(inputs=...))``, ``$state`` dropped;
* ours: ``operonx_engine.Engine(graph, no_trace_store=True).run(inputs)``, ``$errors`` dropped.

What remains must be equal as JSON values (tests/conformance/README.md, "Comparison rule":
``2`` is not ``2.0``, ``true`` is not ``1``, an absent key is not ``null``). When a reference
op raised, our ``$errors`` must name exactly the ops the reference recorded as failed (full
names, e.g. ``main.sub3.guard7``), with the exception's message when a pool op raised it
(errors the engines raise themselves, such as a missing input, are matched by op name only);
when none raised, we must report no errors.

Shapes: chains, diamonds (fan-out + join), branches (always with an ``else_``; soft merges,
per-item routing), generators with per-item ops (``.parallel()``, ``.collect()`` over the
generator's own output, per-item joins, per-item ops that also wait for a batch op),
nested graphs (per-item ones too, two levels), and a mix. Every shape also comes in a
``+fail`` variant, whose graphs hold ops that raise for some inputs (plain, ``async def``
and a generator that raises part-way), written again from derived seeds until the reference
run does raise and still returns some outputs.

The generator stays clear of the deliberate deviations of the conformance README: no loop
graphs, no ``.collect()`` over an op that runs per item, no branch without a default, no
explicit ``null`` input (no op's ``None`` output feeds another op). It does not avoid the real
differences found (KNOWN_DIFFERENCES): the seeds that meet them are strict xfails, and
test_known_differences holds a minimal reproducer of each.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import textwrap
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

import pytest

pytest.importorskip("operonx")

# END, PARENT, START and Branch are read by the generated builders (exec'd over this module)
from operonx.core import END, PARENT, START, GraphOp, Operon, op  # noqa: E402,F401
from operonx.core.ops import Branch  # noqa: E402,F401

from operonx_engine import Engine  # noqa: E402

# ── the op pool (deterministic; plain, async def, generator and async generator ops) ──


@op
def inc(n, by=1):
    return {"inc": n + by}


@op
def triple(x):
    return {"tripled": x * 3}


@op
async def offset(n, k=10):
    await asyncio.sleep(0)
    return {"shifted": n - k}


@op
def halve(n):
    return {"half": n / 2}


@op
def fmt(x, prefix="#"):
    return {"text": f"{prefix}{x}"}


@op
def shout(s):
    return {"loud": s.upper() + "!"}


@op
async def flip(s):
    await asyncio.sleep(0)
    return {"flipped": s[::-1]}


@op
def size(v):
    return {"size": len(v)}


@op
def span(n, base=0):
    return {"span": list(range(base, base + n % 4 + 1))}


@op
def total(xs):
    return {"total": sum(xs)}


@op
def bump_all(xs, by=1):
    return {"bumped": [x + by for x in xs]}


@op
def joined(xs, sep=","):
    return {"joined": sep.join(str(x) for x in xs)}


@op
def divmod_by(n, d=3):
    return {"quot": n // d, "rem": n % d}


@op
def stats(xs):
    return {"lo": min(xs, default=0), "hi": max(xs, default=0), "count": len(xs)}


@op
def describe(n):
    return {"info": {"n": n, "digits": [int(c) for c in str(abs(n))], "sign": "-" if n < 0 else "+"}}


@op
def plus(a, b):
    return {"sum": a + b}


@op
def glue(a, b, sep="-"):
    return {"glued": f"{a}{sep}{b}"}


@op
async def pair(a, b):
    await asyncio.sleep(0)
    return {"pair": [a, b]}


@op
def first_or_none(xs):
    return {"first": xs[0] if xs else None}


@op
def explode(xs):
    for x in xs:
        yield {"item": x}


@op
async def aexplode(xs):
    for x in xs:
        await asyncio.sleep(0)
        yield {"elem": x}


@op
def count_up(n, step=1):
    for i in range(n % 4 + 1):
        yield {"k": i * step, "tag": f"k{i}"}


@op
def words(s):
    for w in s.split():
        yield {"word": w}


@op
def guard(n, mod=3):
    if n % mod == 0:
        raise ValueError(f"guard: {n} is a multiple of {mod}")
    return {"kept": n}


@op
async def aguard(s, banned="e"):
    await asyncio.sleep(0)
    if banned in s:
        raise RuntimeError(f"aguard: {s!r} holds {banned!r}")
    return {"clean": s}


@op
def explode_until(xs, stop=3):
    for x in xs:
        if x == stop:
            raise ValueError(f"explode_until: met {stop}")
        yield {"got": x}


# name -> (parameter, {input type: output type}, output key, {optional parameter: sampler})
_UNARY = {
    "inc": ("n", {"int": "int", "float": "float"}, "inc", {"by": lambda r: r.randint(-3, 5)}),
    "triple": ("x", {"int": "int", "float": "float", "str": "str", "list": "list"}, "tripled", {}),
    "offset": ("n", {"int": "int"}, "shifted", {"k": lambda r: r.randint(0, 20)}),
    "halve": ("n", {"int": "float"}, "half", {}),
    "fmt": (
        "x",
        {"int": "str", "float": "str", "str": "str", "list": "str"},
        "text",
        {"prefix": lambda r: r.choice(["#", "v=", ""])},
    ),
    "shout": ("s", {"str": "str"}, "loud", {}),
    "flip": ("s", {"str": "str", "list": "list"}, "flipped", {}),
    "size": ("v", {"str": "int", "list": "int", "slist": "int"}, "size", {}),
    "span": ("n", {"int": "list"}, "span", {"base": lambda r: r.randint(-2, 3)}),
    "total": ("xs", {"list": "int"}, "total", {}),
    "bump_all": ("xs", {"list": "list"}, "bumped", {"by": lambda r: r.randint(-2, 4)}),
    "joined": ("xs", {"list": "str", "slist": "str"}, "joined", {"sep": lambda r: r.choice([",", "+", " "])}),
}
# ops with several outputs: name -> (parameter, input types, {key: type}, optional parameters)
_MULTI = {
    "divmod_by": ("n", {"int"}, {"quot": "int", "rem": "int"}, {"d": lambda r: r.randint(2, 5)}),
    "stats": ("xs", {"list"}, {"lo": "int", "hi": "int", "count": "int"}, {}),
}
# ops that raise for some inputs
_FAILING = {
    "guard": ("n", {"int": "int"}, "kept", {"mod": lambda r: r.choice([2, 2, 3])}),
    "aguard": ("s", {"str": "str"}, "clean", {"banned": lambda r: r.choice("aeo")}),
}
# generators: name -> (parameter, {input type: [(key, item type), ...]}, optional parameters)
_GENERATORS = {
    "explode": ("xs", {"list": [("item", "int")], "slist": [("item", "str")]}, {}),
    "aexplode": ("xs", {"list": [("elem", "int")]}, {}),
    "count_up": ("n", {"int": [("k", "int"), ("tag", "str")]}, {"step": lambda r: r.randint(1, 3)}),
    "words": ("s", {"str": [("word", "str")]}, {}),
}
_FAILING_GENERATORS = {
    "explode_until": ("xs", {"list": [("got", "int")]}, {"stop": lambda r: r.randint(0, 4)}),
}
# collected item type -> the list type a consumer sees
_COLLECTED = {"int": "list", "str": "slist"}
_WORDS = ["red", "fox", "jumps", "over", "lazy", "dog", "tea", "moon", "a", "b"]

SHAPES = ("chain", "diamond", "branch", "generator", "nested", "mixed")
N_SEEDS = 60


# ── the generator: a seed -> the text of a builder ──


@dataclass(frozen=True)
class Val:
    """A value a new op can read: the ref's source text and what flows through it."""

    code: str
    typ: str  # int | float | str | list (of ints) | slist (of strs)
    op: Optional[str] = None  # the op of the current scope producing it (None: a graph input)
    stream: Optional[str] = None  # the generator whose items it follows (None: batch)
    direct: bool = False  # a generator's own output (.collect() allowed on it)
    nonempty: bool = False  # a list known not to be empty
    plain: bool = True  # a bare ref (no transforms)


class Scope:
    """One graph being written: its ops, values, edges and output mappings."""

    def __init__(self, path: str, depth: int, allow_gen: bool) -> None:
        self.path = path
        self.depth = depth
        self.allow_gen = allow_gen
        self.lines: List[str] = []
        self.vals: List[Val] = []
        self.ops: List[str] = []
        self.hard: Dict[str, List[str]] = {}
        self.soft: Dict[str, List[str]] = {}
        self.keys: Dict[str, List[str]] = {}  # op -> its output keys
        self.mapped: set = set()

    def add(self, var: str, code: str, keys: List[str], hard=(), soft=()) -> None:
        self.lines.append(f"{var} = {code}")
        self.ops.append(var)
        self.keys[var] = list(keys)
        self.hard[var] = list(dict.fromkeys(p for p in hard if p))
        self.soft[var] = list(dict.fromkeys(p for p in soft if p))

    def edges(self, used_keys: set, out_name) -> None:
        """START/END and op edges; sinks not mapped yet reach the outputs through END
        (under their own keys when no other op claimed them, else mapped explicitly)."""
        succ = {p for o in self.ops for p in self.hard[o] + self.soft[o]}
        roots = [o for o in self.ops if not self.hard[o] and not self.soft[o]]
        sinks = [o for o in self.ops if o not in succ]
        for o in sinks:
            if o in self.mapped:
                continue
            if not used_keys.intersection(self.keys[o]):
                used_keys.update(self.keys[o])
            else:
                self.lines.append(f'{o}["{self.keys[o][0]}"] >> PARENT["{out_name()}"]')
        self.lines.append(f"START >> {_many(roots)}")
        for o in self.ops:
            if self.hard[o]:
                self.lines.append(f"{_many(self.hard[o])} >> {o}")
            for p in self.soft[o]:
                self.lines.append(f"{p} >> ~{o}")
        self.lines.append(f"{_many(sinks)} >> END")


def _many(names: List[str]) -> str:
    return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"


@dataclass
class Case:
    seed: int
    shape: str
    fail: bool
    code: str
    inputs: Dict[str, Any]
    reference: Optional[Tuple[dict, Dict[str, List[str]]]] = None  # run_reference(), once run

    def build(self) -> GraphOp:
        namespace = {name: obj for name, obj in globals().items() if not name.startswith("_")}
        exec(compile(self.code, f"<seed {self.seed} {self.shape}>", "exec"), namespace)
        return namespace["g"]


class Writer:
    """Writes one random graph (deterministic for a seed)."""

    def __init__(self, seed: int, shape: str, fail: bool) -> None:
        self.rng = random.Random(seed)
        self.seed, self.shape, self.fail = seed, shape, fail
        self.count = itertools.count(1)
        self.out_count = itertools.count(1)
        self.used_keys: set = set()  # graph-output keys taken anywhere (kept unique)
        self.failing_ops = 0
        r = self.rng
        self.inputs = {
            "x": r.randint(-6, 30),
            "y": r.randint(1, 12),
            "s": " ".join(r.sample(_WORDS, r.randint(1, 4))),
            "xs": [r.randint(-3, 9) for _ in range(r.choice([0, 1, 2, 3, 3, 4, 5]))],
        }

    # helpers

    def name(self, base: str) -> str:
        return f"{base}{next(self.count)}"

    def out_name(self) -> str:
        name = f"o{next(self.out_count)}"
        self.used_keys.add(name)
        return name

    def map_out(self, sc: Scope, var: str, key: str) -> None:
        sc.lines.append(f'{var}["{key}"] >> PARENT["{self.out_name()}"]')
        sc.mapped.add(var)

    def maybe_map(self, sc: Scope, var: str, key: str, p: float = 0.3) -> None:
        if self.rng.random() < p:
            self.map_out(sc, var, key)

    def pick(self, sc: Scope, types, batch: bool = False, stream: Optional[str] = "any") -> Optional[Val]:
        """A value of one of ``types``; recent values are likelier (chains grow)."""
        pool = [v for v in sc.vals if v.typ in types and not (batch and v.stream)]
        if stream != "any":
            pool = [v for v in pool if v.stream in (None, stream)]
        if not pool:
            return None
        if self.rng.random() < 0.5:
            return pool[-1]
        return self.rng.choice(pool)

    def transform(self, v: Val) -> Val:
        """Sometimes read a value through ref transforms (arithmetic, getitem)."""
        r = self.rng
        if not v.plain or r.random() > 0.15:
            return v
        if v.typ == "int":
            how = r.choice(["+", "-", "*", "%"])
            k = r.randint(2, 5)
            return replace(v, code=f"({v.code} {how} {k})", plain=False)
        if v.typ == "list" and v.nonempty:
            return replace(v, code=f"{v.code}[{r.choice([0, -1])}]", typ="int", plain=False, nonempty=False)
        return v

    def optional_args(self, params: dict) -> str:
        out = ""
        for pname, sample in params.items():
            if self.rng.random() < 0.5:
                out += f", {pname}={sample(self.rng)!r}"
        return out

    def arg(self, v: Val) -> str:
        if v.stream and v.plain and v.direct and self.rng.random() < 0.2:
            return f"{v.code}.parallel()"
        return v.code

    # ops

    def unary(self, sc: Scope, v: Val, hard=None, soft=(), allow_fail: bool = True, var=None) -> Val:
        """One op reading ``v`` (named ``var``, else after its function); returns the value
        it produces (added to the scope)."""
        r = self.rng
        hard = [v.op] if hard is None else hard
        if allow_fail and self.fail and r.random() < 0.45:
            options = [n for n, spec in _FAILING.items() if v.typ in spec[1]]
            if options:
                fn = r.choice(options)
                param, types, key, opt = _FAILING[fn]
                var = var or self.name(fn)
                self.failing_ops += 1
                sc.add(var, f'{fn}(name="{var}", {param}={self.arg(v)}{self.optional_args(opt)})', [key], hard, soft)
                out = Val(f'{var}["{key}"]', types[v.typ], var, v.stream)
                self.maybe_map(sc, var, key)
                sc.vals.append(out)
                return out
        options = [n for n, spec in _UNARY.items() if v.typ in spec[1]]
        options += [n for n, spec in _MULTI.items() if v.typ in spec[1]]
        if v.typ == "int":
            options.append("describe")
        fn = r.choice(options)
        var = var or self.name(fn)
        if fn == "describe":
            sc.add(var, f'describe(name="{var}", n={self.arg(v)})', ["info"], hard, soft)
            sub, typ, nonempty = r.choice(
                [('["n"]', "int", False), ('["digits"]', "list", True), ('["digits"][-1]', "int", False), ('["sign"]', "str", False)]
            )
            out = Val(f'{var}["info"]{sub}', typ, var, v.stream, nonempty=nonempty, plain=False)
            self.maybe_map(sc, var, "info")
        elif fn in _MULTI:
            param, _, keys, opt = _MULTI[fn]
            sc.add(var, f'{fn}(name="{var}", {param}={self.arg(v)}{self.optional_args(opt)})', list(keys), hard, soft)
            key = r.choice(list(keys))
            out = Val(f'{var}["{key}"]', keys[key], var, v.stream)
            self.maybe_map(sc, var, key)
        else:
            param, types, key, opt = _UNARY[fn]
            sc.add(var, f'{fn}(name="{var}", {param}={self.arg(v)}{self.optional_args(opt)})', [key], hard, soft)
            nonempty = fn == "span" or (fn in ("bump_all", "triple", "flip") and v.nonempty)
            out = Val(f'{var}["{key}"]', types[v.typ], var, v.stream, nonempty=nonempty)
            self.maybe_map(sc, var, key)
        sc.vals.append(out)
        return out

    def binary(self, sc: Scope, a: Val, b: Val, extra_hard=()) -> Val:
        """A join of two values (same stream, or one of them batch)."""
        r = self.rng
        options = ["glue"]
        if a.typ == b.typ and a.typ in ("int", "float", "str", "list"):
            options.append("plus")
        if a.typ == b.typ == "int":
            options.append("pair")
        fn = r.choice(options)
        var = self.name(fn)
        stream = a.stream or b.stream
        hard = [a.op, b.op, *extra_hard]
        if fn == "glue":
            sep = f", sep={r.choice(['+', ':', ''])!r}" if r.random() < 0.5 else ""
            sc.add(var, f'glue(name="{var}", a={self.arg(a)}, b={self.arg(b)}{sep})', ["glued"], hard)
            out = Val(f'{var}["glued"]', "str", var, stream)
        elif fn == "plus":
            sc.add(var, f'plus(name="{var}", a={self.arg(a)}, b={self.arg(b)})', ["sum"], hard)
            out = Val(f'{var}["sum"]', a.typ, var, stream, nonempty=a.nonempty or b.nonempty)
        else:
            sc.add(var, f'pair(name="{var}", a={self.arg(a)}, b={self.arg(b)})', ["pair"], hard)
            out = Val(f'{var}["pair"]', "list", var, stream, nonempty=True)
        self.maybe_map(sc, var, out.code.split('"')[1])
        sc.vals.append(out)
        return out

    # components

    def chain(self, sc: Scope, v: Optional[Val] = None) -> Val:
        v = v or self.pick(sc, ("int", "float", "str", "list", "slist"))
        for _ in range(self.rng.randint(2, 4)):
            v = self.unary(sc, self.transform(v))
        if self.rng.random() < 0.3:
            other = self.pick(sc, (v.typ,), stream=v.stream) or self.pick(sc, ("int", "str"), stream=v.stream)
            if other is not None and other is not v:
                v = self.binary(sc, v, other)
        if v.typ == "list" and self.rng.random() < 0.4:
            # an output that may be null (an empty list has no first item): a sink only
            var = self.name("first_or_none")
            sc.add(var, f'first_or_none(name="{var}", xs={v.code})', ["first"], [v.op])
            self.maybe_map(sc, var, "first", p=0.5)
        return v

    def diamond(self, sc: Scope, v: Optional[Val] = None) -> Val:
        r = self.rng
        v = v or self.pick(sc, ("int", "str", "list"))
        root = self.unary(sc, v)
        ends = []
        for _ in range(r.randint(2, 3)):
            e = root
            for _ in range(r.randint(1, 2)):
                e = self.unary(sc, self.transform(e))
            ends.append(e)
        # a side op the join waits for by an edge only (it reads none of its values)
        extra = []
        if r.random() < 0.25:
            side = self.unary(sc, root)
            extra = [side.op]
        out = self.binary(sc, ends[0], ends[1], extra)
        for e in ends[2:]:
            out = self.binary(sc, out, e)
        return out

    def condition(self, v: Val) -> str:
        r = self.rng
        c = f"({v.code})" if not v.plain else v.code
        if v.typ == "str":
            word = r.choice(_WORDS + [w.upper() + "!" for w in _WORDS])
            return f"{c} {r.choice(['==', '!='])} {word!r}"
        k = r.randint(-5, 30)
        kind = r.choice(["cmp", "cmp", "mod", "and", "or"])
        if kind == "cmp":
            return f"{c} {r.choice(['>', '>=', '<', '<=', '==', '!='])} {k}"
        if kind == "mod":
            m = r.randint(2, 4)
            return f"{c} % {m} == {r.randint(0, m - 1)}"
        lo, hi = sorted((k, r.randint(-5, 30)))
        if kind == "and":
            return f"({c} > {lo}) & ({c} <= {hi})"
        return f"({c} < {lo}) | ({c} > {hi})"

    def branch(self, sc: Scope, v: Optional[Val] = None) -> Val:
        r = self.rng
        if v is None:
            v = self.pick(sc, ("int", "str"))
            if v is None:
                v = self.unary(sc, self.pick(sc, ("list", "slist", "float")), allow_fail=False)
                if v.typ not in ("int", "str"):
                    v = self.unary(sc, v, allow_fail=False)
                    if v.typ not in ("int", "str"):
                        return self.chain(sc, v)
            if v.op is None and r.random() < 0.5:
                w = self.unary(sc, v)
                v = w if w.typ in ("int", "str") else v
        router = self.name("route")
        n_targets = r.randint(2, 3)
        names = [self.name("t") for _ in range(n_targets)]
        spec = "".join(f".if_({self.condition(v)}, {t!r})" for t in names[:-1])
        sc.add(router, f'Branch(name="{router}"){spec}.else_({names[-1]!r})', ["target", "matched"], [v.op])
        if r.random() < 0.25:
            self.map_out(sc, router, r.choice(["matched", "target"]))
        # the targets are named before they exist (the Branch names them first)
        lasts, outs = [], []
        for t in names:
            out = self.unary(sc, v, hard=[], soft=[router], var=t)
            last = out
            if r.random() < 0.4:
                last = self.unary(sc, self.transform(out))
            lasts.append(last)
            outs.append(out)
        if r.random() < 0.35:
            # a soft merge: runs after whichever target ran
            merge = self.unary(sc, v, hard=[], soft=[x.op for x in lasts], allow_fail=False)
            return merge
        if r.random() < 0.1:
            # a hard join of every target: some target is always skipped, so it never runs
            return self.unary(sc, v, hard=[x.op for x in lasts], allow_fail=False)
        return r.choice(outs)

    def generator(self, sc: Scope) -> Val:
        r = self.rng
        if not sc.allow_gen:
            return self.chain(sc)
        gens = dict(_GENERATORS)
        if self.fail and r.random() < 0.4:
            gens = dict(_FAILING_GENERATORS)
        options = [
            (fn, v)
            for fn, (_, types, _) in gens.items()
            for v in sc.vals
            if v.typ in types and not v.stream
        ]
        if not options:
            return self.chain(sc)
        fn, src = options[-1] if r.random() < 0.4 else r.choice(options)
        param, types, opt = gens[fn]
        if fn in _FAILING_GENERATORS:
            self.failing_ops += 1
        g = self.name(fn)
        items = types[src.typ]
        sc.add(g, f'{fn}(name="{g}", {param}={src.code}{self.optional_args(opt)})', [k for k, _ in items], [src.op])
        item_vals = [Val(f'{g}["{k}"]', t, g, g, direct=True) for k, t in items]
        sc.vals.extend(item_vals)
        if r.random() < 0.2:
            self.map_out(sc, g, items[0][0])
        last = item_vals[0]
        for _ in range(r.randint(1, 2)):
            kind = r.choice(["chain", "chain", "branch", "join", "batchdep", "nested"])
            item = r.choice(item_vals)
            if kind == "chain":
                last = item
                for _ in range(r.randint(1, 3)):
                    last = self.unary(sc, self.transform(last))
            elif kind == "branch" and item.typ in ("int", "str"):
                last = self.branch(sc, item)
            elif kind == "join":
                derived = self.unary(sc, item)
                last = self.binary(sc, item, derived)
            elif kind == "batchdep":
                batch = self.pick(sc, ("int", "str", "list"), batch=True)
                if batch is not None and batch.op is None:
                    batch = self.unary(sc, batch, allow_fail=False)
                if batch is not None:
                    last = self.binary(sc, item, batch)
            elif kind == "nested" and sc.depth > 0:
                last = self.nested(sc, first=item)
            else:
                last = self.unary(sc, item)
        if r.random() < 0.45:
            direct = r.choice(item_vals)
            collected = Val(f"{direct.code}.collect()", _COLLECTED[direct.typ], g)
            last = self.unary(sc, collected, allow_fail=False)
        return last

    def nested(self, sc: Scope, first: Optional[Val] = None) -> Val:
        r = self.rng
        sub = self.name("sub")
        chosen = [first] if first is not None else []
        stream = first.stream if first is not None else None
        want = r.randint(1, 2)
        for _ in range(4):
            if len(chosen) >= want:
                break
            v = self.pick(sc, ("int", "str", "list"), stream=stream if stream else "any")
            if v is not None and v not in chosen:
                stream = stream or v.stream
                chosen.append(v)
        if not chosen:
            chosen = [sc.vals[0]]
        child = Scope(f"{sc.path}.{sub}", sc.depth - 1, allow_gen=sc.allow_gen and stream is None)
        mapping = []
        for i, v in enumerate(chosen, 1):
            key = f"i{i}"
            mapping.append(f'"{key}": {v.code}')
            child.vals.append(Val(f'PARENT["{key}"]', v.typ, nonempty=v.nonempty))
        for _ in range(r.randint(1, 2)):
            self.component(child, r.choice(["chain", "diamond", "branch", "generator", "nested"]))
        exports = []
        batch_vals = [v for v in child.vals if v.op and v.plain and not v.stream]
        for v in r.sample(batch_vals, min(len(batch_vals), r.randint(1, 2))):
            key = self.out_name()
            child.lines.append(f'{v.code} >> PARENT["{key}"]')
            child.mapped.add(v.op)
            exports.append(Val(f'{sub}["{key}"]', v.typ, sub, stream, nonempty=v.nonempty))
        child.edges(self.used_keys, self.out_name)
        inputs = "{" + ", ".join(mapping) + "}"
        block = f'with GraphOp(name="{sub}", inputs={inputs}) as {sub}:\n' + textwrap.indent(
            "\n".join(child.lines), "    "
        )
        sc.add(sub, "", [e.code.split('"')[1] for e in exports], [v.op for v in chosen])
        sc.lines[-1] = block
        if not exports:
            sc.mapped.add(sub)  # nothing to map: what it writes reaches the outputs itself
            return chosen[0]
        if r.random() < 0.3:
            self.map_out(sc, sub, exports[0].code.split('"')[1])
        sc.vals.extend(exports)
        last = exports[0]
        if r.random() < 0.6:
            last = self.unary(sc, r.choice(exports))
        return last

    def component(self, sc: Scope, kind: str) -> Val:
        if kind == "nested" and sc.depth <= 0:
            kind = "chain"
        return getattr(self, kind)(sc)

    def write(self) -> Case:
        r = self.rng
        sc = Scope("main", depth=2, allow_gen=True)
        for key, value in self.inputs.items():
            typ = {int: "int", str: "str", list: "list"}[type(value)]
            sc.vals.append(Val(f'PARENT["{key}"]', typ, nonempty=bool(value)))
        if self.shape == "mixed":
            kinds = [r.choice(["chain", "diamond", "branch", "generator", "nested"]) for _ in range(r.randint(2, 3))]
        else:
            kinds = [self.shape]
            if r.random() < 0.3:
                kinds.append(r.choice(["chain", "diamond"]))  # an independent part
        for kind in kinds:
            self.component(sc, kind)
        if self.fail and not self.failing_ops:
            # make sure a failing op is in the graph: on graph input x
            x = sc.vals[0]
            var = self.name("guard")
            mod = next(m for m in (2, 3, 5, 7, 1) if self.inputs["x"] % m == 0)
            sc.add(var, f'guard(name="{var}", n={x.code}, mod={mod})', ["kept"])
            self.unary(sc, Val(f'{var}["kept"]', "int", var), allow_fail=False)
            self.failing_ops += 1
        sc.edges(self.used_keys, self.out_name)
        code = 'with GraphOp(name="main") as g:\n' + textwrap.indent("\n".join(sc.lines), "    ") + "\n"
        names = set(re.findall(r'PARENT\["(x|y|s|xs)"\]', code))
        inputs = {k: v for k, v in self.inputs.items() if k in names}
        return Case(self.seed, self.shape + ("+fail" if self.fail else ""), self.fail, code, inputs)


def make_case(seed: int) -> Case:
    """The case of ``seed``. A ``+fail`` graph holds ops that raise for some inputs; which
    do depends on values computed at run time, so it is written again (from
    ``seed + 1000 * attempt``) until the reference records a failure and still returns
    some outputs."""
    shape = SHAPES[seed % len(SHAPES)]
    fail = (seed // len(SHAPES)) % 2 == 1
    for attempt in range(25):
        case = Writer(seed + 1000 * attempt, shape, fail).write()
        case.seed = seed
        if not fail:
            return case
        case.reference = run_reference(case)
        if case.reference[0] and case.reference[1]:  # some op raised, some outputs remain
            return case
    raise AssertionError(f"seed {seed}: no {shape}+fail graph whose reference run fails")


# ── comparison ──

_TIMING = {"$start_time", "$end_time", "$duration_ms", "start_time", "end_time", "duration_ms"}


def canonical(value: Any) -> Any:
    """A form where equal means equal as JSON values: 2 != 2.0, True != 1, order of
    object keys ignored, timing keys dropped."""
    if isinstance(value, dict):
        return ("object", sorted((str(k), canonical(v)) for k, v in value.items() if k not in _TIMING))
    if isinstance(value, (list, tuple)):
        return ("array", [canonical(v) for v in value])
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    return ("other", repr(value))


def reference_errors(state: Any) -> Dict[str, List[str]]:
    """{op full name: [exception line of each failed call]} of the ops that raised in a
    reference run (operonx 0.8.2 keeps each call's traceback in the state, under the op's
    ``error`` variable; an op that runs per item may fail for several items)."""
    found: Dict[str, List[str]] = {}
    for op_name, var in state.schema:
        if var != "error":
            continue
        texts = [v for v in state.get_cell(op_name, var).contexts.values() if isinstance(v, str)]
        if texts:
            found[op_name] = [t.strip().splitlines()[-1] for t in texts]
    return found


_POOL_MESSAGE = re.compile(r"(guard|aguard|explode_until): ")


def run_reference(case: Case) -> Tuple[dict, Dict[str, List[str]]]:
    result = asyncio.run(Operon(case.build()).run(inputs=dict(case.inputs)))
    state = result.pop("$state")
    return dict(result), reference_errors(state)


def run_ours(case: Case) -> dict:
    with Engine(case.build(), no_trace_store=True) as engine:
        return dict(engine.run(dict(case.inputs)))


# ── the cases ──

# Real differences between the engines (none is among the README's deliberate deviations),
# each with a minimal reproducer in test_known_differences below, and the seeds whose
# graphs meet them (checked case by case: these graphs differ for these reasons only).
D1_FAILED_NESTED = (
    "D1: an op inside a nested graph raised; the reference still runs the ops after the nested "
    "graph (one reading an output the failed op would have written is called without it: "
    "TypeError 'missing 1 required positional argument'), ours runs none of them (for that item, "
    "when the nested graph runs per item)"
)
D2_UNWRITTEN_NESTED_OUTPUT = (
    "D2: a nested graph's output that nothing wrote (its writer raised, or was a branch target "
    "not taken) is null in the reference (per item: a null entry), absent in ours (per item: "
    "no entry, so a single remaining entry is a plain value)"
)
D3_ASYNC_BATCH_DEPENDENCY = (
    "D3: a per-item op that also reads an async def batch op started alongside the generator: "
    "the reference calls it before that op is done, without the argument (TypeError), ours waits"
)
D4_TWO_GENERATORS = (
    "D4: two generators in one graph: in the reference the second stream's items share the "
    "first's contexts (its per-item outputs collapse or vanish), ours runs both streams"
)
D5_NESTED_GENERATOR_BATCH_OUTPUT = (
    "D5: a nested graph holding a generator: a batch output computed after the stream (a "
    ".collect() consumer) reaches the reference's parent once per stream context "
    "([None, ..., v, v]), ours hands v once"
)
KNOWN_DIFFERENCES: Dict[int, Tuple[str, ...]] = {
    3: (D3_ASYNC_BATCH_DEPENDENCY, D2_UNWRITTEN_NESTED_OUTPUT),
    5: (D4_TWO_GENERATORS,),
    9: (D1_FAILED_NESTED, D2_UNWRITTEN_NESTED_OUTPUT),
    10: (D5_NESTED_GENERATOR_BATCH_OUTPUT,),
    11: (D1_FAILED_NESTED, D2_UNWRITTEN_NESTED_OUTPUT),
    34: (D2_UNWRITTEN_NESTED_OUTPUT,),
    47: (D1_FAILED_NESTED, D2_UNWRITTEN_NESTED_OUTPUT),
    58: (D1_FAILED_NESTED, D2_UNWRITTEN_NESTED_OUTPUT),
    59: (D1_FAILED_NESTED,),
}


def _params():
    for seed in range(N_SEEDS):
        shape = SHAPES[seed % len(SHAPES)] + ("+fail" if (seed // len(SHAPES)) % 2 else "")
        marks = ()
        if seed in KNOWN_DIFFERENCES:
            marks = pytest.mark.xfail(strict=True, reason="; ".join(KNOWN_DIFFERENCES[seed]))
        yield pytest.param(seed, id=f"seed{seed:02d}-{shape}", marks=marks)


def assert_same(case: Case, ref: dict, ref_errors: Dict[str, List[str]], ours: dict) -> None:
    """The comparison rule of tests/conformance/README.md, plus the errors check."""
    ours = dict(ours)
    our_errors = ours.pop("$errors", None) or {}
    if isinstance(our_errors, list):  # the README accepts [{"op": ..., "message": ...}] too
        our_errors = {e["op"]: e.get("message", "") for e in our_errors}
    report = (
        f"seed {case.seed}, shape {case.shape}, inputs {case.inputs!r}\n"
        f"--- builder ---\n{case.code}"
        f"--- reference ---\n{ref!r}\n    errors: {ref_errors!r}\n"
        f"--- ours ---\n{ours!r}\n    $errors: {our_errors!r}"
    )
    assert canonical(ours) == canonical(ref), "outputs differ\n" + report
    assert set(our_errors) == set(ref_errors), "failed ops differ\n" + report
    for name, lines in ref_errors.items():
        # the messages of the pool's failing ops are fixed ("ValueError: guard: 6 is a
        # multiple of 3"); those of errors the engines raise themselves are not compared
        messages = [m for m in (line.split(": ", 1)[-1] for line in lines) if _POOL_MESSAGE.match(m)]
        if messages:
            assert any(m in str(our_errors[name]) for m in messages), f"error message of {name} differs\n" + report


@pytest.mark.parametrize("seed", list(_params()))
def test_matches_reference(seed: int) -> None:
    case = make_case(seed)
    ref, ref_errors = case.reference or run_reference(case)
    assert_same(case, ref, ref_errors, run_ours(case))


# Minimal reproducers of the differences above: (builder, inputs, difference).
_REPRODUCERS = {
    "D1-failed-nested": (
        '''with GraphOp(name="main") as g:
    with GraphOp(name="sub", inputs={"x": PARENT["x"]}) as sub:
        a = guard(name="a", n=PARENT["x"])
        b = inc(name="b", n=PARENT["x"])
        b["inc"] >> PARENT["z"]
        START >> [a, b]
        [a, b] >> END
    c = inc(name="c", n=sub["z"])
    c["inc"] >> PARENT["after"]
    START >> sub >> c >> END
''',
        {"x": 6},  # reference {"after": 8}; ours {} ($errors: main.sub.a)
        D1_FAILED_NESTED,
    ),
    "D2-unwritten-nested-output": (
        '''with GraphOp(name="main") as g:
    with GraphOp(name="sub", inputs={"x": PARENT["x"]}) as sub:
        r = Branch(name="r").if_(PARENT["x"] > 100, "big").else_("small")
        big = inc(name="big", n=PARENT["x"])
        small = triple(name="small", x=PARENT["x"])
        big["inc"] >> PARENT["b"]
        START >> r
        r >> ~big
        r >> ~small
        [big, small] >> END
    sub["b"] >> PARENT["b_out"]
    START >> sub >> END
''',
        {"x": 1},  # reference {"b_out": None}; ours {}
        D2_UNWRITTEN_NESTED_OUTPUT,
    ),
    "D2-unwritten-nested-output-per-item": (
        '''with GraphOp(name="main") as g:
    src = explode(name="src", xs=PARENT["xs"])
    with GraphOp(name="sub", inputs={"x": src["item"]}) as sub:
        a = guard(name="a", n=PARENT["x"], mod=2)
        a["kept"] >> PARENT["k"]
        START >> a >> END
    sub["k"] >> PARENT["ks"]
    START >> src >> sub >> END
''',
        {"xs": [1, 2, 3]},  # reference {"ks": [1, None, 3]}; ours {"ks": [1, 3]}
        D2_UNWRITTEN_NESTED_OUTPUT,
    ),
    "D3-async-batch-dependency": (
        '''with GraphOp(name="main") as g:
    w = words(name="w", s=PARENT["s"])
    f = flip(name="f", s=PARENT["s"])
    j = glue(name="j", a=w["word"], b=f["flipped"])
    START >> [w, f]
    [w, f] >> j
    j >> END
''',
        {"s": "ab cd"},  # reference {} ($errors: main.j TypeError); ours {"glued": ["ab-dc ba", "cd-dc ba"]}
        D3_ASYNC_BATCH_DEPENDENCY,
    ),
    "D4-two-generators": (
        '''with GraphOp(name="main") as g:
    w1 = words(name="w1", s=PARENT["s"])
    n = size(name="n", v=w1["word"])
    w2 = explode(name="w2", xs=PARENT["xs"])
    i = inc(name="i", n=w2["item"])
    START >> [w1, w2]
    w1 >> n
    w2 >> i
    [n, i] >> END
''',
        {"s": "ab cde", "xs": [10, 20, 30]},  # reference {"size": [2, 3], "inc": 31}; ours "inc": [11, 21, 31]
        D4_TWO_GENERATORS,
    ),
    "D5-nested-generator-batch-output": (
        '''with GraphOp(name="main") as g:
    with GraphOp(name="sub", inputs={"s": PARENT["s"]}) as sub:
        w = words(name="w", s=PARENT["s"])
        n = size(name="n", v=w["word"].collect())
        n["size"] >> PARENT["count"]
        START >> w >> n >> END
    sub["count"] >> PARENT["count"]
    START >> sub >> END
''',
        {"s": "ab cde fg"},  # reference {"count": [3, 3]}; ours {"count": 3}
        D5_NESTED_GENERATOR_BATCH_OUTPUT,
    ),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=r[2])) for n, r in _REPRODUCERS.items()],
)
def test_known_differences(name: str) -> None:
    code, inputs, _ = _REPRODUCERS[name]
    case = Case(-1, name, False, code, inputs)
    ref, ref_errors = run_reference(case)
    assert_same(case, ref, ref_errors, run_ours(case))
