"""Local journal of acknowledged sends, so a crash between a platform's answer and the database
write does not send the message again.

The moment a platform accepts a message, before its outbox row is marked sent, a JSON line
`[key, receipt]` (the row's unique key) is appended with one `write` on an O_APPEND descriptor,
so a killed process leaves it whole in the kernel's cache. On start, and before stale rows are
retried, the worker marks the journal's unsettled rows sent instead of resending them. There is
no fsync: a power cut may lose a line, which costs one repeated message, never a lost one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

COMPACT_BYTES = 256 * 1024  # rewrite the file with the unsettled lines once it grows past this


class SendJournal:
    """Append-only record of sends a platform accepted and the database may not have yet."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._unsettled: dict[str, tuple[str | None, float]] = {}  # key -> receipt, when
        self._fd: int | None = None
        self._size = 0  # bytes in the file, counted as they are written (no stat per send)
        self._loaded = False
        self._broken = False

    @property
    def path(self) -> Path:
        """Where the journal lives."""
        return self._path

    def unsettled(self, older_than_s: float = 0.0) -> dict[str, str | None]:
        """Accepted sends not yet known to be recorded, with their receipts: those a crashed
        process left in the file (read once), and this process's recorded `older_than_s` ago
        or earlier (younger ones are normally still being written to the database)."""
        if not self._loaded:
            self._loaded = True
            left = _read(self._path)
            if left:
                log.info("send journal %s: %d accepted sends to reconcile", self._path, len(left))
            self._unsettled = {**{k: (r, -float("inf")) for k, r in left.items()},
                               **self._unsettled}
        cutoff = time.monotonic() - older_than_s
        return {k: r for k, (r, at) in self._unsettled.items() if at <= cutoff}

    def record(self, key: str, receipt: str | None) -> None:
        """A platform accepted the delivery with this key (call before marking it sent).

        Never raises: a journal that cannot be written (full disk, no permission) is switched
        off with one error line, and delivery goes on as it would without one.
        """
        if self._broken:
            return
        self._unsettled[key] = (receipt, time.monotonic())
        try:
            self._size += os.write(self._open(), _line(key, receipt))
        except OSError as exc:
            self._broken = True
            log.error("send journal %s cannot be written (%s); continuing without it: a crash "
                      "may repeat messages sent just before it", self._path, exc)

    def settle(self, keys: list[str], *, rewrite: bool = False) -> None:
        """The database holds these as sent (or never will): forget them. The file is rewritten
        with the rest when `rewrite` is set (after a reconcile) or when it has grown big."""
        for key in keys:
            self._unsettled.pop(key, None)
        if self._broken or not (self._size > COMPACT_BYTES or (rewrite and self._path.exists())):
            return
        try:
            self._rewrite()
        except OSError as exc:
            self._broken = True
            log.error("send journal %s cannot be rewritten (%s); continuing without it",
                      self._path, exc)

    def close(self) -> None:
        """Close the file (the journal stays on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.unsettled()  # never append before the crashed process's lines are read
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rewrite(self) -> None:
        """Replace the file by one holding only the unsettled lines (atomic rename)."""
        self.close()
        tmp = self._path.with_name(self._path.name + ".tmp")
        with open(tmp, "wb") as fh:
            self._size = fh.write(b"".join(_line(k, r) for k, (r, _) in self._unsettled.items()))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)


def _line(key: str, receipt: str | None) -> bytes:
    return (json.dumps([key, receipt], ensure_ascii=True) + "\n").encode()


def _read(path: Path) -> dict[str, str | None]:
    """The file's entries; lines that do not parse (a torn tail after a power cut) are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.error("send journal %s cannot be read (%s); its sends will be retried", path, exc)
        return {}
    out: dict[str, str | None] = {}
    for raw in data.decode("utf-8", errors="replace").splitlines():
        try:
            key, receipt = json.loads(raw)
        except (ValueError, TypeError):
            if raw.strip():
                log.warning("send journal %s: skipping unreadable line %r", path, raw[:80])
            continue
        if isinstance(key, str) and (receipt is None or isinstance(receipt, str)):
            out[key] = receipt
    return out
