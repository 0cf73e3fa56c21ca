"""The Go-style flag parser: the forms containerd, conmon and runtime-tools actually send."""

from __future__ import annotations

import pytest

from pyrunc.cli.flags import Flag, UsageError, parse

FLAGS = [Flag("bundle, b", "str"), Flag("detach, d"), Flag("preserve-fds", "int"),
         Flag("env, e", "list")]


@pytest.mark.parametrize("argv", [
    ["--bundle", "/b", "id"], ["--bundle=/b", "id"], ["-bundle", "/b", "id"],
    ["-bundle=/b", "id"], ["-b", "/b", "id"], ["id", "--bundle", "/b"],
])
def test_value_flags_accept_every_go_form(argv):
    opts, args = parse(argv, FLAGS)
    assert opts["bundle"] == "/b" and args == ["id"]


def test_bool_flag_never_takes_a_separate_value():
    opts, args = parse(["--detach", "true"], FLAGS)
    assert opts["detach"] is True and args == ["true"]


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("1", True),
                                             ("0", False)])
def test_bool_flag_with_equals_value(value, expected):
    opts, _ = parse([f"--detach={value}"], FLAGS)
    assert opts["detach"] is expected


def test_unknown_flag_is_an_error_naming_it():
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        parse(["--nope"], FLAGS)


def test_missing_value_and_bad_int_are_errors():
    with pytest.raises(UsageError, match="flag needs an argument"):
        parse(["--bundle"], FLAGS)
    with pytest.raises(UsageError, match="parse error"):
        parse(["--preserve-fds", "x"], FLAGS)


def test_last_repeated_flag_wins_and_lists_accumulate():
    opts, _ = parse(["-b", "1", "-b", "2", "-e", "A=1", "--env=B=2"], FLAGS)
    assert opts["bundle"] == "2" and opts["env"] == ["A=1", "B=2"]


def test_not_interspersed_stops_at_first_positional():
    opts, args = parse(["-d", "id", "--bundle", "x"], FLAGS, interspersed=False)
    assert opts["detach"] and args == ["id", "--bundle", "x"]


def test_double_dash_ends_flags():
    _, args = parse(["--", "-d"], FLAGS)
    assert args == ["-d"]
