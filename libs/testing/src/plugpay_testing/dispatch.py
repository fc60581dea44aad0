"""What a consumer's effect dispatches on, read from its source: the check that the event
classes a ``ConsumerSpec.transactional(handles=...)`` lists are the ones its effect acts on."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any


def dispatched_event_classes(*functions: Callable[..., Any]) -> set[type]:
    """Every class ``functions`` test ``event`` against (``isinstance(event, X)``, ``X`` a
    class, a tuple or a union of them, looked up in the function's module)."""
    found: set[type] = set()
    for function in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "event"
            ):
                continue
            for name in _names(node.args[1]):
                assert isinstance(name, ast.Name), ast.dump(name)
                value = function.__globals__[name.id]
                found.update(value if isinstance(value, tuple) else (value,))
    return found


def _names(node: ast.expr) -> list[ast.expr]:
    """The classes of ``isinstance``'s second argument: ``X``, ``(X, Y)`` or ``X | Y``."""
    if isinstance(node, ast.Tuple):
        return [n for element in node.elts for n in _names(element)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_names(node.left), *_names(node.right)]
    return [node]


def assert_handles_match_dispatch(subscriptions: dict[Callable[..., Any], Any]) -> None:
    """Each effect's ``handles`` (the value) lists exactly the classes the effect dispatches
    on: one left out would be passed over without a transaction, and without a word."""
    for effect, handles in subscriptions.items():
        assert dispatched_event_classes(effect) == set(handles), effect.__name__
