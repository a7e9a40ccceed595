"""Changes as they happen: the events hub behind `GET /events` (server-sent events).

The hub owns the process's subscribers (at most `max_subscribers`, each with a bounded queue)
and turns what the history recorder stores into events:
- `positions`: an observation that changed figures (`source`, `version`, `fetched_at`,
  `changed_accounts`, `totals_delta` per currency as exact decimal strings);
- `source`: an observation whose status or error differs from the previous one the hub (or a
  replay) knows of for that connection (unknown counts as different);
- `consent`: a bank consent in its last 14 days (the rule of the `consent_expiring`
  warning), once a day, and to each new stream at once;
- `reset`: what the stream missed can no longer be told: refetch everything.

Ids are stream positions: an event's `id` is the `seq` of the last observation the stream
has delivered in full, so reconnecting with it as `Last-Event-ID` replays every observation
after it from history. A `positions` event's id is its observation's `seq`; a `source` event
followed by the `positions` event of the same observation carries `seq - 1` (a client that
drops between the two is replayed both); `consent` and `reset` events carry the position the
stream is at. Consent events are not kept in history: a stream gets the current ones at once.

Across replicas (Redis): the replica that wrote an observation publishes it (after the
write) on one channel; every hub delivers what it hears, and what it wrote itself, once per
`seq`. A subscriber that cannot keep up (its queue full) is sent `reset` and closed: nothing
is buffered without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from app.domain.observations import Observation
from app.services.history import STORE_ERRORS
from app.services.shared import PREFIX, SharedDataError, SharedTierUnavailableError
from app.services.treasury import CONSENT_EXPIRY_NOTICE, Connection, FinqwareConnection

if TYPE_CHECKING:
    from app.services.shared import RedisTier

logger = logging.getLogger(__name__)

CHANNEL = f"{PREFIX}:events"
# Observations replayed to one reconnecting stream at most; further behind, it is reset.
MAX_REPLAY = 10_000
# Observations asked of history per read while replaying.
REPLAY_PAGE = 500
# Seqs remembered to deliver each observation once (heard from Redis and written here).
_SEEN = 10_000
# How often the hub looks whether a consent entered a new day of its notice.
CONSENT_CHECK_SECONDS = 600.0
# How long closing waits for the last publishes to the other replicas.
PUBLISH_GRACE_SECONDS = 2.0
# Between two attempts to (re)subscribe to the Redis channel.
_RESUBSCRIBE_SECONDS = 2.0

HEARTBEAT = b": keep-alive\n\n"


class ObservationLog(Protocol):
    """What the events need of history (`app.services.history`'s recorder)."""

    def add_listener(self, listener: Callable[[Observation], None]) -> None:
        """`listener` is called with each observation once it is durably written."""

    async def observations_after(self, seq: int, *, limit: int) -> list[Observation]: ...

    async def latest_seq(self) -> int | None: ...

    async def first_seq(self) -> int | None: ...


class TooManySubscribersError(Exception):
    """The process already holds `TESORO_EVENTS_MAX_SUBSCRIBERS` event streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this replica already holds {limit} event streams; try again later")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event; `id` None is filled with the stream's position when sent."""

    type: str
    data: dict[str, Any]
    id: int | None = None

    def encode(self, position: int) -> bytes:
        data = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        ident = position if self.id is None else self.id
        return f"id: {ident}\nevent: {self.type}\ndata: {data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Change:
    """What the events need of one observation: also what replicas publish to each other."""

    seq: int
    source: str
    version: str
    fetched_at: str | None
    status: str
    error_code: str | None
    error_message: str | None
    changed_accounts: tuple[str, ...]
    totals_delta: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, observation: Observation) -> Change:
        return cls(
            seq=observation.seq,
            source=observation.source,
            version=observation.version,
            fetched_at=_moment(observation.fetched_at),
            status=observation.status,
            error_code=observation.error_code,
            error_message=observation.error_message,
            changed_accounts=tuple(
                dict.fromkeys(change.account_id for change in observation.changes)
            ),
            totals_delta=tuple(
                (currency, _money(amount)) for currency, amount in observation.totals_delta
            ),
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "seq": self.seq,
                "source": self.source,
                "version": self.version,
                "fetched_at": self.fetched_at,
                "status": self.status,
                "error_code": self.error_code,
                "error_message": self.error_message,
                "changed_accounts": list(self.changed_accounts),
                "totals_delta": [list(pair) for pair in self.totals_delta],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Change:
        data = json.loads(raw)
        return cls(
            seq=int(data["seq"]),
            source=str(data["source"]),
            version=str(data["version"]),
            fetched_at=None if data["fetched_at"] is None else str(data["fetched_at"]),
            status=str(data["status"]),
            error_code=None if data["error_code"] is None else str(data["error_code"]),
            error_message=None if data["error_message"] is None else str(data["error_message"]),
            changed_accounts=tuple(str(account) for account in data["changed_accounts"]),
            totals_delta=tuple((str(c), str(Decimal(str(a)))) for c, a in data["totals_delta"]),
        )

    @property
    def state(self) -> tuple[str, str | None, str | None]:
        return (self.status, self.error_code, self.error_message)


def _money(amount: Decimal) -> str:
    # Fixed-point always, as every amount tesoro writes (never "1E+2").
    return format(amount, "f")


def _moment(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def events_of(change: Change, previous: tuple[str, str | None, str | None] | None) -> list[Event]:
    """The events one observation makes, given its connection's previous known state."""
    events: list[Event] = []
    figures = bool(change.changed_accounts) or bool(change.totals_delta)
    # A state not known before (the first this hub or replay sees of the connection) is said:
    # it may repeat one a client has, never miss one.
    if previous != change.state:
        error = (
            None
            if change.error_code is None
            else {"code": change.error_code, "message": change.error_message or ""}
        )
        events.append(
            Event(
                "source",
                {
                    "source": change.source,
                    "status": change.status,
                    "error": error,
                    "fetched_at": change.fetched_at,
                },
                # Followed by this observation's positions: a client that drops between the
                # two must be replayed from before this observation.
                change.seq - 1 if figures else change.seq,
            )
        )
    if figures:
        events.append(
            Event(
                "positions",
                {
                    "source": change.source,
                    "version": change.version,
                    "fetched_at": change.fetched_at,
                    "changed_accounts": list(change.changed_accounts),
                    "totals_delta": dict(change.totals_delta),
                },
                change.seq,
            )
        )
    return events


def reset_event(reason: str) -> Event:
    return Event("reset", {"reason": reason})


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one observation (seq) or one consent check (seq None) sends to a stream."""

    seq: int | None
    events: tuple[Event, ...]


_OVERFLOW = _Batch(None, ())


@dataclass(eq=False)
class Subscriber:
    """One open stream: its bounded queue, and whether it fell behind (then it is reset)."""

    queue: asyncio.Queue[_Batch]
    overflowed: bool = False

    def offer(self, batch: _Batch) -> bool:
        """Queues `batch`; False when the queue was full (the stream is then reset and
        closed: what it holds is dropped at once, never kept for a reader that is not
        reading)."""
        if self.overflowed:
            return True
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_OVERFLOW)
            return False
        return True


@dataclass
class EventMetrics:
    """Hooks to the metrics (app.metrics), so the hub does not depend on Prometheus."""

    subscribers: Callable[[int], None] = lambda count: None
    sent: Callable[[str], None] = lambda kind: None
    reset: Callable[[str], None] = lambda reason: None
    refused: Callable[[], None] = lambda: None


@dataclass
class EventHub:
    """This process's event streams, fed by history (and, with Redis, by the other replicas)."""

    log: ObservationLog | None
    connections: Sequence[Connection] = ()
    shared: RedisTier | None = None
    max_subscribers: int = 1000
    queue_size: int = 256
    heartbeat_seconds: float = 15.0
    metrics: EventMetrics = field(default_factory=EventMetrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    consent_check_seconds: float = CONSENT_CHECK_SECONDS

    _subscribers: set[Subscriber] = field(default_factory=set, init=False)
    _seen: set[int] = field(default_factory=set, init=False)
    _seen_order: deque[int] = field(default_factory=deque, init=False)
    _states: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict, init=False)
    _consent_days: dict[str, int] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _publishing: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _position: int = field(default=0, init=False)

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.log is not None:
            self.log.add_listener(self.observed)
        # Consents already in their notice are told to each new stream at once: the first
        # daily event is for the next day.
        self._consent_days.update(self._consent_days_now())
        self._spawn(self._check_consents())
        if self.shared is not None:
            self._spawn(self._listen())

    async def close(self) -> None:
        # What history wrote last (its final flush comes just before) still reaches the other
        # replicas: publishes in flight are awaited, each bounded by the Redis time-out.
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=PUBLISH_GRACE_SECONDS)
        for task in [*self._tasks, *self._publishing]:
            task.cancel()
        for task in [*self._tasks, *self._publishing]:
            with suppress(asyncio.CancelledError):
                await task

    def _spawn(
        self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]] | None = None
    ) -> None:
        held = self._tasks if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(work)
        held.add(task)
        task.add_done_callback(held.discard)

    # --- what happens -------------------------------------------------------------------

    def observed(self, observation: Observation) -> None:
        """The recorder's listener: an observation durably written by this replica."""
        change = Change.of(observation)
        self._deliver(change)
        if self.shared is not None:
            self._spawn(self._publish(change), self._publishing)

    async def _publish(self, change: Change) -> None:
        assert self.shared is not None
        payload = change.to_json()
        try:
            await self.shared.run(lambda redis: redis.publish(CHANNEL, payload))
        except (SharedTierUnavailableError, SharedDataError):
            # This replica's streams have it; the others' get it by replay on reconnect.
            logger.warning("observation %d not published to the other replicas", change.seq)

    def _deliver(self, change: Change) -> None:
        if change.seq in self._seen:
            return
        self._seen.add(change.seq)
        self._seen_order.append(change.seq)
        if len(self._seen_order) > _SEEN:
            self._seen.discard(self._seen_order.popleft())
        self._position = max(self._position, change.seq)
        events = events_of(change, self._states.get(change.source))
        self._states[change.source] = change.state
        if events:
            self._broadcast(_Batch(change.seq, tuple(events)))

    def _broadcast(self, batch: _Batch) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.offer(batch):
                logger.info("an event stream could not keep up: reset and closed")

    async def _listen(self) -> None:
        """Observations the other replicas wrote, heard on the Redis channel; subscribed
        again after Redis trouble."""
        assert self.shared is not None
        listening = True  # logged when it changes, not at each attempt
        while True:
            pubsub = self.shared.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                if not listening:
                    logger.info("events channel subscribed again: the other replicas' events flow")
                    listening = True
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        change = Change.from_json(message["data"])
                    except (ValueError, KeyError, TypeError, ArithmeticError):
                        logger.warning("unreadable message on %s ignored", CHANNEL)
                        continue
                    self._deliver(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis trouble: the other replicas' events wait
                if listening:
                    logger.warning(
                        "events channel unavailable (%s); the other replicas' events reach "
                        "this replica's streams only by replay until it is back (tried every "
                        "%g s)",
                        type(exc).__name__,
                        _RESUBSCRIBE_SECONDS,
                    )
                    listening = False
            finally:
                # Bounded: closing a subscription to a Redis that went away must never hold
                # up a cancelled listener (a test run once hung here at the loop's close).
                with suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
            await asyncio.sleep(_RESUBSCRIBE_SECONDS)

    # --- consents -----------------------------------------------------------------------

    def _consent_days_now(self) -> dict[str, int]:
        """Each consent in its notice, and which day of it this is (0 on the first)."""
        now = self.clock()
        days: dict[str, int] = {}
        for connection in self.connections:
            if not isinstance(connection, FinqwareConnection):
                continue
            expires_at = connection.consent.expires_at
            if expires_at is None or not connection.notices(now):
                continue
            days[connection.key] = (now - (expires_at - CONSENT_EXPIRY_NOTICE)) // timedelta(days=1)
        return days

    def consent_events(self) -> list[Event]:
        """One `consent` event per consent in its notice, as of now."""
        now = self.clock()
        events = []
        for connection in self.connections:
            if not isinstance(connection, FinqwareConnection):
                continue
            notices = connection.notices(now)
            expires_at = connection.consent.expires_at
            if not notices or expires_at is None:
                continue
            left = expires_at - now
            events.append(
                Event(
                    "consent",
                    {
                        "source": connection.key,
                        "expires_at": _moment(expires_at),
                        "expired": left <= timedelta(0),
                        "days_left": max(0, left.days),
                        "message": notices[0].message,
                    },
                )
            )
        return events

    def check_consents(self) -> None:
        """Sends the consents that entered a new day of their notice since the last check."""
        days = self._consent_days_now()
        due = {key for key, day in days.items() if self._consent_days.get(key) != day}
        self._consent_days = days
        events = tuple(event for event in self.consent_events() if event.data["source"] in due)
        if events:
            self._broadcast(_Batch(None, events))

    async def _check_consents(self) -> None:
        while True:
            await asyncio.sleep(self.consent_check_seconds)
            self.check_consents()

    # --- streams ------------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def check_room(self) -> None:
        """TooManySubscribersError when one more stream would pass the limit."""
        if len(self._subscribers) >= self.max_subscribers:
            self.metrics.refused()
            raise TooManySubscribersError(self.max_subscribers)

    def subscribe(self) -> Subscriber:
        self.check_room()
        subscriber = Subscriber(asyncio.Queue(maxsize=self.queue_size))
        self._subscribers.add(subscriber)
        self.metrics.subscribers(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self.metrics.subscribers(len(self._subscribers))

    async def stream(
        self, subscriber: Subscriber, last_event_id: str | None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of one stream: a reset or the replay the `Last-Event-ID` asks for, the
        consents in their notice, then each event as it happens, with a comment line when
        nothing happened for `heartbeat_seconds`. Ends after a `reset` for falling behind."""
        replayed: set[int] = set()
        position, replay, reason = await self._start(last_event_id)
        if reason is not None:
            yield self._sent(reset_event(reason), position)
            self.metrics.reset(reason)
        # What the replay knows of each connection's state: nothing before its first.
        states: dict[str, tuple[str, str | None, str | None]] = {}
        for change in replay:
            for event in events_of(change, states.get(change.source)):
                yield self._sent(event, position)
            states[change.source] = change.state
            replayed.add(change.seq)
            position = max(position, change.seq)
        for event in self.consent_events():
            yield self._sent(event, position)
        while True:
            try:
                batch = await asyncio.wait_for(subscriber.queue.get(), self.heartbeat_seconds)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if batch is _OVERFLOW:
                yield self._sent(reset_event("slow_consumer"), position)
                self.metrics.reset("slow_consumer")
                return
            if batch.seq is not None:
                if batch.seq in replayed:
                    continue
                position = max(position, batch.seq)
            for event in batch.events:
                yield self._sent(event, position)

    def _sent(self, event: Event, position: int) -> bytes:
        self.metrics.sent(event.type)
        return event.encode(position)

    async def _start(self, last_event_id: str | None) -> tuple[int, list[Change], str | None]:
        """Where a stream starts: its position, what it replays, and why it is reset (if).
        The store down never ends a stream: it starts where this hub is, reset if it asked
        for a replay."""
        try:
            return await self._plan(last_event_id)
        except STORE_ERRORS as exc:
            logger.warning("events: history unreadable (%s) as a stream starts", type(exc).__name__)
            return self._position, [], None if last_event_id is None else "history_unavailable"

    async def _plan(self, last_event_id: str | None) -> tuple[int, list[Change], str | None]:
        latest = await self._latest()
        if last_event_id is None:
            return latest, [], None
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            return latest, [], "unknown_id"
        after = int(text)
        if self.log is None:
            return latest, [], "history_off"
        first = await self.log.first_seq()
        if after > latest:
            return latest, [], "unknown_id"
        if after == latest:
            return latest, [], None
        if first is None or after < first - 1:
            return latest, [], "before_retention"
        replay: list[Change] = []
        while True:
            page = await self.log.observations_after(after, limit=REPLAY_PAGE)
            if not page:
                return latest, replay, None
            replay.extend(Change.of(observation) for observation in page)
            after = page[-1].seq
            if len(replay) > MAX_REPLAY:
                return latest, [], "too_far_behind"

    async def _latest(self) -> int:
        latest = None if self.log is None else await self.log.latest_seq()
        return max(self._position, latest or 0)
