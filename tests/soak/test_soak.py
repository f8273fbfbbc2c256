"""The short soak (about two minutes, run in CI); `python -m tests.soak --minutes 30` is long."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.harness import SoakConfig, run_soak


@pytest.mark.slow
async def test_short_soak(tmp_path: Path) -> None:
    report = await run_soak(SoakConfig(tmp_path, minutes=1.5))
    print(report.text())
    (tmp_path / "report.txt").write_text(report.text())
    assert report.problems() == [], report.text()
    assert report.decided >= 500
    assert report.in_flight_at_kill >= report.duplicates
