"""Turn what users hand to ``Engine`` into the engine's graph document and the table of
Python functions its code ops call.

From a ``GraphOp`` (the ``operonx`` package), every code op's function is taken from the
op object itself. From a graph.json, each ``func_name`` is looked up in ``functions``,
then imported from the module it names; names that are neither are left to the engine's
built-in functions (``identity``, ``add``, ...).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

Function = Tuple[str, Callable[..., Any], str, List[str]]

_CODE_TYPES = ("code", "lambda")


def flavor(fn: Callable[..., Any]) -> str:
    """How ``fn`` produces results: plain, async, generator or async_generator."""
    if inspect.isasyncgenfunction(fn):
        return "async_generator"
    if inspect.isgeneratorfunction(fn):
        return "generator"
    if inspect.iscoroutinefunction(fn):
        return "async"
    return "plain"


def leading_params(fn: Callable[..., Any]) -> List[str]:
    """Names of ``fn``'s leading parameters that can be passed by position: the engine
    passes inputs it has for them positionally (Python matches keyword arguments to
    parameters one by one, which costs a 500-input join op far more than its body)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    names = []
    for p in params:
        if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            break
        names.append(p.name)
    return names


def unwrap(fn: Any) -> Any:
    """The plain function behind an ``@op`` factory (its ``__wrapped__``)."""
    inner = getattr(fn, "__wrapped__", None)
    return inner if callable(inner) else fn


class _Table:
    """Registered functions: one name per distinct callable, names kept when possible."""

    def __init__(self) -> None:
        self.by_name: Dict[str, Callable[..., Any]] = {}
        self.by_id: Dict[int, str] = {}

    def add(self, name: str, fn: Callable[..., Any]) -> str:
        known = self.by_id.get(id(fn))
        if known is not None:
            return known
        final, n = name, 2
        while final in self.by_name and self.by_name[final] is not fn:
            final = f"{name}#{n}"
            n += 1
        self.by_name[final] = fn
        self.by_id[id(fn)] = final
        return final

    def functions(self) -> List[Function]:
        return [(name, fn, flavor(fn), leading_params(fn)) for name, fn in self.by_name.items()]


def _stream_policy(param: Any) -> Optional[dict]:
    ref = getattr(param, "value", None)
    collect = bool(getattr(ref, "_stream_collect", False))
    parallel = bool(getattr(ref, "_stream_parallel", False))
    if not (collect or parallel):
        return None
    limit = getattr(ref, "_stream_parallel_max", None) or 0
    return {"collect": collect, "parallel": parallel, "parallel_max": int(limit)}


def _walk_graph_op(op: Any, entry: dict, table: _Table, overrides: Dict[str, Callable[..., Any]]) -> None:
    fn = entry.pop("python_callable", None)
    if entry.get("type") in _CODE_TYPES and fn is not None:
        name = entry.get("func_name") or getattr(fn, "__name__", "function")
        chosen = overrides.get(name) or overrides.get(name.rsplit(".", 1)[-1]) or fn
        entry["func_name"] = table.add(name, unwrap(chosen))
    for pname, param in (getattr(op, "inputs", None) or {}).items():
        policy = _stream_policy(param)
        ref = (entry.get("inputs") or {}).get(pname, {}).get("ref")
        if policy is not None and isinstance(ref, dict) and "stream_policy" not in ref:
            ref["stream_policy"] = policy
    children = getattr(op, "_ops", None)
    if children and isinstance(entry.get("ops"), dict):
        for name, child in children.items():
            if name in entry["ops"]:
                _walk_graph_op(child, entry["ops"][name], table, overrides)


# Keys of a serialized op that are not part of graph.json: resolved provider settings
# (which may hold API keys; the engine reads resources.yaml instead).
_RUNTIME_ONLY = ("resource_config", "resource_configs", "fallback_configs")


def _drop_runtime_only(node: Any) -> None:
    if isinstance(node, dict):
        for key in _RUNTIME_ONLY:
            node.pop(key, None)
        for value in node.values():
            _drop_runtime_only(value)
    elif isinstance(node, list):
        for value in node:
            _drop_runtime_only(value)


def _all_ops(op: Any) -> Iterator[Any]:
    yield op
    for child in (getattr(op, "_ops", None) or {}).values():
        yield from _all_ops(child)


class _NoProviderLookup:
    """While serializing, provider ops (llm, embedding, rerank) skip looking their
    resource up in operonx's own registry: the engine resolves resource names from its
    resources.yaml, and the lookup fails where operonx is not configured."""

    def __init__(self, graph: Any) -> None:
        self.ops = [o for o in _all_ops(graph) if getattr(o, "_initialized", True) is False]

    def __enter__(self) -> None:
        for o in self.ops:
            o._initialized = True

    def __exit__(self, *exc: Any) -> None:
        for o in self.ops:
            o._initialized = False


def from_graph_op(graph: Any, overrides: Dict[str, Callable[..., Any]]) -> Tuple[dict, List[Function]]:
    """The document and functions of an ``operonx`` ``GraphOp``."""
    if hasattr(graph, "build"):
        graph.build()
    with _NoProviderLookup(graph):
        doc = graph.serialize()
    _drop_runtime_only(doc)
    doc.setdefault("schema_version", "1.0")
    table = _Table()
    _walk_graph_op(graph, doc, table, overrides)
    return doc, table.functions()


def _code_ops(entry: dict) -> Iterator[dict]:
    if entry.get("type") in _CODE_TYPES:
        yield entry
    for child in (entry.get("ops") or {}).values():
        if isinstance(child, dict):
            yield from _code_ops(child)


def _import(qualified: str) -> Optional[Callable[..., Any]]:
    module, _, attr = qualified.rpartition(".")
    if not module:
        return None
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    return found if callable(found) else None


def from_document(doc: dict, overrides: Dict[str, Callable[..., Any]]) -> List[Function]:
    """The functions a graph.json document's code ops call (see the module's docs)."""
    table = _Table()
    for entry in _code_ops(doc):
        name = entry.get("func_name")
        if not isinstance(name, str) or not name:
            continue
        fn = overrides.get(name) or overrides.get(name.rsplit(".", 1)[-1]) or _import(name)
        if fn is not None:
            entry["func_name"] = table.add(name, unwrap(fn))
    return table.functions()


# Built-in functions that pause a run to ask for input.
_ASKING = ("ask",)


def asks_for_input(text: str, table: List[Function]) -> bool:
    """Whether a code op of the graph calls a built-in function that asks for input."""
    python = {entry[0] for entry in table}
    return any(
        entry.get("func_name") in _ASKING and entry.get("func_name") not in python
        for entry in _code_ops(json.loads(text))
    )


def load(graph: Any, functions: Optional[Dict[str, Callable[..., Any]]]) -> Tuple[str, List[Function]]:
    """The graph.json text and function table for what ``Engine`` was given."""
    overrides = dict(functions or {})
    for name, fn in overrides.items():
        if not callable(fn):
            raise TypeError(f"functions[{name!r}] is not callable ({type(fn).__name__})")
    if isinstance(graph, (str, os.PathLike)):
        with open(graph, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{os.fspath(graph)}: not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{os.fspath(graph)}: a graph.json holds an object")
        table = from_document(doc, overrides)
    elif isinstance(graph, dict):
        doc = json.loads(json.dumps(graph))
        table = from_document(doc, overrides)
    elif hasattr(graph, "serialize") and hasattr(graph, "_ops"):
        doc, table = from_graph_op(graph, overrides)
    else:
        raise TypeError(f"graph must be an operonx GraphOp, a graph.json path or a dict, got {type(graph).__name__}")
    try:
        text = json.dumps(doc, allow_nan=False, default=_refuse)
    except ValueError as e:
        raise ValueError(f"the graph holds a value with no JSON form: {e}") from None
    return text, table


def _refuse(value: Any) -> Any:
    raise TypeError(
        f"the graph holds a {type(value).__module__}.{type(value).__qualname__} "
        f"({value!r:.80}) where graph.json needs a JSON value (a literal or default)"
    )
