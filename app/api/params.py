"""Validators of query parameters shared by the routes: integers written in ASCII digits
only, and a counterparty id that must be well formed.

Each goes last in a parameter's `Annotated`, after its `Query(...)`: the bounds then stay
in the OpenAPI schema as `minimum`, `maximum` and `maxLength`."""

from __future__ import annotations

import re

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from app.domain.ids import parse_counterparty_id

_ASCII_INTEGER = re.compile(r"-?[0-9]+")


def _ascii_integer(value: object) -> object:
    # Python's int() (and pydantic's lax mode with it) reads "1_000", "١٢" (Arabic-Indic
    # digits) and " 12 " as numbers: a question read differently from how it was written.
    if isinstance(value, str) and not _ASCII_INTEGER.fullmatch(value):
        raise PydanticCustomError(
            "ascii_integer", "must be an integer written with the digits 0-9 only"
        )
    return value


def _well_formed_id(value: str | None) -> str | None:
    if value is not None and parse_counterparty_id(value) is None:
        raise PydanticCustomError(
            "counterparty_id",
            "not a counterparty id: `finsync:<digits>` or `finqware:<consent key>`",
        )
    return value


ASCII_INTEGER = BeforeValidator(_ascii_integer)
WELL_FORMED_ID = AfterValidator(_well_formed_id)
