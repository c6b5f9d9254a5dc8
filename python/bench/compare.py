"""Benchmark: the shared workloads built with Python ops (../shared/bench/python/graphs.py),
each run in this one process through the Python reference engine (operonx 0.8.2,
``operonx.core.Operon``) and through ``operonx_engine.Engine``. Prints one JSON line per
workload and engine, then a table of per-unit times and ratios.

    python python/bench/compare.py [--graphs PATH] [--runs N] [--only W1,W3] [--no-reference]

W5 (1,000 LLM calls, native ``llm`` op, concurrency 1,024) is measured against a mock
OpenAI-compatible server started in a child process (answers after 50 ms), through
``Engine`` and through the bench binary on the CLI's runtime (``--bench PATH``, default
target/release/operonx-bench; the CLI itself cannot call the graph's Python generator);
the reference is not run on W5.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_graphs(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location("bench_graphs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, runs: int, warmup: int = 1) -> list:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def workloads(g):
    """(name, builder, inputs, units, unit, repeat, check)."""
    return [
        ("W1", g.w1_chain, {"x": 0}, 1000, "op", 1, lambda r: r.get("out", r.get("x")) == 1000),
        ("W2", g.w2_diamond, {"x": 4}, 1, "run", 1000, lambda r: r["out"] == 17),
        ("W3", g.w3_fanout, {"n": 10000}, 10000, "item", 1, lambda r: sum(r["z"]) == 10000 * 10001),
        ("W3io", lambda: g.w3_fanout(io=True), {"n": 10000}, 10000, "item", 1, lambda r: sum(r["z"]) == 10000 * 10001),
        ("W3n", g.w3_nested, {"n": 10000}, 10000, "item", 1, lambda r: r["total"] == 10000 * 10001),
        ("W4", g.w4_wide, {"x": 1}, 500, "branch", 1, lambda r: r["out"] == 125250),
    ]


def reference_runner(builder, inputs, repeat):
    from operonx.core import Operon

    engine = Operon(builder())

    def once():
        for _ in range(repeat):
            result = asyncio.run(engine.run(inputs=inputs))
        return {k: v for k, v in result.items() if k != "$state"}

    return once


def engine_runner(builder, inputs, repeat, traced: bool):
    from operonx_engine import Engine

    kwargs = {"trace_store": os.path.join(tempfile.mkdtemp(), "traces.db")} if traced else {"no_trace_store": True}
    engine = Engine(builder(), **kwargs)

    def once():
        for _ in range(repeat):
            result = engine.run(inputs)
        return result

    return once


MOCK = r'''
import asyncio, json, sys
DELAY = float(sys.argv[1]) / 1000
BODY = json.dumps({"id": "x", "object": "chat.completion", "model": "mock",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            await asyncio.sleep(DELAY)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def w5(g, runs: int, bench: pathlib.Path, graphs_dir: pathlib.Path) -> list:
    from operonx_engine import Engine

    mock = subprocess.Popen([sys.executable, "-c", MOCK, "50"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(mock.stdout.readline())
        work = pathlib.Path(tempfile.mkdtemp())
        resources = work / "resources.yaml"
        resources.write_text(
            f"llm:\n  mock:\n    api_type: openai\n    model: mock\n    base_url: http://127.0.0.1:{port}/v1\n"
            "    api_key: none\n    max_concurrency: 4096\n"
        )
        engine = Engine(g.w5_llm(1024), resources=str(resources), no_trace_store=True)
        graph = work / "w5.json"
        graph.write_text(json.dumps(engine_graph_json(g)))
        inputs = {"n": 1000}
        check = lambda r: r["content"].count("ok") == 1000  # noqa: E731
        result = engine.run(inputs)
        assert check(result), result
        lines = []
        engine_times = timed(lambda: engine.run(inputs), runs)
        lines.append(("W5", "engine", engine_times, 1000, "call"))
        if bench.exists():
            # The CLI cannot call the Python generator; the bench binary runs the same graph
            # (w5.json, exported from this builder) with the bench pool's Rust twin of it, on
            # the CLI's runtime (--engine-threads 2), against the same mock server.
            cmd = [str(bench), str(graphs_dir / "w5.json"), "--inputs", json.dumps(inputs), "--resources",
                   str(resources), "--engine-threads", "2", "--runs", str(runs)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
            if out.returncode != 0:
                raise SystemExit(f"W5 operonx-bench: exit {out.returncode}: {out.stderr[-2000:]}")
            line = json.loads(out.stdout.strip().splitlines()[-1])
            lines.append(("W5", "cli", [line["median_ms"] / 1e3] * runs, 1000, "call"))
        return lines
    finally:
        mock.kill()


def engine_graph_json(g):
    from operonx_engine import _export

    text, _ = _export.load(g.w5_llm(1024), None)
    return json.loads(text)


def main() -> None:
    sys.setrecursionlimit(20000)  # operonx builds a 1,000-op chain recursively
    ap = argparse.ArgumentParser()
    ap.add_argument("--graphs", default=str(REPO.parent / "shared" / "bench" / "python" / "graphs.py"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--traced", action="store_true", help="also measure Engine tracing into a store")
    ap.add_argument("--bench", default=str(REPO / "target" / "release" / "operonx-bench"))
    args = ap.parse_args()
    g = load_graphs(pathlib.Path(args.graphs))
    only = {w for w in args.only.split(",") if w}
    rows = []
    for name, builder, inputs, units, unit, repeat, check in workloads(g):
        if only and name not in only:
            continue
        runners = [("engine", engine_runner(builder, inputs, repeat, False))]
        if args.traced:
            runners.append(("engine-traced", engine_runner(builder, inputs, repeat, True)))
        if not args.no_reference:
            runners.append(("reference", reference_runner(builder, inputs, repeat)))
        for label, run in runners:
            result = run()
            if not check(result):
                raise SystemExit(f"{name} {label}: wrong result {str(result)[:200]}")
            rows.append((name, label, timed(run, args.runs), units * repeat, unit))
    if not only or "W5" in only:
        rows.extend(w5(g, args.runs, pathlib.Path(args.bench), pathlib.Path(args.graphs).parents[1] / "graphs"))
    medians = {}
    for name, label, times, units, unit in rows:
        med = statistics.median(times)
        medians[(name, label)] = med
        print(json.dumps({"workload": name, "engine": label, "runs": len(times), "median_ms": round(med * 1e3, 3),
                          "min_ms": round(min(times) * 1e3, 3), "unit": unit, "per_unit_us": round(med * 1e6 / units, 3)}))
    print(f"\n{'workload':9} {'engine µs/unit':>15} {'reference µs/unit':>18} {'ratio':>8}")
    for name, label, times, units, unit in rows:
        if label != "engine":
            continue
        ours = medians[(name, "engine")] * 1e6 / units
        ref = medians.get((name, "reference")) or medians.get((name, "cli"))
        other = "reference" if (name, "reference") in medians else "cli"
        theirs = ref * 1e6 / units if ref else float("nan")
        print(f"{name:9} {ours:15.2f} {theirs:18.2f} {theirs / ours if ref else float('nan'):7.1f}x  (vs {other}, per {unit})")


if __name__ == "__main__":
    main()
