"""The package's shape holds: its import contracts, and the size of the core's parts.

The contracts are in ``pyproject.toml`` (``[tool.importlinter]``) and explained in
``docs/architecture.md``; here the real ``lint-imports`` checks them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "alertcast"
# The intake, lifecycle and dispatch core: planning, the door, the commit path, the sender.
CORE = [
    "api.py",
    "app.py",
    "capacity.py",
    "chains.py",
    "commit.py",
    "dispatch.py",
    "door.py",
    "fate.py",
    "inbox.py",
    "keys.py",
    *(f"plan/{p.name}" for p in sorted((PACKAGE / "plan").glob("*.py"))),
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 40


def test_import_contracts_are_kept() -> None:
    """Every import contract holds: no circles, the layers, channels, store and HTTP apart."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip(f"lint-imports is not installed beside {sys.executable} (import-linter)")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "5 kept" in done.stdout, done.stdout


@pytest.mark.parametrize("name", CORE)
def test_no_core_module_is_over_its_size(name: str) -> None:
    """No module of the core is over 400 lines, and no function in it over 40."""
    source = (PACKAGE / name).read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_planner_reads_the_clock_or_does_io() -> None:
    """The planners are pure: no clock, no randomness, no store, no network, no files."""
    banned = {"time", "datetime.now", "asyncio", "aiohttp", "os", "random", "uuid", "open"}
    found: list[str] = []
    for path in sorted((PACKAGE / "plan").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                found += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in banned]
            if isinstance(node, ast.AsyncFunctionDef | ast.Await):
                found.append(f"{path.name}:{node.lineno}: async")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in banned:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}()")
    assert found == []
