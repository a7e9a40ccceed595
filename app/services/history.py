"""Recording history: each new data state or status of a connection, as its cache learns it,
becomes one observation (only the accounts that changed), written off the request path.

The caches tell `HistoryRecorder.on_value` of every value stored and every failed load; that
call only queues (bounded: the oldest is dropped when full, counted, and the gap recorded).
One writer task drains the queue, diffs each value against the connection's state as the
store holds it (another replica may have written since), writes the observation (once across
replicas: insert-or-ignore on its source and version) and tells the listeners (the events
service) with its `seq`. The store slow or down never delays an answer: the writer retries
with a back-off while the queue holds what came meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
from pydantic import AwareDatetime, TypeAdapter
from sqlalchemy.exc import SQLAlchemyError

from app.cache import Cached
from app.domain import snapshot
from app.domain.interpret import Interpreted
from app.domain.models import CurrencyTotal, Position
from app.domain.observations import AccountChange, AccountFigures, Observation
from app.domain.positions import filter_positions, positions_of, totals
from app.memory import release_free_memory
from app.store.history import (
    AccountKey,
    AccountRow,
    ConnectionState,
    HeldAccount,
    HistoryStore,
    NewObservation,
    StoredObservation,
    observation_of,
)

logger = logging.getLogger(__name__)

# A position's own load time (and every stamp equal to it) is stored as this, so an account
# whose figures did not change between two loads is not written again, and a past answer is
# rebuilt with the load time of the observation it is read from.
LOADED_AT = "@fetched_at"
_LOADED_AT_JSON = json.dumps(LOADED_AT)
_MOMENT = TypeAdapter(AwareDatetime)

Listener = Callable[[Observation], None]

# An observation of at least this many accounts is followed by `release_free_memory`.
_RELEASE_AFTER_ROWS = 1000

# Errors of the store the writer waits out (a database down, a disk full, a lost connection).
STORE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, ConnectionError)
_PING_ERRORS: tuple[type[Exception], ...] = (*STORE_ERRORS, TimeoutError)


def utcnow() -> datetime:
    return datetime.now(UTC)


def moment_json(moment: datetime) -> str:
    """An instant as the public models write it."""
    written: str = _MOMENT.dump_python(moment, mode="json")
    return written


def position_record(position: snapshot.Position) -> str:
    """The position as stored: its JSON (the public model's, byte for byte) with its load
    time (every stamp equal to it, the position's own `fetched_at` included) written as a
    placeholder."""
    loaded = json.dumps(moment_json(position.fetched_at))
    return snapshot.encode_json(position).decode().replace(loaded, _LOADED_AT_JSON)


def position_from_record(record: str, fetched_at: datetime) -> Position:
    """A stored position as it was served when loaded at `fetched_at`."""
    return Position.model_validate_json(
        record.replace(_LOADED_AT_JSON, json.dumps(moment_json(fetched_at)))
    )


def record_digest(record: str) -> bytes:
    """What tells one stored position JSON from another (16 bytes, where the JSON is 500-odd
    an account at 50,000 clients): the recorder keeps this of each account, not the JSON."""
    return hashlib.blake2b(record.encode(), digest_size=16).digest()


class KnownAccount(msgspec.Struct, frozen=True, gc=False):
    """An account as the recorder last wrote or read it: the observation, its figures (the
    `before` of its next change) and its position JSON's digest (whether it changed).
    Untracked by the garbage collector, as its figures are (one per account, held for as
    long as the process runs)."""

    seq: int
    figures: AccountFigures
    digest: bytes

    @classmethod
    def of(cls, held: HeldAccount) -> KnownAccount:
        return cls(held.seq, held.figures, record_digest(held.position))


def figures_of(position: snapshot.Position | Position) -> AccountFigures:
    return AccountFigures(
        counterparty_id=position.counterparty_id,
        account_id=position.account_id,
        currency=position.currency,
        amount=position.amount,
        available=position.available,
        credit_line=position.credit_line,
        # The enumeration's own text (one object for every account): str() of a member
        # makes a new string each time, two for each of 70,000 accounts held.
        meaning=position.meaning.value,
        side=position.side.value,
        as_of=position.as_of,
    )


@dataclass(frozen=True, slots=True)
class _Diff:
    rows: tuple[AccountRow, ...]
    held: dict[AccountKey, KnownAccount]
    totals: tuple[CurrencyTotal, ...]
    warnings: str


def _written(
    new: NewObservation, seq: int, held: dict[AccountKey, KnownAccount], announced: bool
) -> tuple[dict[AccountKey, KnownAccount], Observation | None]:
    """After `new` was stored as `seq`: the accounts held since (the new ones stamped with
    `seq`), and the observation to tell the listeners (None when nobody listens)."""
    accounts = {
        key: KnownAccount(seq, account.figures, account.digest) if account.seq == 0 else account
        for key, account in held.items()
    }
    if not announced:
        return accounts, None
    changes = tuple(
        AccountChange(row.counterparty_id, row.account_id, row.currency, row.before, row.figures)
        for row in new.accounts
        if row.figures_changed
    )
    stored = StoredObservation(
        seq=seq,
        source=new.source,
        version=new.version,
        at=new.at,
        fetched_at=new.fetched_at,
        observed_at=new.observed_at,
        status=new.status,
        error_code=new.error_code,
        error_message=new.error_message,
        data=new.data,
        warnings=new.warnings,
    )
    return accounts, observation_of(stored, changes)


def diff(held: dict[AccountKey, KnownAccount], value: Interpreted) -> _Diff:
    """What changed from the accounts `held` to the connection's new `value`."""
    rows: list[AccountRow] = []
    now: dict[AccountKey, KnownAccount] = {}
    positions = positions_of(value.counterparties)
    for position in positions:
        key = (position.counterparty_id, position.account_id, position.currency)
        if key in now:
            continue  # one account and currency listed twice: the first counts, as answered
        record = position_record(position)
        digest = record_digest(record)
        before = held.get(key)
        if before is not None and before.digest == digest:
            now[key] = before
            continue
        figures = figures_of(position)
        now[key] = KnownAccount(0, figures, digest)
        rows.append(
            AccountRow(
                *key,
                figures=figures,
                position=record,
                before=None if before is None else before.figures,
                figures_changed=before is None or before.figures != figures,
                listed=(str(position.kind), position.counterparty_name, position.account_name),
            )
        )
    for key, gone in held.items():
        if key not in now:
            rows.append(
                AccountRow(
                    *key, figures=None, position=None, before=gone.figures, figures_changed=True
                )
            )
    warnings = json.dumps(
        [warning.model_dump(mode="json") for warning in value.warnings], separators=(",", ":")
    )
    return _Diff(tuple(rows), now, tuple(totals(filter_positions(positions))), warnings)


@dataclass(slots=True)
class _Pending:
    """What a cache told: a value stored (`failure` None) or a failed load."""

    key: str
    cached: Cached[Interpreted] | None
    failure: Exception | None
    seen_at: datetime


@dataclass(slots=True)
class _Known:
    """A connection as this replica last wrote or read it from the store."""

    seq: int | None
    version: str | None
    status: str | None
    error_code: str | None
    accounts: dict[AccountKey, KnownAccount] = field(default_factory=dict)

    @classmethod
    def of(cls, state: ConnectionState | None) -> _Known:
        if state is None:
            return cls(None, None, None, None)
        data_version = None if state.data is None else state.data.version
        return cls(
            state.last.seq,
            data_version,
            state.last.status,
            state.last.error_code,
            {key: KnownAccount.of(held) for key, held in state.accounts.items()},
        )


@dataclass(slots=True)
class _Dropped:
    started_at: datetime
    ended_at: datetime
    count: int


class HistoryRecorder:
    """Observations from the caches to the store, off the request path."""

    def __init__(
        self,
        store: HistoryStore,
        *,
        shared_versions: bool = False,
        queue_size: int = 1000,
        retention_days: int = 400,
        observe: Callable[[str, float], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        heartbeat_seconds: float = 60.0,
        prune_seconds: float = 6 * 3600.0,
        shown_as: str = "",
        upgrade_first: bool = False,
    ) -> None:
        self.store = store
        # Migrations that could not be applied at start (the store was down) come first.
        self._upgrade_first = upgrade_first
        # Without a shared tier each process numbers its loads from 1: the process's id makes
        # them unique in the store; with one, replicas share the numbers and so write once.
        self.run_id = uuid.uuid4().hex
        self._version_prefix = "" if shared_versions else f"{self.run_id}:"
        self._queue: deque[_Pending] = deque()
        self._queue_size = queue_size
        self._retention = timedelta(days=retention_days)
        self._observe = observe
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._max_retry_seconds = max_retry_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._prune_seconds = prune_seconds
        self._shown_as = shown_as
        self._listeners: list[Listener] = []
        self._known: dict[str, _Known] = {}
        self._dropped: dict[str, _Dropped] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._started_at = clock()
        # Whether the last write (or ping) reached the store.
        self.available = True

    # What the events service uses

    def add_listener(self, listener: Listener) -> None:
        """`listener` is told of every observation this replica stored, after it is durable."""
        self._listeners.append(listener)

    async def observations_after(self, seq: int, *, limit: int) -> list[Observation]:
        return await self.store.observations_after(seq, limit=limit)

    async def latest_seq(self) -> int | None:
        return await self.store.latest_seq()

    async def first_seq(self) -> int | None:
        return await self.store.first_seq()

    # The caches' hook

    def on_value(
        self, key: str, cached: Cached[Interpreted] | None, failure: Exception | None
    ) -> None:
        """A cache stored a value for `key` (failure None) or a load of it failed: queued."""
        if len(self._queue) >= self._queue_size:
            self._drop(self._queue.popleft())
        self._queue.append(_Pending(key, cached, failure, self._clock()))
        self._tell("queue", len(self._queue))
        self._idle.clear()
        self._wake.set()

    def _drop(self, dropped: _Pending) -> None:
        gap = self._dropped.get(dropped.key)
        if gap is None:
            self._dropped[dropped.key] = _Dropped(dropped.seen_at, dropped.seen_at, 1)
        else:
            gap.ended_at = max(gap.ended_at, dropped.seen_at)
            gap.count += 1
        self._tell("dropped")

    def _tell(self, event: str, value: float = 1.0) -> None:
        if self._observe is not None:
            self._observe(event, value)

    # Running

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_forever()),
            loop.create_task(self._keep_house()),
        ]

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Write what is queued (for a while), then stop; the run's end is recorded."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), drain_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(*STORE_ERRORS):
            await self.store.run_stopped(self.run_id, self._clock())

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or dropped)."""
        await self._idle.wait()

    async def ping(self, timeout_seconds: float = 2.0) -> bool:
        """Whether the store answers now (bounded: a probe never hangs on it)."""
        try:
            await asyncio.wait_for(self.store.ping(), timeout_seconds)
        except _PING_ERRORS:
            return False
        return True

    async def _keep_house(self) -> None:
        """The run's heartbeat (history knows when tesoro was running) and retention."""
        last_prune: datetime | None = None
        while True:
            now = self._clock()
            try:
                await self.store.run_seen(self.run_id, self._started_at, now)
                if last_prune is None or now - last_prune >= timedelta(seconds=self._prune_seconds):
                    last_prune = now
                    deleted = await self.store.prune(now - self._retention)
                    if deleted:
                        logger.info("history: %d observations past retention deleted", deleted)
            except STORE_ERRORS as exc:
                self._unavailable(exc)
            await asyncio.sleep(self._heartbeat_seconds)

    def _unavailable(self, exc: Exception) -> None:
        self._tell("error")
        self._tell("up", 0)
        if self.available:
            # The driver's message never holds the URL's password; the URL is shown redacted.
            logger.warning(
                "history store %s unavailable: %s; observations are queued (answers are "
                "unaffected)",
                self._shown_as,
                type(exc).__name__,
            )
        self.available = False

    async def _write_forever(self) -> None:
        delay = self._retry_seconds
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            pending = self._queue.popleft()
            self._tell("queue", len(self._queue))
            try:
                if self._upgrade_first:
                    await self.store.upgrade()
                    self._upgrade_first = False
                await self._record_gaps()
                await self._write(pending)
            except STORE_ERRORS as exc:
                # Put back, unless the queue filled meanwhile (then it is the oldest: dropped).
                if len(self._queue) >= self._queue_size:
                    self._drop(pending)
                else:
                    self._queue.appendleft(pending)
                self._known.pop(pending.key, None)
                self._unavailable(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_seconds)
                continue
            except Exception:
                # A bug of tesoro's must not stop history for good: said loudly, item skipped.
                logger.exception("history: an observation of %s could not be recorded", pending.key)
                continue
            delay = self._retry_seconds
            if not self.available:
                logger.info("history store %s available again", self._shown_as)
            self.available = True
            self._tell("up", 1)

    async def _record_gaps(self) -> None:
        while self._dropped:
            key, gap = next(iter(self._dropped.items()))
            await self.store.record_gap(
                key, gap.started_at, gap.ended_at, "store_unavailable", gap.count
            )
            del self._dropped[key]

    async def _state(self, key: str) -> _Known:
        """The connection as the store holds it: what this replica knows, unless another
        replica wrote since."""
        known = self._known.get(key)
        last = await self.store.last_seq(key)
        if known is None or known.seq != last:
            known = _Known.of(await self.store.current(key))
            self._known[key] = known
        return known

    async def _write(self, pending: _Pending) -> None:
        known = await self._state(pending.key)
        new, held = await self._observation(pending, known)
        if new is None:
            self._tell("unchanged")
            return
        seq = await self.store.write(new)
        if seq is None:
            # Another replica wrote this one: read its state again before the next.
            self._known.pop(pending.key, None)
            self._tell("duplicate")
            return
        self._tell("written")
        self._tell("lag", max(0.0, (self._clock() - pending.seen_at).total_seconds()))
        # Both walk every account the observation holds (all of them at a connection's first
        # one: 70,000 at 50,000 clients, half a second of the interpreter): in a worker
        # thread, as the diff is, so the event loop keeps answering meanwhile.
        accounts, observation = await asyncio.to_thread(
            _written, new, seq, held, bool(self._listeners)
        )
        known.seq = seq
        known.status, known.error_code = new.status, new.error_code
        if new.data:
            known.version = new.version
            known.accounts = accounts
        if observation is not None:
            self._announce(observation)
        if len(new.accounts) >= _RELEASE_AFTER_ROWS:
            # The rows just written, each with its position JSON, go with `new`: their memory
            # is given back to the system rather than kept as the process's high-water mark.
            del new
            await asyncio.to_thread(release_free_memory)

    async def _observation(
        self, pending: _Pending, known: _Known
    ) -> tuple[NewObservation | None, dict[AccountKey, KnownAccount]]:
        cached = pending.cached
        if pending.failure is None and cached is not None:
            version = f"{self._version_prefix}{cached.version}"
            if version == known.version:
                return None, known.accounts
            found = await asyncio.to_thread(diff, known.accounts, cached.value)
            return (
                NewObservation(
                    source=pending.key,
                    version=version,
                    at=cached.fetched_at,
                    fetched_at=cached.fetched_at,
                    observed_at=pending.seen_at,
                    status="ok",
                    error_code=None,
                    error_message=None,
                    data=True,
                    warnings=found.warnings,
                    accounts=found.rows,
                    # Totals are written when they may have changed: with changed accounts.
                    totals=found.totals if found.rows or known.seq is None else None,
                ),
                found.held,
            )
        failure = pending.failure
        status = "unavailable" if cached is None else "stale"
        code = str(getattr(failure, "code", "upstream_error"))
        if (status, code) == (known.status, known.error_code):
            return None, known.accounts
        message = getattr(failure, "message", None)
        held_version = (
            f"{self._version_prefix}{cached.version}" if cached is not None else known.version
        )
        version = f"{held_version or '-'}:{status}:{code}"
        if cached is None:
            # Nothing held: the minute tells two outages apart (and is the same on replicas).
            version += pending.seen_at.strftime(":%Y%m%dT%H%M")
        return (
            NewObservation(
                source=pending.key,
                version=version,
                at=pending.seen_at,
                fetched_at=None if cached is None else cached.fetched_at,
                observed_at=pending.seen_at,
                status=status,
                error_code=code,
                error_message=None if message is None else str(message)[:500],
                data=False,
                warnings=None,
                accounts=(),
                totals=None,
            ),
            known.accounts,
        )

    def _announce(self, observation: Observation) -> None:
        for listener in self._listeners:
            try:
                listener(observation)
            except Exception:
                logger.exception("history: a listener failed on observation %d", observation.seq)
