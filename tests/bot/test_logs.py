"""Logging: JSON lines, quiet libraries, and no token ever reaches the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, JsonFormatter, RedactFilter, configure_logging, redact

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
DC_TOKEN = "MTA4OTk0NzY1NDMyMTA5ODc2NQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_tokens_are_redacted_even_when_unknown() -> None:
    line = f"HTTP Request: POST https://api.telegram.org/bot{TG_TOKEN}/getUpdates"
    assert TG_TOKEN not in redact(line)
    assert DC_TOKEN not in redact(f"login with {DC_TOKEN}")
    assert redact("my secret is hunter2", ["hunter2"]) == f"my secret is {REDACTED}"


def test_filter_rewrites_messages_args_and_tracebacks() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST %s", (
        f"https://api.telegram.org/bot{TG_TOKEN}/sendPhoto",), None)
    assert RedactFilter().filter(record)
    assert TG_TOKEN not in record.getMessage()
    try:
        raise RuntimeError(f"bad token {TG_TOKEN}")
    except RuntimeError:
        import sys

        failed = logging.LogRecord("bot", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    RedactFilter().filter(failed)
    assert TG_TOKEN not in JsonFormatter().format(failed)


def test_json_lines_with_extras(restore_logging: None) -> None:
    configure_logging("INFO", json_lines=True, secrets=["s3cret"])
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("bot.test").info("sent %s with s3cret", "alert", extra={"chat": "42"})
    logging.getLogger("httpx").info("quiet below WARNING")
    (line,) = stream.getvalue().splitlines()
    data = json.loads(line)
    assert data["msg"] == f"sent alert with {REDACTED}"
    assert data["level"] == "INFO" and data["logger"] == "bot.test" and data["chat"] == "42"
    assert logging.getLogger("discord.gateway").getEffectiveLevel() == logging.WARNING
