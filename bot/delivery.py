"""Outbox worker: delivers outbox rows through the notifiers, at least once, never twice on purpose.

How duplicates are prevented or bounded:

* Deciding and enqueueing are one transaction (`storage.alert_store`): the alert state and the
  outbox row commit together, and the row's idempotency key is a function of the committed
  state. A crash before the commit loses nothing (the next evaluation recomputes the same
  decision and key); a crash after it leaves a pending row that this worker delivers.
* Enqueueing an existing key is a no-op (UNIQUE key, ON CONFLICT DO NOTHING), so recomputation,
  replays and concurrent producers can never create a second row for one alert.
* Claiming moves a row to `sending` (in its own transaction) before the notifier is called and
  `mark_sent` follows the send at once. Rows left in `sending` by a crash are retried on start
  (`requeue_sending`). The only window for a duplicate is a crash (or a send timeout) after the
  platform accepted the message and before `mark_sent` committed: at most one extra copy per
  such event, never a loop. Notifiers receive the key (`OutgoingMessage.key`) so a platform
  that supports it (a Discord nonce, a webhook idempotency header) can dedupe even that. For
  platforms that cannot (Telegram), a local journal (`bot.send_journal`) records each accepted
  send before `mark_sent`, and a restart records those rows instead of resending them: what is
  left is a crash while the platform's answer is still on the wire.
* Each platform has its own lane (claim, send, record), so one slow or failing transport
  neither blocks nor fails another; recoverable errors back off exponentially per row,
  permanent ones (blocked, chat gone) fail the row and pause that chat's subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from bot.notifier import (
    DeliveryError,
    Notifier,
    Target,
    from_payload,
)
from bot.send_journal import SendJournal
from storage import outbox
from storage.db import SessionFactory
from storage.outbox import Claimed
from storage.repo import pause_chat

log = logging.getLogger(__name__)

ImageProvider = Callable[[str], Awaitable[bytes]]
Clock = Callable[[], datetime]
MARK_SENT_ATTEMPTS = 5
STALE_SENDING = timedelta(minutes=15)
# A journaled send whose own database write has not settled it within this gave up (its retries
# take seconds): the running worker then records it from the journal.
JOURNAL_SETTLE = timedelta(minutes=1)


def _utcnow() -> datetime:
    """Wall clock, UTC-aware."""
    return datetime.now(UTC)


# ---------------------------------------------------------------- retry policy and images


def backoff(attempts: int, base: timedelta = timedelta(seconds=5),
            cap: timedelta = timedelta(hours=1)) -> timedelta:
    """Delay before the next try after `attempts` failed tries: base * 2^(attempts-1), capped."""
    delay: timedelta = base * (2 ** max(attempts - 1, 0))
    return min(delay, cap)


class ImageCache:
    """Fetches each image key once, however many chats need it; concurrent callers share it."""

    def __init__(self, provider: ImageProvider, max_entries: int = 32) -> None:
        self._provider = provider
        self._max = max_entries
        self._entries: OrderedDict[str, asyncio.Future[bytes]] = OrderedDict()
        self.fetches = 0

    async def get(self, key: str) -> bytes:
        """Image bytes for `key`; a failed fetch is not cached."""
        future = self._entries.get(key)
        if future is None:
            self.fetches += 1
            future = asyncio.ensure_future(self._provider(key))
            self._entries[key] = future
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._entries.get(key) is future:
                del self._entries[key]
            raise


# ---------------------------------------------------------------- the worker


class OutboxWorker:
    """Delivers due outbox rows, one lane per notifier; `start()`/`stop()` or `drain()` in tests."""

    def __init__(
        self,
        sessions: SessionFactory,
        notifiers: Iterable[Notifier],
        *,
        image_provider: ImageProvider | None = None,
        clock: Clock = _utcnow,
        batch_size: int = 50,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        send_timeout: float = 60.0,
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=5),
        backoff_cap: timedelta = timedelta(hours=1),
        journal: SendJournal | None = None,
    ) -> None:
        self._sessions = sessions
        self._journal = journal
        self._notifiers = {n.name: n for n in notifiers}
        self._images = None if image_provider is None else ImageCache(image_provider)
        self._clock = clock
        self._batch = batch_size
        self._concurrency = concurrency
        self._poll = poll_interval
        self._timeout = send_timeout
        self._last_requeue: datetime | None = None
        self._max_attempts = max_attempts
        self._base, self._cap = backoff_base, backoff_cap
        self._wake: dict[str, asyncio.Event] = {}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def images(self) -> ImageCache | None:
        """The per-key image cache (None without an image provider)."""
        return self._images

    async def start(self) -> None:
        """Record the sends a crash left unrecorded (journal), retry the rest of the rows left in
        `sending`, then run one lane per notifier."""
        await self._reconcile_journal(rewrite=True)
        async with self._sessions() as session, session.begin():
            requeued = await outbox.requeue_sending(session, self._clock())
        if requeued:
            log.warning("outbox: %d deliveries left in 'sending' will be retried", requeued)
        self._stopping.clear()
        for name in self._notifiers:
            self._wake[name] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._lane(name), name=f"outbox-{name}"))

    def wake(self) -> None:
        """Look for due rows now (call after enqueueing)."""
        for event in self._wake.values():
            event.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batches in flight (up to `grace` seconds), then stop."""
        self._stopping.set()
        self.wake()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        if self._journal is not None:
            self._journal.close()

    async def _lane(self, name: str) -> None:
        """Claim and deliver one platform's rows until stopped."""
        wake = self._wake[name]
        while not self._stopping.is_set():
            try:
                await self._requeue_stale()
                count = await self.run_once(name)
            except Exception:
                log.exception("outbox lane %s failed; retrying in %.1fs", name, self._poll)
                count = 0
            if count == 0 and not self._stopping.is_set():
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._poll)

    async def _requeue_stale(self) -> None:
        """Rows claimed longer ago than STALE_SENDING were orphaned (their send timed out long
        ago and recording it failed): return them to pending, at most once a minute."""
        now = self._clock()
        if self._last_requeue is not None and now - self._last_requeue < timedelta(minutes=1):
            return
        self._last_requeue = now
        await self._reconcile_journal(older_than=JOURNAL_SETTLE)
        async with self._sessions() as session, session.begin():
            count = await outbox.requeue_sending(session, now, claimed_before=now - STALE_SENDING)
        if count:
            log.warning("outbox: %d deliveries stuck in 'sending' will be retried", count)

    async def run_once(self, platform: str | None = None) -> int:
        """Claim one batch (of one platform, or of all that have a notifier) and deliver it."""
        names = [platform] if platform is not None else list(self._notifiers)
        total = 0
        for name in names:
            async with self._sessions() as session, session.begin():
                claimed = await outbox.claim_due(session, self._clock(), self._batch, name)
            gate = asyncio.Semaphore(self._concurrency)

            async def one(row: Claimed, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await self._deliver(row)

            await asyncio.gather(*(one(row) for row in claimed))
            total += len(claimed)
        return total

    async def drain(self, max_batches: int = 1000) -> int:
        """Deliver until nothing is due (tests and one-shot runs); returns rows handled."""
        total = 0
        for _ in range(max_batches):
            count = await self.run_once()
            if count == 0:
                break
            total += count
        return total

    async def _deliver(self, row: Claimed) -> None:
        """Send one claimed row and record the outcome; never raises for a send failure."""
        notifier = self._notifiers[row.platform]
        try:
            message = from_payload(row.payload, kind=row.kind, key=row.key,
                                   image_bytes=await self._image_for(row))
            receipt = await asyncio.wait_for(
                notifier.send(Target(row.platform, row.chat_id), message), self._timeout)
        except DeliveryError as exc:
            await self._failed(row, exc.reason, exc.recoverable, exc.retry_after)
        except TimeoutError:  # an expected outage: one line, no traceback; retried with backoff
            log.warning("notifier %s: no answer within %g s on %s; will retry", notifier.name,
                        self._timeout, row.key)
            await self._failed(row, f"TimeoutError: no answer within {self._timeout:g} s", True,
                               None)
        except Exception as exc:
            log.exception("notifier %s failed on %s", notifier.name, row.key)
            await self._failed(row, f"{type(exc).__name__}: {exc}", True, None)
        else:
            if self._journal is not None:
                self._journal.record(row.key, receipt.message_id)
            await self._record_sent(row, receipt.message_id)

    async def _reconcile_journal(self, rewrite: bool = False,
                                 older_than: timedelta = timedelta(0)) -> None:
        """Mark sent the rows the journal says a platform accepted but the database missed
        (while running: only rows whose own write has had `older_than` to happen)."""
        if self._journal is None:
            return
        acked = self._journal.unsettled(older_than.total_seconds())
        if acked:
            async with self._sessions() as session, session.begin():
                done = await outbox.mark_acknowledged(session, acked, self._clock())
            if done:
                log.warning("outbox: %d sends accepted before a crash or a failed write are "
                            "recorded from the journal, not repeated", len(done))
        # Keys not updated are already recorded (or gone): nothing to keep for them either.
        self._journal.settle(list(acked), rewrite=rewrite)

    async def _record_sent(self, row: Claimed, message_id: str | None) -> None:
        """Mark a delivered row sent, retrying briefly: the send happened, so losing this write
        (a locked database) would leave the row 'sending' and resend it after a restart (unless
        the journal has it)."""
        for attempt in range(MARK_SENT_ATTEMPTS):
            try:
                async with self._sessions() as session, session.begin():
                    await outbox.mark_sent(session, row.id, self._clock(), message_id)
                if self._journal is not None:
                    self._journal.settle([row.key])
                return
            except Exception:
                if attempt == MARK_SENT_ATTEMPTS - 1:
                    log.exception("outbox: could not record %s as sent; it stays 'sending' and "
                                  "is requeued after %s", row.key, STALE_SENDING)
                    return
                await asyncio.sleep(0.5 * 2 ** attempt)

    async def _image_for(self, row: Claimed) -> bytes | None:
        """The row's image via the cache, or None (a failed image never blocks the text)."""
        image = row.payload.get("image")
        if not image or self._images is None:
            return None
        try:
            return await self._images.get(str(image["key"]))
        except Exception:
            log.exception("image %s unavailable; sending %s without it", image["key"], row.key)
            return None

    async def _failed(self, row: Claimed, reason: str, recoverable: bool,
                      retry_after: float | None) -> None:
        """Retry later, give up, or give up and pause the chat."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            if not recoverable:
                log.warning("delivery %s failed permanently (%s); pausing chat %s:%s",
                            row.key, reason, row.platform, row.chat_id)
                await outbox.mark_failed(session, row.id, reason)
                await pause_chat(session, row.chat_pk, reason)
            elif row.attempts >= self._max_attempts:
                log.warning("delivery %s gave up after %d attempts: %s", row.key, row.attempts,
                            reason)
                await outbox.mark_failed(session, row.id, reason)
            else:
                delay = backoff(row.attempts, self._base, self._cap)
                if retry_after is not None:
                    delay = max(delay, timedelta(seconds=retry_after))
                await outbox.retry_later(session, row.id, now, delay, reason)
