"""The conformance contract through the Python package: the Python-authored cases (with
the Python op functions of `conformance_ops`), and every graph.json case run with that
same Python op pool supplied by name."""

from __future__ import annotations

import inspect
import json
import pathlib
import uuid

import pytest

import conformance_ops
from conftest import CONFORMANCE, PY_CASES, case_dirs, check_result, extra_roots, load_builder
from operonx_engine import Engine

PY_CASE_DIRS = case_dirs(PY_CASES / "cases", "builder.py") + [
    d for root in extra_roots("OPERONX_PYTHON_CASES") for d in case_dirs(root, "builder.py")
]
GRAPH_CASE_DIRS = case_dirs(CONFORMANCE / "cases", "expected.json") + [
    d for root in extra_roots("OPERONX_GRAPH_CASES") for d in case_dirs(root, "expected.json")
]

POOL = {
    name: fn
    for name, fn in vars(conformance_ops).items()
    if callable(fn) and getattr(fn, "__module__", None) == conformance_ops.__name__ and not inspect.isclass(fn)
}


# Case-local ops of TEST_OPS.md that conformance_ops.py does not hold.
def make_obj():
    return {"obj": {"name": "Alice", "age": 30}}


def echo_value(value):
    return {"got": value}


POOL.update(make_obj=make_obj, echo_value=echo_value)


def _read(path: pathlib.Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def test_cases_are_found():
    assert len(PY_CASE_DIRS) >= 10
    assert len(GRAPH_CASE_DIRS) >= 28
    assert {"double", "each_item", "sleep_echo", "scratch_write"} <= set(POOL)


@pytest.mark.parametrize("case", PY_CASE_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_python_case(case):
    m = load_builder(case)
    engine = Engine(m.build_graph())
    result = engine.run(inputs=m.INPUTS, scratch=getattr(m, "SCRATCH_SEED", None))
    check_result(result, _read(case / "expected.json"), str(case))
    assert isinstance(result.run_id, str) and uuid.UUID(result.run_id).version == 7
    assert str(uuid.UUID(result.run_id)) == result.run_id, "the standard lowercase hyphenated form"


@pytest.mark.parametrize("case", GRAPH_CASE_DIRS, ids=lambda p: f"{p.parents[1].name}/{p.parent.name}/{p.name}")
def test_graph_json_case(case):
    engine = Engine(case / "graph.json", functions=POOL, no_trace_store=True)
    result = engine.run(inputs=_read(case / "inputs.json", {}), scratch=_read(case / "scratch.json"))
    check_result(result, _read(case / "expected.json"), str(case))
