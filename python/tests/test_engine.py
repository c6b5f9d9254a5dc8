"""How Python ops run on the engine: values, the four kinds of ops, errors, traces,
concurrency, cancellation, interrupts, streams, recursion and threads."""

from __future__ import annotations

import asyncio
import datetime
import resource
import sqlite3
import threading
import time

import pytest
from operonx.core import END, PARENT, SCRATCH, START, GraphOp, op

from operonx_engine import INTERRUPTED, Engine, GraphError, RunResult




@op
def echo(value):
    return {"value": value}


@op
def describe(value):
    return {"kind": type(value).__name__, "value": value}


def single(fn, **inputs):
    with GraphOp(name="main") as g:
        o = fn(name="o", **{k: PARENT[k] for k in inputs})
        START >> o >> END
    return g


# ── values ──────────────────────────────────────────────────────────────────


def test_values_keep_their_python_types():
    engine = Engine(single(describe, value=None), no_trace_store=True)
    cases = [0, -7, 2**63 - 1, 2**64 - 1, 1.0, 2.5, -0.0, True, False, None, "é", [1, 2.0, "x"], {"a": {"b": [None]}}]
    for value in cases:
        result = engine.run({"value": value})
        assert result["value"] == value and type(result["value"]) is type(value), (value, result)
        assert result["kind"] == type(value).__name__
    assert engine.run({"value": (1, 2)})["value"] == [1, 2]


def test_ints_beyond_64_bits_are_refused_clearly():
    engine = Engine(single(echo, value=None), no_trace_store=True)
    with pytest.raises(TypeError, match=r"inputs: at \['value'\]: the int 36893488147419103232 does not fit in 64 bits"):
        engine.run({"value": 2**65})

    @op
    def huge(value):
        return {"big": 2**70}

    result = Engine(single(huge, value=None), no_trace_store=True).run({"value": 1})
    assert "big" not in result
    assert "output 'big': the int 1180591620717411303424 does not fit in 64 bits" in result["$errors"]["main.o"]


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getitem__(self, i):
        return (self.x, self.y)[i]

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


def test_objects_pass_between_python_ops_unchanged(tmp_path):
    seen = []

    @op
    def make(n: int):
        return {"when": datetime.datetime(2026, 1, n), "pt": Point(n, -n), "both": [Point(0, 0), {"k": Point(1, 1)}]}

    @op
    def use(when, pt, both):
        seen.append((when, pt, both))
        return {"year": when.year, "same": pt}

    @op
    def items_of(n: int):
        for i in range(n):
            yield {"p": Point(i, i)}

    @op
    def keep(p):
        seen.append(p)
        return {"p": p}

    with GraphOp(name="main") as g:
        m = make(name="m", n=PARENT["n"])
        u = use(name="u", when=m["when"], pt=m["pt"], both=m["both"])
        with GraphOp(name="sub", inputs={"pt": m["pt"]}) as sub:
            k = keep(name="k", p=PARENT["pt"])
            k["p"] >> PARENT["inner"]
            START >> k >> END
        gen = items_of(name="gen", n=PARENT["n"])
        each = keep(name="each", p=gen["p"])
        each["p"] >> PARENT["points"]
        START >> m >> [u, sub]
        START >> gen >> each
        [u, sub, each] >> END
    engine = Engine(g, trace_store=str(tmp_path / "t.db"))
    result = engine.run({"n": 2})
    made_when, made_pt, both = seen[0]
    assert isinstance(made_when, datetime.datetime) and isinstance(made_pt, Point)
    assert isinstance(both[0], Point) and isinstance(both[1]["k"], Point)
    assert result["year"] == 2026
    assert result["same"] is made_pt  # the very object, also as a graph output
    assert result["inner"] is made_pt  # through a nested graph
    assert [repr(p) for p in result["points"]] == ["Point(0, 0)", "Point(1, 1)"]
    from_items = [p for p in seen if isinstance(p, Point) and p.x == p.y]
    assert len(from_items) == 2 and all(p is q for p, q in zip(result["points"], from_items))
    engine.close()
    text = "\n".join(bytes(r[0]).decode() for r in sqlite3.connect(tmp_path / "t.db").execute("select data from batches"))
    assert '"repr":"Point(2, -2)"' in text  # traces record objects by repr


def test_ref_transforms_read_objects():
    @op
    def make(n: int):
        return {"pt": Point(n, 2 * n)}

    @op
    def pair(a, b):
        return {"sum": a + b}

    with GraphOp(name="main") as g:
        m = make(name="m", n=PARENT["n"])
        p = pair(name="p", a=m["pt"].x, b=m["pt"][1])
        START >> m >> p >> END
    assert Engine(g, no_trace_store=True).run({"n": 5}) == {"sum": 15}


def test_a_built_in_op_refuses_an_object_naming_its_type():
    from operonx.core import ParserOp

    @op
    def make(n: int):
        return {"when": datetime.datetime(2026, 1, n)}

    with GraphOp(name="main") as g:
        m = make(name="m", n=PARENT["n"])
        p = ParserOp(name="p", format="json", extract=["a: int"], inputs={"text": m["when"]})
        p["a"] >> PARENT["a"]
        START >> m >> p >> END
    result = Engine(g, no_trace_store=True).run({"n": 1})
    assert "a" not in result
    message = result["$errors"]["main.p"]
    assert "input 'text' holds a datetime.datetime object" in message, message


def test_nan_and_non_str_keys_are_refused():
    @op
    def bad(value):
        return {"x": float("nan")} if value == 1 else {"x": {1: "a"}}

    engine = Engine(single(bad, value=None), no_trace_store=True)
    assert "nan" in engine.run({"value": 1})["$errors"]["main.o"]
    assert "keys must be str" in engine.run({"value": 2})["$errors"]["main.o"]
    with pytest.raises(TypeError, match="inputs must be a dict"):
        engine.run([1])


# ── the four kinds of ops ───────────────────────────────────────────────────


@op
def items(n: int):
    for i in range(n):
        yield {"i": i}


@op
async def aitems(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield {"i": i}


@op
async def anap(i: int, ms: int = 50):
    await asyncio.sleep(ms / 1000)
    return {"v": i}


@op
def square(i: int):
    return {"sq": i * i}


def fanout(gen, per_item, parallel=False):
    with GraphOp(name="main") as g:
        s = gen(name="src", n=PARENT["n"])
        ref = s["i"].parallel() if parallel else s["i"]
        o = per_item(name="each", i=ref)
        START >> s >> o >> END
    return g


@pytest.mark.parametrize("gen", [items, aitems], ids=["generator", "async_generator"])
def test_generators_stream_items_in_order(gen):
    result = Engine(fanout(gen, square), no_trace_store=True).run({"n": 6})
    assert result == {"sq": [0, 1, 4, 9, 16, 25]}


def test_async_ops_run_concurrently():
    engine = Engine(fanout(items, anap, parallel=True), no_trace_store=True)
    started = time.perf_counter()
    result = engine.run({"n": 200})
    elapsed = time.perf_counter() - started
    assert sorted(result["v"]) == list(range(200))
    # One after another this would take 10 s; concurrently about 50 ms.
    assert elapsed < 5, elapsed


def test_arun_awaits_async_ops_on_the_callers_loop():
    seen = []

    @op
    async def where(i: int):
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        return {"v": i}

    engine = Engine(fanout(items, where, parallel=True), no_trace_store=True)

    async def main():
        result = await engine.arun({"n": 100})
        return result, asyncio.get_running_loop()

    result, loop = asyncio.run(main())
    assert sorted(result["v"]) == list(range(100))
    assert seen and all(s is loop for s in seen)


def test_generator_backpressure_keeps_a_million_items_in_bounded_memory():
    state = {"made": 0, "seen": 0, "ahead": 0}

    @op
    def numbers(n: int):
        for i in range(n):
            state["made"] += 1
            yield {"i": i}

    @op
    def count(i: int):
        state["seen"] += 1
        state["ahead"] = max(state["ahead"], state["made"] - state["seen"])
        return None

    engine = Engine(fanout(numbers, count), no_trace_store=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    engine.run({"n": 1_000_000})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert state["made"] == state["seen"] == 1_000_000
    assert state["ahead"] <= 64, state  # items are made as the consumer takes them
    assert grown_mb < 100, grown_mb


# ── errors and traces ───────────────────────────────────────────────────────


@op
def explode(value):
    raise LookupError(f"no entry for {value!r}")


def test_an_exception_fails_the_op_by_path_and_lands_in_the_trace(tmp_path):
    store = tmp_path / "traces.db"
    with GraphOp(name="main") as g:
        with GraphOp(name="sub", inputs={"value": PARENT["value"]}) as sub:
            e = explode(name="e", value=PARENT["value"])
            START >> e >> END
        after = echo(name="after", value=sub["value"])
        START >> sub >> after >> END
    engine = Engine(g, trace_store=str(store))
    result = engine.run({"value": 7})
    assert result == {"$errors": {"main.sub.e": "LookupError: no entry for 7"}}
    assert result.errors == {"main.sub.e": "LookupError: no entry for 7"}
    engine.close()
    db = sqlite3.connect(store)
    status, errors = db.execute("select status, error_count from runs where request_id = ?", (result.run_id,)).fetchone()
    assert status == "error" and errors >= 1
    text = "\n".join(bytes(row[0]).decode() for row in db.execute("select data from batches"))
    assert "Traceback (most recent call last)" in text and "in explode" in text and "LookupError" in text


def test_a_bad_graph_is_refused_with_every_problem_named():
    doc = {
        "schema_version": "1.0",
        "type": "graph",
        "name": "main",
        "entries": ["a"],
        "initial_ready_count": {"a": 0},
        "compiled_adj": {"a": []},
        "ops": {"a": {"type": "code", "func_name": "no_such_function", "inputs": {}, "outputs": {}}},
    }
    with pytest.raises(GraphError, match='main.a: no function registered as "no_such_function"'):
        Engine(doc, no_trace_store=True)
    with pytest.raises(TypeError, match="graph must be"):
        Engine(42)


def test_runs_are_traced_into_the_clis_store_by_default(tmp_path):
    engine = Engine(single(echo, value=None))
    result = engine.run({"value": 1})
    engine.flush()
    db = sqlite3.connect(tmp_path / ".operonx" / "traces.db")
    assert db.execute("select status from runs where request_id = ?", (result.run_id,)).fetchone() == ("ok",)


# ── scratch, streams, interrupts ────────────────────────────────────────────


def test_scratch_is_seeded_read_and_written_by_python_ops():
    @op
    def bump(key: str):
        SCRATCH[key] = (SCRATCH[key] or 0) + 1
        return {"now": SCRATCH[key], "has": key in SCRATCH}

    engine = Engine(single(bump, key=None), no_trace_store=True)
    assert engine.run({"key": "k"}, scratch={"k": 41}) == {"now": 42, "has": True}
    assert engine.run({"key": "k"}) == {"now": 1, "has": True}


def test_stream_yields_the_cli_events_then_the_result():
    events = list(Engine(fanout(items, square), no_trace_store=True).stream({"n": 3}))
    outputs = [e["values"]["sq"] for e in events if e["type"] == "output"]
    assert outputs == [0, 1, 4]
    assert [e["seq"] for e in events[:-1]] == list(range(len(events) - 1))
    assert events[-1]["type"] == "result" and events[-1]["result"] == {"sq": [0, 1, 4]}
    assert isinstance(events[-1]["result"], RunResult)


def test_astream_yields_events_in_asyncio_code():
    async def main():
        return [e async for e in Engine(fanout(aitems, anap), no_trace_store=True).astream({"n": 3})]

    events = asyncio.run(main())
    assert [e["values"]["v"] for e in events if e["type"] == "output"] == [0, 1, 2]
    assert events[-1]["result"] == {"v": [0, 1, 2]}


def test_a_run_that_asks_for_input_is_resumed_with_answers():
    doc = {
        "schema_version": "1.0",
        "type": "graph",
        "name": "main",
        "entries": ["q"],
        "initial_ready_count": {"q": 0, "e": 1},
        "compiled_adj": {"q": [["e", False]], "e": []},
        "ops": {
            "q": {
                "type": "code",
                "func_name": "ask",
                "inputs": {"question": {"required": True, "literal": "name?"}},
                "outputs": {"answer": {"ref": {"source": "__PARENT__", "var": "answer", "is_output": True}}},
            },
            "e": {
                "type": "code",
                "func_name": "shout",
                "inputs": {"text": {"required": True, "ref": {"source": "main.q", "var": "answer"}}},
                "outputs": {"loud": {"ref": {"source": "__PARENT__", "var": "loud", "is_output": True}}},
            },
        },
    }
    calls = []

    def shout(text):
        calls.append(text)
        return {"loud": text.upper()}

    engine = Engine(doc, functions={"shout": shout}, no_trace_store=True)
    first = engine.run()
    assert first.waiting and list(first["$interrupts"]) == ["main.q"]
    assert engine.waiting() == [first.run_id]
    done = engine.resume(first.run_id, {"main.q": "ada"})
    assert done == {"answer": "ada", "loud": "ADA"} and calls == ["ada"]
    with pytest.raises(ValueError, match="waits for input"):
        engine.resume(first.run_id, {"main.q": "again"})


# ── stopping runs ───────────────────────────────────────────────────────────


def test_cancelling_the_awaiting_task_stops_the_run(tmp_path):
    cancelled = []

    @op
    async def slow(i: int):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return {"v": i}

    engine = Engine(fanout(items, slow, parallel=True), trace_store=str(tmp_path / "t.db"))

    async def main():
        task = asyncio.create_task(engine.arun({"n": 3}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if len(cancelled) == 3:
                break
            await asyncio.sleep(0.02)

    started = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - started < 10
    assert sorted(cancelled) == [0, 1, 2]
    engine.close()
    status = sqlite3.connect(tmp_path / "t.db").execute("select status from runs").fetchall()
    assert status == [("cancelled",)], status


def test_ctrl_c_stops_the_run_and_raises_keyboard_interrupt():
    import _thread

    @op
    async def slow(i: int):
        await asyncio.sleep(30)
        return {"v": i}

    engine = Engine(fanout(items, slow, parallel=True), no_trace_store=True)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as caught:
        engine.run({"n": 2})
    assert time.perf_counter() - started < 10
    assert caught.value.result["$stopped"] == INTERRUPTED


def test_ctrl_c_inside_a_python_op_stops_the_whole_run():
    import _thread

    ran = []

    @op
    def spin(i: int):
        ran.append(i)
        if i == 0:
            _thread.interrupt_main()
            time.sleep(1)  # the KeyboardInterrupt lands here
        return {"v": i}

    engine = Engine(fanout(items, spin), no_trace_store=True)
    with pytest.raises(KeyboardInterrupt):
        engine.run({"n": 1000})
    assert len(ran) < 1000


def test_timeout_stops_the_run_with_a_partial_result():
    engine = Engine(fanout(items, anap), no_trace_store=True)
    result = engine.run({"n": 100}, timeout=0.3)
    assert result.stopped is not None and result.stopped.startswith("timed out")
    assert 0 < len(result.get("v", [])) < 100
    with pytest.raises(ValueError, match=r"`timeout` must be a positive number of seconds, at most 604800 \(7 days\), got 1e300"):
        engine.run({"n": 1}, timeout=1e300)


# ── engines inside ops, engines on threads ──────────────────────────────────


def test_a_python_op_can_run_another_engine():
    inner = Engine(single(square, i=None), no_trace_store=True)

    @op
    def outer_op(i: int):
        return {"inner": inner.run({"i": i})["sq"]}

    @op
    async def outer_async(i: int):
        return {"inner_async": (await inner.arun({"i": i}))["sq"]}

    assert Engine(single(outer_op, i=None), no_trace_store=True).run({"i": 9}) == {"inner": 81}
    assert Engine(single(outer_async, i=None), no_trace_store=True).run({"i": 5}) == {"inner_async": 25}


def test_many_engines_on_many_threads():
    shared = Engine(fanout(items, square), no_trace_store=True)
    failures = []

    def work(k):
        own = Engine(fanout(aitems, square), no_trace_store=True)
        for n in range(20):
            for engine in (shared, own):
                got = engine.run({"n": n + k})
                want = {"sq": [i * i for i in range(n + k)]} if n + k > 1 else ({"sq": 0} if n + k == 1 else {})
                if got != want:
                    failures.append((k, n, got))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_closed_engine_refuses_to_run():
    engine = Engine(single(echo, value=None), no_trace_store=True)
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.run({"value": 1})


SIGINT_CHILD = r'''
import asyncio, sys, time
from operonx.core import END, PARENT, START, GraphOp, op
from operonx_engine import Engine

@op
def items(n: int):
    for i in range(n):
        yield {"i": i}

@op
async def slow_async(i: int):
    await asyncio.sleep(60)
    return {"v": i}

@op
def slow_sync(i: int):
    time.sleep(0.05)
    return {"v": i}

fn = slow_async if sys.argv[1] == "async" else slow_sync
with GraphOp(name="main") as g:
    s = items(name="src", n=PARENT["n"])
    o = fn(name="each", i=s["i"].parallel())
    START >> s >> o >> END
engine = Engine(g, trace_store=sys.argv[2])
print("started", flush=True)
try:
    engine.run({"n": 2000})
    print("finished", flush=True)
except KeyboardInterrupt as e:
    print("interrupted", e.result["$stopped"], flush=True)
'''


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_real_sigint_stops_the_run_and_the_trace_says_cancelled(kind, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    store = tmp_path / "t.db"
    child = subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD, kind, str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "started"
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert out.strip() == f"interrupted {INTERRUPTED}", (out, err)
    assert child.returncode == 0
    assert sqlite3.connect(store).execute("select status from runs").fetchall() == [("cancelled",)]


def test_closing_a_stream_early_stops_the_run(tmp_path):
    made = []

    @op
    def numbers(n: int):
        for i in range(n):
            made.append(i)
            yield {"i": i}

    engine = Engine(fanout(numbers, square), trace_store=str(tmp_path / "t.db"))
    events = engine.stream({"n": 100_000})
    outputs = 0
    for event in events:
        outputs += event["type"] == "output"
        if outputs == 3:
            break
    events.close()
    assert len(made) < 1000
    engine.close()
    assert sqlite3.connect(tmp_path / "t.db").execute("select status from runs").fetchall() == [("cancelled",)]


def test_stream_and_run_inside_a_running_loop_use_the_engines_threads():
    engine = Engine(fanout(items, anap), no_trace_store=True)

    async def main():
        # Blocking calls from a coroutine (as in a notebook): they must not need this loop.
        events = list(engine.stream({"n": 2}))
        return events[-1]["result"], engine.run({"n": 3})

    streamed, ran = asyncio.run(main())
    assert streamed == {"v": [0, 1]} and ran == {"v": [0, 1, 2]}


def test_graph_json_func_names_are_imported_from_their_module(tmp_path):
    import json

    src = CONFORMANCE_GRAPH("scheduler/two_op_chain")
    doc = json.loads(src.read_text())
    for entry in doc["ops"].values():
        entry["func_name"] = f"conformance_ops.{entry['func_name']}"
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(doc))
    inputs = json.loads((src.parent / "inputs.json").read_text())
    expected = json.loads((src.parent / "expected.json").read_text())
    assert Engine(str(path), no_trace_store=True).run(inputs) == expected
    # `functions=` overrides what the module holds.
    override = {"conformance_ops.double": lambda x: {"result": x * 100}}
    assert Engine(str(path), functions=override, no_trace_store=True).run(inputs) != expected


def CONFORMANCE_GRAPH(case):
    from conftest import CONFORMANCE

    return next(CONFORMANCE.glob(f"cases/*/{case}/graph.json"))


def test_an_unavailable_trace_store_warns_and_the_run_goes_on(tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's folder should be")
    with pytest.warns(RuntimeWarning, match="cannot open trace store .*runs are not recorded"):
        engine = Engine(single(echo, value=None), trace_store=str(blocked / "traces.db"))
    assert engine.run({"value": 5}) == {"value": 5}
