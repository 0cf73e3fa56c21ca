"""`class X(NamedTuple)` without importing `typing` at run time.

`typing` (with the `re` it imports on 3.11) is the largest import on `create`'s path, and each
`typing.NamedTuple` class checks every annotation as a type, which costs ~0.1 ms a class; the
config model alone has two dozen. Modules write::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from pyrunc.records import NamedTuple

so type checkers see the real `typing.NamedTuple`, and at run time this builds the same
`collections.namedtuple` class from the annotations (left as strings: nothing is evaluated),
the defaults and the methods of the class body.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Class body names that belong to the class statement itself, not to the tuple type.
_NOT_COPIED = frozenset({"__annotations__", "__module__", "__qualname__", "__doc__",
                         "__orig_bases__", "__static_attributes__", "__firstlineno__"})


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if not bases:
            return super().__new__(mcs, name, bases, namespace)
        annotations: dict[str, Any] = namespace.get("__annotations__", {})
        fields = list(annotations)
        defaults = [namespace[field] for field in fields if field in namespace]
        if defaults and any(field not in namespace for field in fields[-len(defaults):]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        cls = collections.namedtuple(name, fields, defaults=defaults,  # type: ignore[misc]
                                     module=namespace["__module__"])
        cls.__annotations__ = annotations
        cls.__qualname__ = namespace.get("__qualname__", name)
        if namespace.get("__doc__"):
            cls.__doc__ = namespace["__doc__"]
        for key, value in namespace.items():
            if key not in _NOT_COPIED and key not in annotations:
                setattr(cls, key, value)
        return cls


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base class whose subclasses become `collections.namedtuple` types (see the module)."""
