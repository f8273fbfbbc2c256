"""Autogenerate a migration: `python -m storage.revise "message"` (run from the repo root)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command

from storage.db import alembic_config, upgrade


def main(argv: list[str]) -> int:
    """Upgrade a scratch SQLite file to head, then autogenerate the difference to the models."""
    if len(argv) != 1:
        print('usage: python -m storage.revise "message"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}"
        asyncio.run(upgrade(url))
        command.revision(alembic_config(url), message=argv[0], autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
