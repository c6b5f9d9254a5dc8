"""Trace wire parity with the reference engine: every Python-authored conformance case
(tests/conformance/python/cases, plus the folders named by $OPERONX_PYTHON_CASES) is run
by operonx 0.8.2 with its file exporter,
``Operon(graph, tracer=TracePipeline(exporters=[JsonFileExporter(dir)]))``, and by our
engine (its trace store, read back with ``operonx_engine.read_trace``), and the two
traces are compared event by event.

What is compared:

* the envelope: the same keys in the same order; ``request_id`` a UUID (ours: the run's
  id, a UUIDv7); ``event_id`` ``<request_id>-<seq>``, seq numbered from 0;
* which events there are: the same ``(kind, op_name, ctx)`` for every op event
  (``op_start``, ``op_end``, ``op_yield``), the same number of each — so the contexts,
  ``[..., "__collect__"]`` of a ``.collect()`` consumer and what follows it included;
* the order, per op call: the events of one op in one context (``(op_name, ctx)``) come
  in the same order in both, and a generator's ``op_yield`` events in ``idx`` order.
  Across op calls the order is not compared: independent ops and generator items
  interleave differently in the two engines (the reference runs a ``.collect()``
  consumer before the per-item ops of the later items, for one), and the reference's
  file sorts events by timestamp;
* payloads: the same keys (``media_refs`` always there, a list); the same values for
  every deterministic key (``inputs``, ``outputs``, ``yielded``, ``idx``, ``status``,
  ``yield_count``, ``media_refs``, as typed JSON: ``2`` is not ``2.0``); ``duration_ms``
  a number in both.

What is set aside (legitimately different, or our additions, listed in docs/tracing.md):
timestamps, the id values, durations; ``span_id`` / ``parent_span_id`` on op events;
``error`` on an ``op_end`` whose status is ``error``; the ``group_start`` /
``group_end`` events of loop iterations; the ``op_start`` / ``op_end`` span of a nested
graph op (the reference records only the ops inside it); the run-level
``operonx.run_start`` / ``operonx.run_end`` annotations (no op, ids
``<request_id>-run-start`` / ``-run-end``); the annotations the engine makes on an op call
(``exception``: a Python op's exception and traceback; ``operonx.cache``,
``operonx.replay``, ``condition_failed``).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import uuid
from collections import defaultdict
from typing import Any, Dict, List, Tuple

import pytest

pytest.importorskip("operonx")

from conftest import PY_CASES, case_dirs, extra_roots, load_builder, typed  # noqa: E402
from operonx.core import Operon  # noqa: E402
from operonx.core.tracing import TracePipeline  # noqa: E402
from operonx.core.tracing.exporters import JsonFileExporter  # noqa: E402

from operonx_engine import Engine, read_trace  # noqa: E402

CASE_DIRS = case_dirs(PY_CASES / "cases", "builder.py") + [
    d for root in extra_roots("OPERONX_PYTHON_CASES") for d in case_dirs(root, "builder.py")
]

ENVELOPE = ["event_id", "request_id", "kind", "op_name", "ctx", "timestamp", "seq", "payload"]
OP_KINDS = ("op_start", "op_end", "op_yield")
# The payload keys of the reference's op events (0.8.2, tracing spec §1.2).
PAYLOAD_KEYS = {
    "op_start": {"inputs", "media_refs"},
    "op_end": {"outputs", "status", "duration_ms", "yield_count", "media_refs"},
    "op_yield": {"yielded", "idx", "media_refs"},
}
# Our additions to op event payloads (docs/tracing.md).
OUR_PAYLOAD_ADDITIONS = {
    "op_start": {"span_id", "parent_span_id"},
    "op_end": {"span_id", "parent_span_id"},
    "op_yield": {"span_id"},
}
# Values compared as they are (typed JSON); the rest of the keys only as present.
DETERMINISTIC = {"inputs", "outputs", "yielded", "idx", "status", "yield_count", "media_refs"}
RUN_LEVEL_KEYS = {"operonx.run_start", "operonx.run_end", "operonx.dropped_events"}
# Annotations our engine makes on an op call (a Python op's exception and traceback, the
# cache, a journal replay, a branch condition that could not be evaluated).
OP_ANNOTATION_KEYS = {"exception", "operonx.cache", "operonx.replay", "condition_failed"}


def reference_trace(m, where: pathlib.Path) -> List[dict]:
    """The events operonx 0.8.2's JsonFileExporter writes for one run of the case."""
    where.mkdir()
    engine = Operon(m.build_graph(), tracer=TracePipeline(exporters=[JsonFileExporter(str(where))]))
    asyncio.run(engine.run(inputs=dict(m.INPUTS), scratch=getattr(m, "SCRATCH_SEED", None)))
    files = list(where.glob("*.json"))
    assert len(files) == 1, files
    events = json.loads(files[0].read_text())
    assert files[0].stem == events[0]["request_id"]
    return events


def our_trace(m, store: pathlib.Path) -> Tuple[str, List[dict]]:
    """Our run's id and the events our trace store recorded for it."""
    with Engine(m.build_graph(), trace_store=str(store)) as engine:
        result = engine.run(inputs=dict(m.INPUTS), scratch=getattr(m, "SCRATCH_SEED", None))
        engine.flush()
    return result.run_id, read_trace(result.run_id, trace_store=str(store))


def check_ids(events: List[dict], request_id: str, who: str) -> None:
    """One UUID request id; event ids ``<request_id>-<seq>``, seq from 0, each once."""
    assert str(uuid.UUID(request_id)) == request_id, f"{who}: request_id {request_id!r} is not a UUID"
    numbered = []
    for e in events:
        assert list(e) == ENVELOPE, f"{who}: envelope {list(e)}"
        assert e["request_id"] == request_id, f"{who}: {e}"
        assert isinstance(e["seq"], int) and not isinstance(e["seq"], bool), f"{who}: {e}"
        if e["kind"] in OP_KINDS:
            assert e["event_id"] == f"{request_id}-{e['seq']}", f"{who}: {e}"
        if re.fullmatch(re.escape(request_id) + r"-\d+", e["event_id"]):
            assert e["event_id"] == f"{request_id}-{e['seq']}", f"{who}: {e}"
            numbered.append(e["seq"])
    assert numbered and min(numbered) == 0, f"{who}: seq numbering starts at {min(numbered, default=None)}"
    assert len(set(numbered)) == len(numbered), f"{who}: a seq is used twice"


def nested_graph_ops(events: List[dict]) -> set:
    """Ops whose events hold other ops' (``main.sub`` of ``main.sub.a``): nested graph ops."""
    names = {e["op_name"] for e in events if e["op_name"]}
    return {n for n in names if any(o.startswith(n + ".") for o in names)}


def comparable(events: List[dict], ours: bool) -> List[dict]:
    """The op events of a trace, our additions set aside (see the module's doc)."""
    graphs = nested_graph_ops(events) if ours else set()
    out = []
    for e in events:
        if e["kind"] not in OP_KINDS:
            if ours:
                # Loop iteration groups, run-level annotations (no op), annotations of
                # the engine's own on an op call.
                key = e["payload"].get("key")
                assert e["kind"] in ("group_start", "group_end") or (
                    e["kind"] == "annotation"
                    and (key in RUN_LEVEL_KEYS if e["op_name"] is None else key in OP_ANNOTATION_KEYS)
                ), f"an event of ours the comparison does not know: {e}"
            else:
                raise AssertionError(f"the reference wrote a {e['kind']} event: {e}")
            continue
        if e["op_name"] in graphs:
            continue
        payload = dict(e["payload"])
        if ours:
            for key in OUR_PAYLOAD_ADDITIONS[e["kind"]]:
                assert key in payload, f"{key} missing: {e}"
                del payload[key]
            if e["kind"] == "op_end" and payload.get("status") == "error":
                assert isinstance(payload.pop("error", None), str), f"an op_end with status error names it: {e}"
        out.append({"kind": e["kind"], "op_name": e["op_name"], "ctx": e["ctx"], "payload": payload})
    return out


def by_call(events: List[dict]) -> Dict[Tuple[str, Tuple[str, ...]], List[dict]]:
    """The events of each op call, ``(op_name, ctx)``, in trace order."""
    calls: Dict[Tuple[str, Tuple[str, ...]], List[dict]] = defaultdict(list)
    for e in events:
        calls[(e["op_name"], tuple(e["ctx"]))].append(e)
    return calls


def shape(e: dict) -> dict:
    """What is compared of one op event: kind, payload keys, deterministic values."""
    p = e["payload"]
    assert set(p) == PAYLOAD_KEYS[e["kind"]], f"payload keys {sorted(p)} of {e}"
    assert isinstance(p["media_refs"], list), e
    if "duration_ms" in p:
        assert isinstance(p["duration_ms"], (int, float)) and not isinstance(p["duration_ms"], bool), e
    return {"kind": e["kind"], "keys": sorted(p), **{k: typed(p[k]) for k in sorted(p) if k in DETERMINISTIC}}


def yield_order(events: List[dict]) -> Dict[str, List[int]]:
    order: Dict[str, List[int]] = defaultdict(list)
    for e in events:
        if e["kind"] == "op_yield":
            order[e["op_name"]].append(e["payload"]["idx"])
    return dict(order)


def test_cases_are_found():
    assert len(CASE_DIRS) >= 10


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_trace_matches_the_reference(case, tmp_path):
    m = load_builder(case, "trace_case")
    ref_events = reference_trace(m, tmp_path / "reference")
    run_id, our_events = our_trace(load_builder(case, "trace_case"), tmp_path / "traces.db")

    check_ids(ref_events, ref_events[0]["request_id"], "reference")
    check_ids(our_events, run_id, "ours")
    assert uuid.UUID(run_id).version == 7

    ref, ours = comparable(ref_events, ours=False), comparable(our_events, ours=True)
    for e in ours:
        assert e["payload"].get("media_refs") == [], f"our {e['kind']} carries media_refs, a list: {e}"

    ref_calls, our_calls = by_call(ref), by_call(ours)
    report = (
        f"{case}\n--- reference ---\n"
        + "\n".join(f"{e['kind']} {e['op_name']} {e['ctx']}" for e in ref)
        + "\n--- ours ---\n"
        + "\n".join(f"{e['kind']} {e['op_name']} {e['ctx']}" for e in ours)
    )
    only_ref = sorted(set(ref_calls) - set(our_calls))
    only_ours = sorted(set(our_calls) - set(ref_calls))
    assert not only_ref and not only_ours, (
        f"the op calls (op, ctx) differ: only the reference's {only_ref}, only ours {only_ours}\n" + report
    )
    for call, evs in ref_calls.items():
        assert [shape(e) for e in our_calls[call]] == [shape(e) for e in evs], f"the events of {call} differ\n{report}"
    assert yield_order(ours) == yield_order(ref), report
    for idxs in yield_order(ours).values():
        assert idxs == sorted(idxs), report


def test_a_collect_consumer_runs_in_the_collect_context(tmp_path):
    """The regression the comparison above guards in its collect case, spelled out."""
    case = PY_CASES / "cases" / "iteration" / "generator_map_collect"
    _, events = our_trace(load_builder(case, "trace_case"), tmp_path / "traces.db")
    acc = [e["ctx"] for e in events if e["op_name"] == "main.acc" and e["kind"] in OP_KINDS]
    assert acc == [["main", "__collect__"], ["main", "__collect__"]], acc
    per_item = sorted(e["ctx"][1] for e in events if e["op_name"] == "main.d" and e["kind"] == "op_start")
    assert per_item == ["[0]", "[1]", "[2]", "[3]", "[4]"]
