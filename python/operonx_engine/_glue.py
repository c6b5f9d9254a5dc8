"""Small pieces of Python the native engine calls: scheduling coroutines on an asyncio
loop from engine threads, describing exceptions, and finding ``operonx.core.SCRATCH``."""

from __future__ import annotations

import asyncio
import traceback


def scratch_var():
    """The context variable ``operonx.core.SCRATCH`` reads, or None without operonx."""
    try:
        from operonx.core.states._scratch_var import _current_state_var
    except ImportError:
        return None
    return _current_state_var


def submit(loop, coro, var, state, done):
    """Run ``coro`` as a task on ``loop`` (from any thread); ``done(task)`` when it ends.

    ``var`` (when not None) is bound to ``state`` inside the task, so ``SCRATCH`` reads
    the run's scratch space.
    """

    async def bound():
        if var is not None:
            var.set(state)
        return await coro

    def start():
        task = loop.create_task(bound())
        if not done.bind(task):
            task.cancel()
        task.add_done_callback(done)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        start()  # on the loop's own thread (a run the loop drives): no wake-up needed
    else:
        loop.call_soon_threadsafe(start)


async def _next_item(agen):
    return await agen.__anext__()


def anext_step(agen):
    """A coroutine for the next item of async generator ``agen``."""
    return _next_item(agen)


def describe_error(exc, tb=None):
    """``(type name, message, formatted traceback)`` of an exception (``tb``: its
    traceback, when the exception does not carry it)."""
    kind = type(exc)
    tb = tb if tb is not None else exc.__traceback__
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    text = "".join(traceback.format_exception(kind, exc, tb))
    return name, str(exc), text
