"""The README examples run as written: every ```python block of
clients/python/README.md and of the "From Python" section of the main
README, each as its own program, against the real binary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import REPO, WsServer

CLIENT = REPO / "clients" / "python"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def examples() -> list[tuple[str, str]]:
    found = [(f"clients/python/README.md#{i}", code) for i, code in enumerate(blocks(CLIENT / "README.md"))]
    found += [(f"README.md#{i}", code) for i, code in enumerate(blocks(REPO / "README.md"))]
    return found


def test_both_readmes_have_python_examples() -> None:
    names = [name for name, _ in examples()]
    assert len([n for n in names if n.startswith("clients/")]) >= 3, names
    assert any(n.startswith("README.md") for n in names), names


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str, tmp_path: Path, ws_server: Callable[..., WsServer]) -> None:
    token = "readme-token"
    (tmp_path / "token").write_text(token)
    server = ws_server("--auth-token-file", str(tmp_path / "token"))
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {
        **os.environ,
        "PYTHONPATH": str(CLIENT / "src"),
        "EXEC_SERVER_URL": server.url,
        "EXEC_SERVER_TOKEN": token,
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{name} failed:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    for index, (_, code) in enumerate(examples()):
        (tmp_path / f"example_{index}.py").write_text(code)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(tmp_path)],
        env={**os.environ, "MYPYPATH": str(CLIENT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
