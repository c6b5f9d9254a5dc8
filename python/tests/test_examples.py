"""The Python examples (examples/python/) run as a user runs them, and print what they
promise. Each runs as `python /abs/path/examples/python/X.py` in a fresh working
directory (conftest's autouse fixture), so its trace store (.operonx/) lands there."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from conftest import REPO

EXAMPLES_PY = REPO / "examples" / "python"


def run_example(name: str, cwd) -> str:
    """Run an example; return its last stdout line (the result, as JSON)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_PY / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{name} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing\nstderr:\n{done.stderr}"
    return lines[-1]


def providers_missing() -> str:
    """Why operonx's provider ops (PromptOp, LLMOp) cannot be imported, or ''."""
    try:
        importlib.import_module("operonx.providers.ops.llm")
    except ImportError as e:
        return f"operonx.providers needs operonx[openai] (httpx, openai): {e}"
    return ""


def test_llm_pipeline(tmp_path):
    reason = providers_missing()
    assert not reason, reason
    last = run_example("llm_pipeline.py", tmp_path)
    assert last == json.dumps(
        [
            {
                "id": "T-1001",
                "priority": 2,
                "sla_hours": 12,
                "summary": "Customer was charged twice for one order and wants a refund.",
                "tags": ["duplicate-charge", "refund"],
                "team": "payments",
            },
            {
                "id": "T-1002",
                "priority": 1,
                "sla_hours": 4,
                "summary": "The mobile app crashes when exporting a report.",
                "tags": ["crash", "export", "mobile"],
                "team": "engineering",
            },
            {
                "id": "T-1003",
                "priority": 3,
                "sla_hours": 72,
                "summary": "General question.",
                "tags": [],
                "team": "support",
            },
        ],
        sort_keys=True,
    )
    assert (tmp_path / ".operonx" / "traces.db").is_file()


def test_fanout(tmp_path):
    last = run_example("fanout.py", tmp_path)
    assert last == json.dumps(
        {
            "summary": {
                "count": 4,
                "relevant": ["Rust for data pipelines", "Python async tips"],
                "top": "a1",
            }
        },
        sort_keys=True,
    )
    assert (tmp_path / ".operonx" / "traces.db").is_file()
