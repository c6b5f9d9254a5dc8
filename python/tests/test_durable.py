"""Durable runs from Python: ``Engine(graph, store=...)`` records every run with its
journal; a process killed mid-run is finished by ``Engine.resume(run_id)`` in another
process without running its journaled ops again; waiting runs are answered from another
engine; a run is not resumed on another graph."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from operonx_engine import Engine

CHILD = r'''
import json, os, sys, time
from operonx.core import END, PARENT, START, GraphOp, op
from operonx_engine import Engine

calls = sys.argv[2]

@op
def items(n: int):
    for i in range(n):
        yield {"i": i}

@op
def work(i: int):
    # The side effect the test counts: one line per call.
    with open(calls, "a") as f:
        f.write(f"{i}\n")
    time.sleep(0.02)
    return {"sq": i * i}

with GraphOp(name="main") as g:
    s = items(name="src", n=PARENT["n"])
    w = work(name="each", i=s["i"])
    START >> s >> w >> END
engine = Engine(g, store=sys.argv[1], no_trace_store=True)
mode = sys.argv[3]
if mode == "run":
    print("started", flush=True)
    print(json.dumps(engine.run({"n": 60})), flush=True)
else:
    result = engine.resume(mode)
    print(json.dumps({"run_id": result.run_id, "result": result, "stopped": result.stopped, "waiting": result.waiting}), flush=True)
'''


def _child(store, calls, mode):
    # A script file, not `python -c`: the graph's outputs are read from the ops' source.
    script = store.parent / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(calls), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_python_run_resumes_in_another_process_without_redoing_journaled_ops(tmp_path):
    store, calls = tmp_path / "runs.db", tmp_path / "calls.txt"
    child = _child(store, calls, "run")
    assert child.stdout.readline().strip() == "started"
    # Let some items finish (20 ms each), then kill the process outright.
    deadline = time.time() + 20
    while time.time() < deadline and (not calls.exists() or len(calls.read_text().split()) < 15):
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    before = calls.read_text().split()
    assert 15 <= len(before) < 60, before

    import sqlite3

    rows = sqlite3.connect(store).execute("select run_id, status from runs").fetchall()
    assert len(rows) == 1 and rows[0][1] == "running", rows  # read as crashed by the CLI
    run_id = rows[0][0]

    resumed = _child(store, calls, run_id)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    done = json.loads(out.strip().splitlines()[-1])
    assert done["run_id"] == run_id
    assert done["result"] == {"sq": [i * i for i in range(60)]}, (out, err)
    after = calls.read_text().split()
    # Every item ran at least once; an item ran twice only if it was in flight at the kill.
    assert sorted(set(after), key=int) == [str(i) for i in range(60)]
    twice = [i for i in set(after) if after.count(i) > 1]
    assert len(twice) <= 2, twice
    assert sqlite3.connect(store).execute("select status from runs").fetchall() == [("done",)]


def test_a_waiting_run_is_answered_from_another_engine_and_a_changed_graph_is_refused(tmp_path):
    store = tmp_path / "runs.db"
    # A graph with an interrupt: the std `ask` function, as graph.json.
    graph = {
        "schema_version": "1.0", "type": "graph", "name": "main", "entries": ["q"],
        "initial_ready_count": {"q": 0, "shout": 1}, "compiled_adj": {"q": [["shout", False]], "shout": []},
        "ops": {
            "q": {"type": "code", "func_name": "ask", "inputs": {"question": {"literal": "name?"}}},
            "shout": {"type": "code", "func_name": "upper", "inputs": {"text": {"ref": {"source": "main.q", "var": "answer"}}},
                      "outputs": {"text": {"ref": {"source": "__PARENT__", "var": "greeting"}}}},
        },
    }
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    first = Engine(str(path), store=str(store), no_trace_store=True)
    waiting = first.run({})
    assert waiting.waiting and waiting == {"$interrupts": {"main.q": "name?"}}
    first.close()

    other = Engine(str(path), store=str(store), no_trace_store=True)
    with pytest.raises(ValueError, match="no pending interrupt"):
        other.resume(waiting.run_id, {"main.nope": 1})
    done = other.resume(waiting.run_id, {"main.q": "ada"})
    assert done == {"greeting": "ADA"} and done.run_id == waiting.run_id
    with pytest.raises(ValueError, match="is done"):
        other.resume(waiting.run_id)

    graph["ops"]["shout"]["func_name"] = "lower"
    path.write_text(json.dumps(graph))
    changed = Engine(str(path), store=str(store), no_trace_store=True)
    started = changed.run({})
    assert started.waiting
    original = json.loads(json.dumps(graph))
    original["ops"]["shout"]["func_name"] = "upper"
    path.write_text(json.dumps(original))
    with pytest.raises(ValueError, match="another graph: op main.shout changed: func_name"):
        Engine(str(path), store=str(store), no_trace_store=True).resume(started.run_id, {"main.q": "x"})
