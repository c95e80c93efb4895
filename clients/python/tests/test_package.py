"""The package as it would be published: a wheel built from pyproject.toml
that installs and works on its own, typed, and mypy --strict clean."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from .conftest import CLIENT_DIR

PYPROJECT = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())


def test_mypy_strict_is_clean_on_the_package_and_its_tests() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"],  # strict and files: pyproject.toml
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_installs_and_works_without_the_source_tree(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist", "-d", str(tmp_path / "dist")],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    version = PYPROJECT["project"]["version"]
    wheel = tmp_path / "dist" / f"exec_server_client-{version}-py3-none-any.whl"
    sdist = tmp_path / "dist" / f"exec_server_client-{version}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in (tmp_path / "dist").iterdir())
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"exec_server_client-{version}.dist-info/METADATA").decode()
    assert {"exec_server/__init__.py", "exec_server/py.typed", "exec_server/wire.py"} <= names, names
    assert not any(name.startswith("tests/") for name in names)
    assert "Requires-Dist: websockets" in metadata and "Requires-Python: >=3.10" in metadata, metadata
    assert "License-Expression: MIT OR Apache-2.0" in metadata, metadata

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    program = (
        "import exec_server, sys\n"
        "from exec_server.sync import spawn_local\n"
        f"assert exec_server.__file__.startswith({str(target)!r}), exec_server.__file__\n"
        f"assert exec_server.__version__ == {version!r}\n"
        "with spawn_local() as client:\n"
        "    assert client.run(['echo', 'from the wheel']).stdout == b'from the wheel\\n'\n"
    )
    # The wheel's copy first; websockets from the test environment.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", program], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
