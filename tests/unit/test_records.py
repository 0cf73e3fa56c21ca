"""pyrunc.records.NamedTuple builds the same classes as typing.NamedTuple, without typing."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from pyrunc.records import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()

    @classmethod
    def origin(cls) -> Point:
        return cls(0)

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


class TypedPoint(typing.NamedTuple):
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


def test_fields_defaults_and_tuple_behaviour_match_typing_namedtuple():
    assert Point._fields == TypedPoint._fields == ("x", "y", "tags")
    assert Point._field_defaults == TypedPoint._field_defaults == {"y": 0, "tags": ()}
    p = Point(3, -4)
    assert p == (3, -4, ()) and tuple(p) == tuple(TypedPoint(3, -4))
    assert p._replace(y=1) == Point(3, 1)
    assert hash(p) == hash(TypedPoint(3, -4))
    assert repr(p) == "Point(x=3, y=-4, tags=())"
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]


def test_methods_properties_docstring_and_module_are_kept():
    assert Point.origin() == Point(0, 0)
    assert Point(3, -4).norm1 == 7
    assert Point.__doc__ == "A point."
    assert Point.__module__ == __name__
    assert Point.__annotations__ == {"x": "int", "y": "int", "tags": "tuple[str, ...]"}


def test_a_field_without_default_after_one_with_default_is_refused_like_typing():
    with pytest.raises(TypeError):
        class Bad(NamedTuple):
            a: int = 0
            b: int


def test_the_config_model_imports_without_typing():
    code = ("import sys\nimport pyrunc.spec.model, pyrunc.spec.load, pyrunc.cgroups.v1\n"
            "print('typing' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_keywords_defaults_and_wrong_arguments_are_handled_like_typing():
    assert Point(y=2, x=1) == Point(1, 2) == TypedPoint(y=2, x=1)
    assert Point(1, tags=("a",)) == (1, 0, ("a",))
    assert Point._make([1, 2, ()]) == Point(1, 2) and Point(1)._asdict() == TypedPoint(1)._asdict()
    for args, kwargs in (((), {}), ((1, 2, (), 4), {}), ((1,), {"x": 2}), ((1,), {"z": 2})):
        with pytest.raises(TypeError):
            TypedPoint(*args, **kwargs)
        with pytest.raises(TypeError):
            Point(*args, **kwargs)
    with pytest.raises(TypeError):
        Point(1)._replace(z=3)


def test_copy_and_pickle_give_equal_records():
    import copy
    import pickle

    p = Point(3, -4, ("a",))
    assert copy.copy(p) == copy.deepcopy(p) == pickle.loads(pickle.dumps(p)) == p
    assert type(pickle.loads(pickle.dumps(p))) is Point


def test_records_import_neither_typing_nor_collections():
    code = ("import sys\nimport pyrunc.records, pyrunc.spec.model\n"
            "print(sorted({'typing', 'collections'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
