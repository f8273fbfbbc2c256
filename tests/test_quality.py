"""House rules as tests: ruff everywhere, mypy --strict for engine/, market/, storage/ and bot/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        [sys.executable, "-m", "mypy", "--strict", "engine", "market", "storage", "bot"],
    ],
    ids=["ruff", "mypy-strict"],
)
def test_static_checks_pass(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_engine_imports_nothing_of_ours() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "engine").glob("*.py")
        if any(line.startswith(("from bot", "import bot", "from market", "import market",
                                "from storage", "import storage"))
               for line in p.read_text(encoding="utf-8").splitlines())
    ]
    assert offenders == []


def test_market_and_storage_do_not_import_bot() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in ("market", "storage") for p in (ROOT / pkg).rglob("*.py")
        if any(line.lstrip().startswith(("from bot", "import bot"))
               for line in p.read_text(encoding="utf-8").splitlines())
    ]
    assert offenders == []
