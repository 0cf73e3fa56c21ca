"""JSON for the hot path, without importing the `json` package.

`import json` costs about 9 ms — more than the rest of `pyrunc state` — because json.decoder
compiles regular expressions at import time (pulling in `re` and `enum`). Callers such as
podman run `pyrunc state` over and over, so the state file and the `state` output use the C
accelerator that `json` itself is built on (`_json`) directly: the same scanner and string
escaping, without the package around them.

Only what pyrunc writes is supported on the encoding side: dicts with string keys, lists,
tuples, strings, ints, floats, booleans and None. `tests/unit/test_fastjson.py` checks that the
output is byte-for-byte what `json.dumps` produces.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _DecoderContext:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook: Any = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


# The C scanner only reads these attributes; typeshed asks for a real JSONDecoder, whose module
# this one exists to avoid importing.
_scan_once = _json.make_scanner(_DecoderContext())  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


#: object_pairs_hook -> a scanner that calls it (the C scanner reads its options once).
_hooked_scanners: dict[Any, Any] = {}


def _scanner(object_pairs_hook: Any) -> Any:
    if object_pairs_hook is None:
        return _scan_once
    scanner = _hooked_scanners.get(object_pairs_hook)
    if scanner is None:
        context = _DecoderContext()
        context.object_pairs_hook = object_pairs_hook
        scanner = _hooked_scanners[object_pairs_hook] = _json.make_scanner(
            context)  # type: ignore[arg-type]
    return scanner


def loads(text: str | bytes, object_pairs_hook: Any = None) -> Any:
    """Parse one UTF-8 JSON document (raises ValueError on malformed input, like json.loads;
    `object_pairs_hook` as in json.loads)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner(object_pairs_hook)(text, start)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at character {exc.value}") from None
    except SystemError:
        # Errors inside an object or array are raised as json.decoder.JSONDecodeError, which
        # the C scanner only finds if json was imported: else it fails without an exception.
        raise ValueError("invalid JSON") from None
    finally:
        _DecoderContext.memo.clear()
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after JSON at character {end}")
    return value


def dumps(obj: Any, indent: int | None = None) -> str:
    """Serialize like json.dumps(obj, indent=indent) (default separators)."""
    if indent is None and not isinstance(obj, str):
        # The C encoder json.dumps itself uses without indent: several times faster than
        # _encode, and `create` writes the whole config into state.json a few times.
        return "".join(_c_encode(obj, 0))
    parts: list[str] = []
    _encode(obj, parts, indent, 0)
    return "".join(parts)


def _unserializable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


#: json.encoder.c_make_encoder with json.dumps' defaults (ASCII output, ", " and ": " separators,
#: keys unsorted, NaN allowed) but no circular check, as in _encode: its table of ids would be
#: shared by every call and keep stale entries after an error.
_c_encode = _json.make_encoder(None, _unserializable, _json.encode_basestring_ascii, None, ": ",
                               ", ", False, False, True)


def _encode(obj: Any, out: list[str], indent: int | None, level: int) -> None:
    if isinstance(obj, str):
        out.append(_json.encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        _encode_items([(k, v) for k, v in obj.items()], "{", "}", out, indent, level)
    elif isinstance(obj, (list, tuple)):
        _encode_items([(None, v) for v in obj], "[", "]", out, indent, level)
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _encode_items(items: list[tuple[str | None, Any]], open_: str, close: str, out: list[str],
                  indent: int | None, level: int) -> None:
    if not items:
        out.append(open_ + close)
        return
    out.append(open_)
    inner = "\n" + " " * (indent * (level + 1)) if indent is not None else ""
    for i, (key, value) in enumerate(items):
        if i:
            out.append("," if indent is not None else ", ")
        out.append(inner)
        if key is not None:
            if not isinstance(key, str):
                raise TypeError("keys must be str")
            out.append(_json.encode_basestring_ascii(key) + ": ")
        _encode(value, out, indent, level + 1)
    if indent is not None:
        out.append("\n" + " " * (indent * level))
    out.append(close)
