"""Transport-neutral outgoing messages and the `Notifier` protocol every chat adapter implements.

Messages carry plain text only; each adapter turns them into its own markup (HTML, embeds) and
enforces its own limits. The outbox stores messages as JSON payloads (`to_payload`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, runtime_checkable

PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: a platform and that platform's chat id (as text)."""

    platform: str
    chat_id: str


@dataclass(frozen=True, slots=True)
class Button:
    """A neutral button: opens `url`, or sends `action` (e.g. `map BTC 24h`) back to the bot."""

    label: str
    url: str | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image the delivery worker fetches once per key and attaches for every chat."""

    key: str
    symbol: str = ""
    window: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message before formatting: a title, plain-text sections, an optional image, buttons.

    `key` is the outbox idempotency key: adapters may pass it to the platform to dedupe
    retries where supported (e.g. a Discord nonce).
    """

    title: str
    sections: tuple[str, ...] = ()
    image: ImageRef | None = None
    image_bytes: bytes | None = field(default=None, repr=False)
    buttons: tuple[Button, ...] = ()
    kind: str = ""
    key: str = ""

    def plain_text(self) -> str:
        """Title and sections as plain text, blank-line separated."""
        return "\n\n".join([self.title, *self.sections]) if self.title else \
            "\n\n".join(self.sections)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the platform answered: its message id when it gives one."""

    platform: str
    message_id: str | None = None


class DeliveryError(Exception):
    """A send failed; `recoverable` says whether retrying later can help.

    Adapters raise it with recoverable=True for timeouts, 5xx and rate limits (optionally with
    `retry_after` seconds), and recoverable=False when the chat is gone or blocked the bot.
    """

    def __init__(self, reason: str, *, recoverable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.recoverable = recoverable
        self.retry_after = retry_after


@runtime_checkable
class Notifier(Protocol):
    """A chat transport: sends one neutral message to one target."""

    @property
    def name(self) -> str:
        """Platform name this notifier serves (`telegram`, `discord`, `console`)."""
        ...

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        """Deliver or raise DeliveryError."""
        ...


class ConsoleNotifier:
    """Prints messages to a stream (stdout by default): for local runs and tests."""

    def __init__(self, stream: TextIO | None = None, name: str = "console") -> None:
        self._stream = stream
        self._name = name
        self._count = 0

    @property
    def name(self) -> str:
        """Platform name."""
        return self._name

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        """Write the message as plain text with a header line."""
        stream = self._stream or sys.stdout
        self._count += 1
        lines = [f"--- {target.platform}:{target.chat_id} [{message.kind}] {message.key}",
                 message.plain_text()]
        if message.image is not None:
            size = len(message.image_bytes) if message.image_bytes is not None else 0
            lines.append(f"[image {message.image.key}, {size} bytes]")
        lines.extend(f"[{b.label}: {b.url or b.action}]" for b in message.buttons)
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        return DeliveryReceipt(self._name, str(self._count))


def to_payload(message: OutgoingMessage) -> dict[str, Any]:
    """JSON-ready outbox payload of a message (image bytes are never stored)."""
    image = message.image
    return {
        "v": PAYLOAD_VERSION,
        "title": message.title,
        "sections": list(message.sections),
        "image": None if image is None else
        {"key": image.key, "symbol": image.symbol, "window": image.window},
        "buttons": [{"label": b.label, "url": b.url, "action": b.action}
                    for b in message.buttons],
    }


def from_payload(payload: dict[str, Any], *, kind: str = "", key: str = "",
                 image_bytes: bytes | None = None) -> OutgoingMessage:
    """Message from an outbox payload (ValueError on an unknown version)."""
    if payload.get("v", PAYLOAD_VERSION) != PAYLOAD_VERSION:
        raise ValueError(f"unknown payload version {payload.get('v')!r}")
    image = payload.get("image")
    return OutgoingMessage(
        title=str(payload.get("title", "")),
        sections=tuple(str(s) for s in payload.get("sections", ())),
        image=None if not image else ImageRef(str(image["key"]), str(image.get("symbol", "")),
                                              str(image.get("window", ""))),
        image_bytes=image_bytes,
        buttons=tuple(Button(str(b["label"]), b.get("url"), b.get("action"))
                      for b in payload.get("buttons", ())),
        kind=kind,
        key=key,
    )
