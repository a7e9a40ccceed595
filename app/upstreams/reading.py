"""Tolerant reading of upstream records: optional fields that cannot be read cost only themselves.

The rule of both adapters (tolerant reader, strict interpreter):
- a field *without* a default is required: it validates hard, and a record where it fails is
  rejected on its own (`parse_each`), never the whole answer;
- a field *with* a default is optional: when what was sent cannot be read it becomes its
  default and is named, with a short quote of what was sent, in the record's `unreadable`;
- only a broken envelope (not JSON, not a list where a list is due) fails a connection.

What may leave an account out is the interpreter's decision, not the reader's: the reader only
says what it could not read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar, get_args, overload

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from app.upstreams.errors import UpstreamBadResponseError

T = TypeVar("T")

# What was sent is quoted this short: a warning is a pointer, not a dump.
QUOTE_CHARS = 40
# Ids and counts fit in 18 digits (FinSync ids are matched as 1 to 18 digits): anything longer
# is broken data, refused before Python builds an arbitrarily large integer from it.
MAX_INT_DIGITS = 18


def quote(value: object) -> str:
    """A short, printable quote of an upstream value."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


@dataclass(frozen=True)
class Unreadable:
    """An optional field that could not be read: its path as the upstream names it, and
    a short quote of what was sent."""

    field: str
    sent: str


class TolerantModel(BaseModel):
    """Base of every wire model: required fields strict, optional fields lenient."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    unreadable: tuple[Unreadable, ...] = ()

    # The value an optional field takes when what was sent cannot be read, where that must
    # differ from its default (absent and unreadable can mean different things).
    UNREADABLE_AS: ClassVar[Mapping[str, Any]] = {}

    @model_validator(mode="wrap")
    @classmethod
    def _tolerate(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        # `unreadable` is ours: an upstream key of that name is never taken as it.
        sent = data
        if "unreadable" in data:
            sent = {key: value for key, value in data.items() if key != "unreadable"}
        try:
            model = handler(sent)
        except ValidationError as exc:
            lenient = _lenient_keys(cls)
            failed: set[str] = set()
            for error in exc.errors(include_url=False):
                location = error["loc"]
                if not location or location[0] not in lenient:
                    raise  # a required field: the record is rejected
                failed.add(str(location[0]))
            kept = {key: value for key, value in sent.items() if key not in failed}
            model = handler(kept)
            own = tuple(Unreadable(key, quote(sent[key])) for key in sorted(failed))
        else:
            own = ()
            failed = set()
        nested = tuple(_nested_unreadable(model))
        if not own and not nested:
            return model
        update: dict[str, Any] = {"unreadable": (*own, *nested)}
        # Some fields say "unreadable" with a value of their own rather than their default.
        update.update({key: cls.UNREADABLE_AS[key] for key in failed if key in cls.UNREADABLE_AS})
        return model.model_copy(update=update)


@cache
def _lenient_keys(model: type[BaseModel]) -> frozenset[str]:
    """The keys, as sent, of a model's optional fields (names and aliases)."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        if info.is_required() or name == "unreadable":
            continue
        keys.add(name)
        if info.alias:
            keys.add(info.alias)
        alias = info.validation_alias
        if isinstance(alias, str):
            keys.add(alias)
        elif isinstance(alias, AliasChoices):
            keys.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(keys)


@cache
def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model that may hold a nested tolerant record."""

    def tolerant(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, TolerantModel):
            return True
        return any(tolerant(arg) for arg in get_args(annotation))

    return tuple(
        name
        for name, info in model.model_fields.items()
        if name != "unreadable" and tolerant(info.annotation)
    )


def _nested_unreadable(model: BaseModel) -> list[Unreadable]:
    """Unreadable fields of nested tolerant records, with their paths prefixed."""
    found: list[Unreadable] = []
    for name in _nested_fields(type(model)):
        value = getattr(model, name)
        if isinstance(value, TolerantModel):
            found.extend(Unreadable(f"{name}.{item.field}", item.sent) for item in value.unreadable)
    return found


@dataclass(frozen=True)
class Rejected:
    """A record of a list that could not be read (a required field, or not an object)."""

    index: int
    reason: str
    sent: Mapping[str, Any] | None
    """The record as sent when it is an object, so what *can* be read of it is not lost."""


class Parsed(Sequence[T]):
    """The records of a list answer that could be read (it reads as their sequence), and
    `rejected`: those that could not."""

    __slots__ = ("records", "rejected")

    def __init__(self, records: list[T], rejected: list[Rejected]) -> None:
        self.records = records
        self.rejected = rejected

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        return self.records[index]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Parsed(records={self.records!r}, rejected={self.rejected!r})"


def parse_each(upstream: str, adapter: TypeAdapter[T], body: Any, what: str) -> Parsed[T]:
    """Validate a list answer record by record; only an answer that is not a list fails."""
    if not isinstance(body, list):
        raise UpstreamBadResponseError(upstream, f"{what} answer is not a list")
    return _each(adapter, body)


def _each(adapter: TypeAdapter[T], body: list[Any]) -> Parsed[T]:
    records: list[T] = []
    rejected: list[Rejected] = []
    for index, item in enumerate(body):
        try:
            records.append(adapter.validate_python(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            rejected.append(
                Rejected(
                    index=index,
                    reason=f"{where}: {first['msg']}",
                    sent=item if isinstance(item, Mapping) else None,
                )
            )
    return Parsed(records, rejected)


def each_of(adapter: TypeAdapter[T]) -> PlainValidator:
    """A validator for a nested list read record by record: null is no records, a value that
    is not a list is unreadable (ValueError), and records that fail are kept as rejected."""

    def read(value: Any) -> Parsed[T]:
        if value is None:
            return Parsed([], [])
        if isinstance(value, Parsed):
            return value
        if not isinstance(value, list):
            raise ValueError("not a list")
        return _each(adapter, value)

    return PlainValidator(read)


# --- lenient scalars ---------------------------------------------------------------------


def _as_utc(value: datetime) -> datetime:
    # Naive times are UTC by both upstreams' convention; the conversion can overflow at the
    # edges of the calendar, which makes the value unreadable rather than an error.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once in UTC") from exc


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            # Python's ISO reader takes offsets as +02:00 or +0200, a space separator and
            # a bare date (midnight), which pydantic's stricter reader does not.
            return _as_utc(datetime.fromisoformat(text))
        except ValueError:
            return text
    if isinstance(value, datetime):
        return _as_utc(value)
    return value


def _date(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            # A timestamp where a date is due: the date as the bank wrote it (its own zone).
            return datetime.fromisoformat(text).date()
        except ValueError:
            return text
    if isinstance(value, datetime):
        return value.date()
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(_as_utc)]
"""A date-time in any ISO 8601 form (offset or not, naive meaning UTC), always aware UTC."""

LenientDate = Annotated[date, BeforeValidator(_date)]
"""A calendar date; a full timestamp counts as the date it was written with."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Text that can be written back out: JSON may carry a lone surrogate (`"\\ud800"`),
    which no UTF-8 answer can encode; it becomes U+FFFD REPLACEMENT CHARACTER."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def _text(value: Any) -> Any:
    # Informational text: a number is shown as written; anything else is not text.
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return value
    # Decoded JSON ints have at most 40 digits (longer ones arrive as Decimal), so str() of
    # them stays within Python's limit; a Decimal prints in exponent form when it is long.
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text)]
"""Informational text: a string, or a number written as text."""


# --- numbers written as text ----------------------------------------------------------------
# Python's int() and Decimal() read far more than an upstream means by a number: "1_000",
# Arabic-Indic or full-width digits, "NaN", ".5". Upstream text becomes a number only through
# these two readers, so anything but plain ASCII notation is unreadable (and the tolerant
# reader's rules say what that costs), never silently a figure.
_ASCII_SPACE = " \t\r\n"
# A sign, ASCII digits, and for a decimal a point with digits on both sides and an exponent
# (JSON writes numbers so, and "1E+2" is how a Decimal prints 100 of scale -2).
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def integer_text(text: str) -> int:
    """An integer written in ASCII digits (an optional sign, surrounding ASCII blanks
    allowed), at most MAX_INT_DIGITS of them; ValueError for anything else."""
    stripped = text.strip(_ASCII_SPACE)
    if not _INTEGER_TEXT.fullmatch(stripped):
        raise ValueError("an integer is written in ASCII digits")
    if len(stripped.lstrip("+-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer has at most {MAX_INT_DIGITS} digits")
    return int(stripped)


def decimal_text(text: str) -> Decimal:
    """A decimal written in ASCII notation: an optional sign, digits, optionally a point
    followed by digits, optionally an exponent (`"12.50"`, `"-3"`, `"1E+2"`); surrounding
    ASCII blanks allowed. ValueError for anything else (`"1_000"`, Arabic-Indic digits,
    `".5"`, `"NaN"`)."""
    stripped = text.strip(_ASCII_SPACE)
    if not _DECIMAL_TEXT.fullmatch(stripped):
        raise ValueError("a decimal is written in ASCII digits")
    return Decimal(stripped)


def _wire_decimal(value: Any) -> Any:
    # A JSON number arrives already exact (Decimal or int); text goes through decimal_text.
    if isinstance(value, bool):
        raise ValueError("a decimal is a number")
    if isinstance(value, str):
        return decimal_text(value)
    return value


WireDecimal = Annotated[Decimal, BeforeValidator(_wire_decimal)]
"""A decimal as an upstream sends it: a JSON number, or text in strict ASCII notation."""


def _bounded_int(value: Any) -> Any:
    # Refused before conversion: int(Decimal("1E+999999999")) would build a billion digits.
    if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() >= MAX_INT_DIGITS):
        raise ValueError(f"an integer has at most {MAX_INT_DIGITS} digits")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
        raise ValueError(f"an integer has at most {MAX_INT_DIGITS} digits")
    if isinstance(value, str):
        return integer_text(value)
    return value


WireInt = Annotated[int, BeforeValidator(_bounded_int)]
"""An integer as an upstream sends it (an id, a count): at most MAX_INT_DIGITS digits, and
as text only in ASCII digits."""


def _identifier(value: Any) -> Any:
    value = _bounded_int(value) if isinstance(value, int | Decimal) else value
    value = _text(value)
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("an id is not blank")
    return value


Identifier = Annotated[str, BeforeValidator(_identifier)]
"""An upstream's id of a record: required, text or a number written as text, never blank."""
