"""Shared fixtures: where the conformance cases live, how results are compared, and a
fresh working directory per test (the engine's default trace store is ./.operonx)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys
from typing import Any, Optional

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / "tests" / "conformance"
PY_CASES = CONFORMANCE / "python"
EXAMPLES = REPO / "examples"

# The Python op pool (`conformance_ops`) is imported by the case builders by name.
if str(PY_CASES) not in sys.path:
    sys.path.insert(0, str(PY_CASES))

TIMING_KEYS = {"$start_time", "$end_time", "$duration_ms", "start_time", "end_time", "duration_ms"}


def strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def load_builder(case: pathlib.Path, prefix: str = "case"):
    """The case's builder.py, loaded as a fresh module (its own state each time)."""
    spec = importlib.util.spec_from_file_location(f"{prefix}_{case.parent.name}_{case.name}", case / "builder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def typed(value: Any) -> Any:
    """JSON value with its Python types made explicit (2 vs 2.0, True vs 1 differ)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def check_result(result: dict, expected: dict, where: str) -> None:
    """The conformance rule (tests/conformance/README.md): timing keys dropped, errors
    set aside and checked by op (and message when strict), the rest equal as JSON."""
    expected = dict(expected)
    want_error: Optional[dict] = expected.pop("$error", None)
    got = dict(result)
    errors = got.pop("$errors", None) or {}
    assert typed(strip_timing(got)) == typed(strip_timing(expected)), (
        f"{where}: result differs\n got: {json.dumps(got, sort_keys=True)}\nwant: {json.dumps(expected, sort_keys=True)}"
    )
    if want_error is not None:
        assert want_error["op"] in errors, f"{where}: expected an error for {want_error['op']}, got {errors}"
        if want_error.get("strict_message"):
            assert want_error["message"] in errors[want_error["op"]], f"{where}: {errors}"


def case_dirs(root: pathlib.Path, marker: str) -> list:
    return sorted(p.parent for p in root.rglob(marker))


def extra_roots(variable: str) -> list:
    """More case folders named by an environment variable (os.pathsep-separated)."""
    return [pathlib.Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
