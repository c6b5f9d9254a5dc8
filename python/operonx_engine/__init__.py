"""Run Operon workflows on the operonx Rust engine, Python ops included.

::

    from operonx_engine import Engine

    engine = Engine(build_graph())          # an operonx GraphOp, or a graph.json path
    result = engine.run(inputs={"x": 3})    # the result `operonx run` prints
    print(result, result.run_id)

Built-in ops (prompt, llm, parser, embedding, rerank, branch, nested graphs) run natively;
Python functions are called with the GIL held only while they run.
"""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import threading
import weakref
from typing import Any, AsyncIterator, Callable, Dict, Iterator, Optional

from . import _export, _glue
from ._native import INTERRUPTED, GraphError, NativeEngine, __version__
from ._native import trace_events as _trace_events

__all__ = ["Engine", "RunResult", "GraphError", "INTERRUPTED", "read_trace", "__version__"]


def read_trace(run_id: str, trace_store: Optional[str] = None) -> list:
    """The trace events of run ``run_id`` (a unique prefix of it will do) recorded in the
    trace store (default .operonx/traces.db, where ``Engine`` records runs): a list of
    dicts in the wire format of ``operonx trace show --json`` (``event_id``,
    ``request_id``, ``kind``, ``op_name``, ``ctx``, ``timestamp``, ``seq``, ``payload``),
    in ``(timestamp, seq)`` order. Call ``Engine.flush()`` (or close the engine) first:
    the trace is written in the background. Raises ValueError for an unknown run."""
    return json.loads(_trace_events(run_id, None if trace_store is None else str(trace_store)))


class RunResult(dict):
    """A run's result: the graph outputs, plus ``$errors`` / ``$interrupts`` /
    ``$stopped`` as ``operonx run`` prints them. Compares equal to a plain dict.

    Attributes: ``run_id`` (as in ``operonx trace list``), ``stopped`` (why the run
    stopped early, or None) and ``waiting`` (True when ops wait for input: answer them
    with ``Engine.resume(result.run_id, {...})``).
    """

    run_id: str
    stopped: Optional[str]
    waiting: bool

    def __init__(self, run_id: str, result: dict, stopped: Optional[str], waiting: bool) -> None:
        super().__init__(result)
        self.run_id = run_id
        self.stopped = stopped
        self.waiting = waiting

    @property
    def errors(self) -> Dict[str, str]:
        """``{op path: message}`` of the ops that failed."""
        return dict(self.get("$errors") or {})


def _finish(run_id: str, result: dict, stopped: Optional[str], waiting: bool) -> RunResult:
    out = RunResult(run_id, result, stopped, waiting)
    if stopped == INTERRUPTED:
        err = KeyboardInterrupt()
        err.result = out  # type: ignore[attr-defined]
        raise err
    return out


class _ctrl_c_cancels:
    """While a thread's own loop drives a run: Ctrl-C reaches the loop however the signal
    lands (it may wake another thread), and cancels the run, which then ends reporting
    the interruption. Only in the main thread, and only over Python's default handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop, held: list) -> None:
        self.loop, self.held = loop, held
        self.active = threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )

    def __enter__(self) -> None:
        if self.active:
            self.loop.add_signal_handler(signal.SIGINT, self._cancel)

    def _cancel(self) -> None:
        if self.held:
            self.held[0].cancel(INTERRUPTED)

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            self.loop.remove_signal_handler(signal.SIGINT)


def _no_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


class _LoopThread:
    """An asyncio loop on a thread of its own: where ``async def`` ops of blocking runs
    (``run``, ``stream``, ``resume``) are awaited."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="operonx-engine-asyncio", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Engine:
    """A workflow loaded once and run as often as you like (from many threads too).

    ``graph`` is an ``operonx`` ``GraphOp`` (each op's Python function is taken from the
    op itself), a path to a graph.json (``func_name`` resolved by importing the module it
    names), or a graph.json document as a dict. ``functions={"name": callable}``
    overrides or supplies functions by name. ``resources`` is a resources.yaml path
    (default: ./resources.yaml when present, with ./.env). Runs are traced into
    ``trace_store`` (default .operonx/traces.db, as the CLI) unless ``no_trace_store``.

    ``resumable``: keep a journal of finished ops, so a run whose ops ask for input can be
    resumed (``Engine.resume``). By default it is on when the graph calls a function that
    asks for input (``ask``): the journal holds every finished op's outputs in memory.

    ``store``: a run store (a SQLite file path, or a ``postgres://`` URL; the CLI's
    default is ``.operonx/runs.db``). Every run is recorded there as it goes, with a
    journal of its finished ops (``durability``: ``"batched"``, ``"sync"`` or ``"off"``, as
    ``operonx run --durability``), so a run whose process died, was cancelled, timed out,
    failed or waits for input is continued by ``Engine.resume(run_id)`` from any process
    with the same graph and functions, without running its journaled ops again; the CLI's
    ``operonx runs list --store ...`` lists them.
    """

    def __init__(
        self,
        graph: Any,
        *,
        resources: Optional[str] = None,
        functions: Optional[Dict[str, Callable[..., Any]]] = None,
        trace_store: Optional[str] = None,
        no_trace_store: bool = False,
        resumable: Optional[bool] = None,
        store: Optional[str] = None,
        durability: str = "batched",
    ) -> None:
        text, table = _export.load(graph, functions)
        if resumable is None:
            resumable = _export.asks_for_input(text, table)
        self._native = NativeEngine(
            text,
            table,
            _glue,
            resources=None if resources is None else str(resources),
            trace_store=None if trace_store is None else str(trace_store),
            no_trace_store=no_trace_store,
            resumable=bool(resumable),
            store=None if store is None else str(store),
            durability=durability,
        )
        self._needs_loop = any(entry[2] in ("async", "async_generator") for entry in table)
        self._loop_thread: Optional[_LoopThread] = None
        self._lock = threading.Lock()
        self._local = threading.local()
        # The trace is written out when the engine is closed or collected, or at exit.
        self._finalizer = weakref.finalize(self, self._native.close)

    @property
    def name(self) -> str:
        """The root graph's name."""
        return self._native.name

    def _background_loop(self) -> Any:
        if not self._needs_loop:
            return None
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread.loop

    def run(
        self,
        inputs: Optional[dict] = None,
        scratch: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> RunResult:
        """Run to the end and return the result. Ctrl-C stops the run (the trace records
        it as cancelled) and raises KeyboardInterrupt, whose ``result`` is the partial one."""
        return self._blocking(inputs, scratch, timeout, fail_fast, None)

    def _blocking(self, inputs, scratch, timeout, fail_fast, resume) -> RunResult:
        if self._needs_loop and _no_running_loop():
            # Async ops: this thread runs an asyncio loop that drives the run itself, so
            # an await costs no thread switch.
            loop = self._thread_loop()
            held: list = []
            task = loop.create_task(self._hosted(inputs, scratch, timeout, fail_fast, resume, None, held))
            with _ctrl_c_cancels(loop, held):
                try:
                    done = loop.run_until_complete(task)
                except KeyboardInterrupt:
                    if not held:
                        raise
                    held[0].cancel(INTERRUPTED)
                    done = loop.run_until_complete(task)
            return _finish(*done)
        done = self._native.run(inputs, scratch, self._background_loop(), timeout, fail_fast, resume)
        return _finish(*done)

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        """This thread's loop for runs it drives (made on first use)."""
        loop = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._local.loop = asyncio.new_event_loop()
        return loop

    async def _hosted(self, inputs, scratch, timeout, fail_fast, resume, on_event, held=None) -> tuple:
        """Run on the running loop, which polls the run on its own thread."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def on_done(*args: Any) -> None:
            if fut.done():
                return
            if len(args) == 1 and isinstance(args[0], BaseException):
                fut.set_exception(args[0])
            else:
                fut.set_result(args)

        run = self._native.start(inputs, scratch, loop, on_done, on_event, timeout, fail_fast, resume, True)
        if held is not None:
            held.append(run)
        fd = run.fileno()
        loop.add_reader(fd, run.poll)
        try:
            run.poll()
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                run.cancel("cancelled")
                await asyncio.wait([fut], timeout=30)
                raise
        finally:
            loop.remove_reader(fd)

    def resume(
        self,
        run_id: str,
        answers: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> RunResult:
        """Continue run ``run_id``, which waits for input, with ``answers``
        (``{interrupt id: value}``). Ops that finished are not run again. With a
        ``store``, any run recorded there that did not finish (crashed, cancelled, timed
        out, failed, waiting) is continued, from any process."""
        return self._blocking(None, None, timeout, fail_fast, (run_id, answers or {}))

    async def arun(
        self,
        inputs: Optional[dict] = None,
        scratch: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> RunResult:
        """``run`` for asyncio code: ``async def`` ops are awaited on the caller's loop.
        Cancelling the awaiting task stops the run."""
        return await self._arun(inputs, scratch, timeout, fail_fast, None)

    async def aresume(
        self,
        run_id: str,
        answers: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> RunResult:
        """``resume`` for asyncio code."""
        return await self._arun(None, None, timeout, fail_fast, (run_id, answers or {}))

    async def _arun(self, inputs, scratch, timeout, fail_fast, resume) -> RunResult:
        return _finish(*await self._hosted(inputs, scratch, timeout, fail_fast, resume, None))

    def stream(
        self,
        inputs: Optional[dict] = None,
        scratch: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> Iterator[dict]:
        """Yield the events of ``operonx run --stream`` as they happen (``output``,
        ``failure``, ``frame``, ``interrupt``, ``stopped``), then
        ``{"type": "result", "result": RunResult}``. Closing the iterator early stops the run."""
        if not _no_running_loop():
            yield from self._threaded_stream(inputs, scratch, timeout, fail_fast)
            return
        # This thread's loop drives the run (as in `run`), one event at a time.
        loop = self._thread_loop()
        held: list = []
        events = self._astream(inputs, scratch, timeout, fail_fast, held)
        try:
            while True:
                with _ctrl_c_cancels(loop, held):
                    try:
                        event = loop.run_until_complete(events.__anext__())
                    except StopAsyncIteration:
                        return
                yield event
        finally:
            loop.run_until_complete(events.aclose())

    def _threaded_stream(self, inputs, scratch, timeout, fail_fast) -> Iterator[dict]:
        """``stream`` called inside a running loop: the run goes on the engine's threads."""
        events: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        handle = self._native.start(
            inputs,
            scratch,
            self._background_loop(),
            lambda *a: events.put(("done", a)),
            lambda ev: events.put(("event", ev)),
            timeout,
            fail_fast,
            None,
        )
        finished = False
        try:
            while True:
                try:
                    kind, item = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "event":
                    yield item
                    continue
                finished = True
                if len(item) == 1 and isinstance(item[0], BaseException):
                    raise item[0]
                yield {"type": "result", "result": _finish(*item)}
                return
        except KeyboardInterrupt:
            handle.cancel(INTERRUPTED)
            raise
        finally:
            if not finished:
                handle.cancel("cancelled")

    async def astream(
        self,
        inputs: Optional[dict] = None,
        scratch: Optional[dict] = None,
        *,
        timeout: Optional[float] = None,
        fail_fast: bool = False,
    ) -> AsyncIterator[dict]:
        """``stream`` for asyncio code (``async for event in engine.astream(...)``)."""
        async for event in self._astream(inputs, scratch, timeout, fail_fast, None):
            yield event

    async def _astream(self, inputs, scratch, timeout, fail_fast, held) -> AsyncIterator[dict]:
        events: "asyncio.Queue[dict]" = asyncio.Queue()
        runner = asyncio.ensure_future(self._hosted(inputs, scratch, timeout, fail_fast, None, events.put_nowait, held))
        try:
            while True:
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait([getter, runner], return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not events.empty():
                    yield events.get_nowait()
                yield {"type": "result", "result": _finish(*runner.result())}
                return
        finally:
            if not runner.done():
                runner.cancel()  # stops the run; wait for it to wind down (trace closed)
                await asyncio.wait([runner], timeout=30)

    def waiting(self) -> list:
        """Ids of this engine's runs that wait for input."""
        return self._native.waiting()

    def flush(self) -> None:
        """Write the trace of finished runs to the trace store now (it is written every
        quarter second in the background, and when the engine is closed)."""
        self._native.flush()

    def close(self) -> None:
        """Write out the trace and stop the engine's threads; the engine cannot run after."""
        self._finalizer()
        with self._lock:
            if self._loop_thread is not None:
                self._loop_thread.stop()
                self._loop_thread = None
        loop = getattr(self._local, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"
