"""Fixtures for the Node.js tests: `npm ci` into tests/node once per session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the Node.js service test")
    stamp = HERE / "node_modules" / ".package-lock.json"
    if not stamp.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True,
                       timeout=240, capture_output=True)
    return HERE / "node_modules"
