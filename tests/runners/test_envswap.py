"""Replacing an engine environment: built beside the old one, swapped in, and the old one
put back when the new one fails in its place; a worker's lock on the one it runs from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bragi.runners.envswap import exclusive, hold, in_use, relocate, staging_for, swap_in


def venv_like(folder: Path, marker: str) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "pip").write_text(f"#!{folder}/bin/python\nimport pip\n")
    (folder / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python -m venv {folder}\n")
    (folder / "marker").write_text(marker)
    return folder


def test_a_new_environment_replaces_the_old_one_and_names_its_new_place(tmp_path: Path) -> None:
    target = venv_like(tmp_path / "envs" / "xtts", "old")
    staging = venv_like(staging_for(target), "new")
    seen: list[str] = []

    swap_in(staging, target, lambda: seen.append((target / "marker").read_text()))

    assert seen == ["new"]  # verified in its place, before the old one was deleted
    assert (target / "marker").read_text() == "new"
    assert (target / "bin" / "pip").read_text().startswith(f"#!{target}/bin/python\n")
    assert str(staging) not in (target / "pyvenv.cfg").read_text()
    assert [p.name for p in target.parent.iterdir()] == ["xtts"]


def test_one_that_fails_in_its_place_gives_way_to_the_old_one(tmp_path: Path) -> None:
    target = venv_like(tmp_path / "envs" / "xtts", "old")
    staging = venv_like(staging_for(target), "new")

    def broken() -> None:
        raise RuntimeError("the engine does not import")

    with pytest.raises(RuntimeError, match="does not import"):
        swap_in(staging, target, broken)
    assert (target / "marker").read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["xtts"]


def test_a_first_install_has_nothing_to_put_back(tmp_path: Path) -> None:
    target = tmp_path / "envs" / "fresh"
    staging = venv_like(staging_for(target), "new")
    with pytest.raises(RuntimeError):
        swap_in(staging, target, lambda: (_ for _ in ()).throw(RuntimeError("no")))
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_relocate_leaves_binaries_and_links_alone(tmp_path: Path) -> None:
    venv = venv_like(tmp_path / "a", "x")
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "tool").write_bytes(b"\x7fELF\0" + str(venv).encode())
    relocate(venv, venv, tmp_path / "b")
    assert (venv / "bin" / "python").resolve() == Path(sys.executable).resolve()
    assert (venv / "bin" / "tool").read_bytes() == b"\x7fELF\0" + str(venv).encode()
    assert (venv / "bin" / "pip").read_text().startswith(f"#!{tmp_path / 'b'}/bin/python")


def test_a_process_holding_the_lock_marks_the_environment_in_use(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    assert in_use(env) is False
    held = hold(env)
    assert held is not None
    # Another process (a worker inherits the lock like this one) keeps it after we let go.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        pass_fds=(held.fileno(),),
    )
    held.close()
    try:
        assert in_use(env) is True
        with exclusive(env) as free:
            assert free is False
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert in_use(env) is False


def test_where_locks_cannot_tell_the_command_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bragi.cli.main import main
    from bragi.runners import envswap

    (tmp_path / "envs" / "half" / "bin").mkdir(parents=True)
    monkeypatch.setattr(envswap, "fcntl", None)  # as on a system without flock
    assert in_use(tmp_path / "envs" / "half") is None
    assert main(["backend", "remove", "half", "--data-dir", str(tmp_path)]) == 0
    assert "cannot tell whether a running server uses the half" in capsys.readouterr().err
