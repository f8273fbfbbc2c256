"""Logging: one dictConfig, JSON lines on demand, chatty libraries quieted, tokens redacted."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# Telegram bot tokens (`123456:AA...`) and Discord bot tokens (three dot-separated parts).
_TOKEN_PATTERNS = (
    re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}"),  # also inside `.../bot<token>/...`
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
)
REDACTED = "***"
QUIET_LOGGERS = {
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "discord": "WARNING",
    "discord.gateway": "WARNING",
    "discord.client": "WARNING",
    "discord.http": "WARNING",
    "apscheduler": "WARNING",
    "aiohttp.access": "WARNING",
    "telegram": "WARNING",
    "telegram.ext": "WARNING",
    "aiosqlite": "WARNING",
    "alembic": "WARNING",
}
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                               "asctime"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and anything shaped like a bot token replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) so no token reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, bool, str)) else str(value)
        if record.exc_info:
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def log_config(level: str = "INFO", json_lines: bool = False,
               secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The dictConfig for the service."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if json_lines
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactFilter, "secrets": tuple(secrets)}},
        "formatters": {"main": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main",
                                "filters": ["redact"], "stream": "ext://sys.stderr"}},
        "loggers": {name: {"level": lvl} for name, lvl in QUIET_LOGGERS.items()},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure_logging(level: str = "INFO", json_lines: bool = False,
                      secrets: Iterable[str] = ()) -> None:
    """Apply the service's logging config (idempotent)."""
    logging.config.dictConfig(log_config(level, json_lines, secrets))
    logging.captureWarnings(True)
