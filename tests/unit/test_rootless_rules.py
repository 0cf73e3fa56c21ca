"""runc's rules for who is rootless and where the state goes (pyrunc.cli.main)."""

from __future__ import annotations

import pytest

from pyrunc.cli import main


@pytest.mark.parametrize(("euid", "in_userns", "user", "xdg", "expected"), [
    (1000, False, "alice", "/run/user/1000", "/run/user/1000/pyrunc"),
    (1000, False, "alice", None, "/run/pyrunc"),              # the user must then pass --root
    (0, False, "root", "/run/user/0", "/run/pyrunc"),         # the host's root: never XDG
    (0, True, "alice", "/run/user/1000", "/run/user/1000/pyrunc"),   # rootless podman
    (0, True, None, "/run/user/1000", "/run/user/1000/pyrunc"),
    (0, True, "root", "/run/user/0", "/run/pyrunc"),
])
def test_default_root_follows_runc(monkeypatch: pytest.MonkeyPatch, euid: int, in_userns: bool,
                                   user: str | None, xdg: str | None, expected: str) -> None:
    monkeypatch.setattr(main.os, "geteuid", lambda: euid)
    monkeypatch.setattr(main, "in_user_namespace", lambda: in_userns)
    for name, value in (("USER", user), ("XDG_RUNTIME_DIR", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert main.default_root() == expected


@pytest.mark.parametrize(("flag", "euid", "in_userns", "expected"), [
    ("auto", 1000, False, True), ("auto", 0, False, False), ("auto", 0, True, True),
    ("true", 0, False, True), ("false", 1000, False, False),
])
def test_rootless_auto_follows_runc(monkeypatch: pytest.MonkeyPatch, flag: str, euid: int,
                                    in_userns: bool, expected: bool) -> None:
    monkeypatch.setattr(main.os, "geteuid", lambda: euid)
    monkeypatch.setattr(main, "in_user_namespace", lambda: in_userns)
    assert main.Context("/run/pyrunc", False, flag, False).is_rootless is expected

