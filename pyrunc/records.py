"""`class X(NamedTuple)` without importing `typing` or `collections` at run time.

`typing` (with the `re` it imports on 3.11) is the largest import on `create`'s path, and each
`typing.NamedTuple` class checks every annotation as a type, which costs ~0.1 ms a class; the
config model alone has two dozen. Modules write::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from pyrunc.records import NamedTuple

so type checkers see the real `typing.NamedTuple`, and at run time this builds a tuple subclass
from the annotations (left as strings: nothing is evaluated), the defaults and the methods of the
class body.

The class is built here rather than by `collections.namedtuple` because that one compiles a
`__new__` from source for every class (~40 µs each, and `create` defines about forty) and
`collections` itself, with the `keyword`, `operator` and `reprlib` it imports, is ~1.5 ms of
`create`'s start-up. The `__new__` below is shared code that maps keywords to positions; it is
slower per call than a compiled one only when keywords or defaults are used, and configs make
hundreds of records, not millions. The class keeps what callers and tests use of a namedtuple:
field properties, `_fields`, `_field_defaults`, `_replace`, `_asdict`, `_make`, the `repr`,
`__match_args__` and copy/pickle support.
"""

from __future__ import annotations

try:
    from _collections import _tuplegetter  # type: ignore[import-not-found]
except ImportError:  # not CPython: a plain property does the same, a little slower
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str | None) -> property:
        return property(itemgetter(index), doc=doc)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

#: Class body names that belong to the class statement itself, not to the tuple type.
_NOT_COPIED = frozenset({"__orig_bases__", "__static_attributes__", "__firstlineno__"})

#: Marks a field the caller has not given (and that has no default) while `__new__` fills in.
_MISSING = object()

_new_tuple = tuple.__new__


def _constructor(name: str, fields: tuple[str, ...], defaults: tuple[Any, ...]) -> Any:
    """The `__new__` of one record class: positional and keyword arguments, then defaults."""
    count = len(fields)
    required = count - len(defaults)
    filler = (_MISSING,) * required + defaults
    index = {field: position for position, field in enumerate(fields)}

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        given = len(args)
        if given == count and not kwargs:
            return _new_tuple(cls, args)
        if given > count:
            raise TypeError(f"{name}() takes {count} positional arguments but {given} were given")
        values = [*args, *filler[given:]]
        for key, value in kwargs.items():
            position = index.get(key)
            if position is None:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if position < given:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[position] = value
        if required and _MISSING in values[:required]:
            missing = [f for f, v in zip(fields, values, strict=True) if v is _MISSING]
            raise TypeError(f"{name}() missing required arguments: {', '.join(missing)}")
        return _new_tuple(cls, values)

    __new__.__qualname__ = f"{name}.__new__"
    return __new__


# The methods every record class shares; namedtuple gives each class its own copies.

@classmethod  # type: ignore[misc]
def _make(cls: type, iterable: Iterable[Any]) -> Any:
    """A record from a sequence or iterable of its field values, in order."""
    result: tuple[Any, ...] = _new_tuple(cls, iterable)
    expected = len(cls._fields)  # type: ignore[attr-defined]
    if len(result) != expected:
        raise TypeError(f"expected {expected} arguments, got {len(result)}")
    return result


def _replace(self: Any, /, **changes: Any) -> Any:
    """A copy with the named fields given new values."""
    result = self._make(map(changes.pop, self._fields, self))
    if changes:
        raise TypeError(f"got unexpected field names: {list(changes)!r}")
    return result


def _asdict(self: Any) -> dict[str, Any]:
    """The fields as a dict, in order."""
    return dict(zip(self._fields, self, strict=True))


def __repr__(self: Any) -> str:
    pairs = zip(self._fields, self, strict=True)
    fields = ", ".join(f"{field}={value!r}" for field, value in pairs)
    return f"{type(self).__name__}({fields})"


def __getnewargs__(self: Any) -> tuple[Any, ...]:
    """For copy and pickle: the fields as a plain tuple."""
    return tuple(self)


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if not bases:
            return super().__new__(mcs, name, bases, namespace)
        annotations: dict[str, Any] = namespace.get("__annotations__", {})
        fields = tuple(annotations)
        defaults = tuple(namespace[field] for field in fields if field in namespace)
        if defaults and any(field not in namespace for field in fields[-len(defaults):]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        body = {
            "__doc__": f"{name}({', '.join(fields)})",
            "__slots__": (),
            "_fields": fields,
            "_field_defaults": dict(zip(fields[len(fields) - len(defaults):], defaults,
                                        strict=True)),
            "__match_args__": fields,
            "__new__": _constructor(name, fields, defaults),
            "_make": _make,
            "_replace": _replace,
            "_asdict": _asdict,
            "__repr__": __repr__,
            "__getnewargs__": __getnewargs__,
        }
        for key, value in namespace.items():
            if key not in _NOT_COPIED:
                body[key] = value
        if body["__doc__"] is None:
            body["__doc__"] = f"{name}({', '.join(fields)})"
        for position, field in enumerate(fields):
            body[field] = _tuplegetter(position, f"Alias for field number {position}")
        return type(name, (tuple,), body)


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base class whose subclasses become light namedtuple-like types (see the module)."""
