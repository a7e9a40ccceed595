"""Counterparty routes: list, get one, create an external one."""

from __future__ import annotations

import unicodedata
from typing import Annotated

import msgspec
from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.answers import Question
from app.api.caching import (
    CACHED_RESPONSES,
    CONDITIONAL_REQUEST,
    answer_json,
    cached_json,
    gathered_for,
    gathering_again,
)
from app.api.deps import (
    AnswersDep,
    DirectoryDep,
    IdempotencyDep,
    Reader,
    Refresh,
    TreasuryDep,
    Writer,
)
from app.api.errors import problem_responses
from app.api.params import ASCII_INTEGER
from app.domain.counterparties import CounterpartyIndex, normalize_text, paginate
from app.domain.models import (
    CURRENCY_QUERY_PATTERN,
    Counterparty,
    CounterpartyDetail,
    CounterpartyPage,
    Kind,
    Source,
)
from app.domain.names import NAME_PATTERN, clean_name
from app.domain.snapshot import encode_json
from app.services.idempotency import StoredAnswer, fingerprint

router = APIRouter(tags=["counterparties"])


class NewCounterparty(BaseModel):
    """An external counterparty (a FinSync cuenta corriente) to create."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        # Enforced by clean_name, whose 422 names the character; published for clients.
        json_schema_extra={"pattern": NAME_PATTERN},
        description="1 to 100 characters after trimming; not only white space. NFC-normalised. "
        "Control characters and bidirectional embedding, override and isolate characters "
        "(U+202A-U+202E, U+2066-U+2069) are refused, naming the character by code point. "
        "Invisible characters (zero-width space and joiners, soft hyphen, word joiner) are "
        "kept but ignored when names are compared.",
        examples=["ACME Brokers"],
    )
    description: str | None = Field(
        default=None,
        max_length=500,
        description="Free text, up to 500 characters; blank is the same as none.",
        examples=["Preferred FX counterparty"],
    )

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        # InvalidNameError is a ValueError: a 422 whose message names the character.
        return clean_name(value)

    @field_validator("description")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return unicodedata.normalize("NFC", value) if value else None


@router.get(
    "/counterparties",
    name="list_counterparties",
    summary="List counterparties",
    description="Every counterparty from every configured source (FinSync clients and "
    "Finqware bank connections), filtered and paged here, ordered by name then id. Only the "
    "connections the filters need are asked (`source`, `kind=external`). A configured bank "
    "connection is always listed, even when it cannot be read (`status: unavailable`, its "
    "`error`, no accounts). A connection that fails while others answer is reported in "
    "`sources` and the answer is still a 200: `stale` when its last good data is served "
    "(`complete` stays true), `unavailable` when it has none (`complete` is false).",
    response_model=CounterpartyPage,
    response_description="One page of counterparties, with the state of every connection.",
    responses={**CACHED_RESPONSES, **problem_responses(401, 403, 422, 429, 503)},
    openapi_extra=CONDITIONAL_REQUEST,
)
async def list_counterparties(
    request: Request,
    caller: Reader,
    treasury: TreasuryDep,
    answers: AnswersDep,
    refresh: Refresh,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    source: Annotated[Source | None, Query(description="Only this source.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Matches name and description, case- and accent-insensitive.",
        ),
    ] = None,
    currency: Annotated[
        list[Annotated[str, Query(pattern=CURRENCY_QUERY_PATTERN)]] | None,
        Query(
            description="Has an account in any of these currencies (repeatable, case-insensitive).",
            max_length=50,
        ),
    ] = None,
    page: Annotated[
        int, Query(ge=1, le=1_000_000, description="Page number, from 1."), ASCII_INTEGER
    ] = 1,
    page_size: Annotated[
        int, Query(ge=1, le=200, description="Items per page."), ASCII_INTEGER
    ] = 50,
) -> Response:
    scope = treasury.scope(source=source, kind=kind)
    gathered = await gathered_for(request, treasury, scope, refresh=refresh)
    question = Question(
        "counterparties",
        (
            kind,
            source,
            normalize_text(q) if q is not None else "",
            tuple(sorted({code.strip().upper() for code in currency or ()})),
            page,
            page_size,
        ),
    )

    def build() -> CounterpartyPage:
        # The index depends on the connections' data alone: a change of status (a TTL lapse)
        # reuses it, and only the page's counterparties are marked with their state.
        index = answers.per_state(
            "counterparties",
            gathered.data,
            lambda: CounterpartyIndex(gathered.held_counterparties),
        )
        matching = index.filter(kind=kind, source=source, q=q, currencies=currency or ())
        # A page of the snapshot's Structs: `answers` writes them (see `_dump`).
        return CounterpartyPage.model_construct(
            items=gathered.marked(paginate(matching, page, page_size)),  # type: ignore[arg-type]
            page=page,
            page_size=page_size,
            total=len(matching),
            sources=gathered.sources,
            complete=gathered.complete,
            warnings=gathered.warnings,
        )

    again = gathering_again(treasury, scope)
    return await answer_json(
        request, answers, question, build, gathered, refresh=refresh, again=again
    )


@router.get(
    "/counterparties/{counterparty_id}",
    name="get_counterparty",
    summary="Get one counterparty",
    description="One counterparty with its accounts and interpreted positions; only its own "
    "connection is asked. An unknown or malformed id is a 404. A configured bank connection "
    "answers 200 even when it cannot be read (`status` and `error` say why); a FinSync id "
    "answers 503 only when FinSync is down and nothing is cached.",
    response_model=CounterpartyDetail,
    response_description="The counterparty, with the state of its connection.",
    responses={
        **CACHED_RESPONSES,
        **problem_responses(
            401,
            403,
            404,
            422,
            429,
            502,
            503,
            504,
            descriptions={
                503: "The counterparty's connection failed and nothing is cached; `sources` "
                "lists its error.",
            },
        ),
    },
    openapi_extra=CONDITIONAL_REQUEST,
)
async def get_counterparty(
    request: Request,
    caller: Reader,
    directory: DirectoryDep,
    refresh: Refresh,
    counterparty_id: Annotated[
        str,
        Path(
            max_length=200,
            description="`finsync:<client id>` or `finqware:<consent key>`.",
            # Ids the sandbox has, so "try it out" against `make run` finds something.
            examples=["finsync:101", "finqware:bt-main"],
        ),
    ],
) -> Response:
    found = await directory.get(counterparty_id, refresh=refresh)
    gathered = found.gathered
    # One counterparty: validated into the public model from the Struct's own JSON.
    body = CounterpartyDetail(
        **msgspec.json.decode(encode_json(found.counterparty)),
        sources=gathered.sources,
        complete=gathered.complete,
        warnings=[w for w in gathered.warnings if w.counterparty_id in (None, counterparty_id)],
    )
    return cached_json(request, body, max_age_seconds=gathered.max_age_seconds)


@router.post(
    "/counterparties",
    name="create_counterparty",
    summary="Create an external counterparty",
    description="Creates a FinSync cuenta corriente. A name that matches an existing FinSync "
    "client (case-, accent-, space- and invisible-character-insensitive, and look-alike-"
    "insensitive by Unicode TR39 confusable skeletons, so a Cyrillic a, U+0430, matches a "
    "Latin a) "
    "answers 409 with its id; bank connections' names do not count (a bank can also be a "
    "lender). Send an `Idempotency-Key` to make retries safe. Needs the `write` scope.",
    status_code=201,
    response_model=Counterparty,
    response_description="Created: the new counterparty (no accounts yet).",
    responses={
        201: {
            "headers": {
                "Location": {
                    "description": "Path of the new counterparty.",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "Idempotent-Replayed": {
                    "description": "`true` when this is the stored answer to an earlier "
                    "request with the same `Idempotency-Key`.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **problem_responses(
            400,
            401,
            403,
            409,
            413,
            422,
            429,
            502,
            503,
            504,
            descriptions={
                422: "The request is not valid (`errors` lists every invalid input), or the "
                "`Idempotency-Key` was already used with a different body.",
                503: "FinSync is unavailable, or it did not answer the create and a check "
                "shows it was not created (safe to retry).",
                504: "FinSync did not answer in time, so the create may or may not have "
                "landed; retrying is safe (one that landed answers 409 with its id).",
            },
        ),
    },
)
async def create_counterparty(
    request: Request,
    caller: Writer,
    directory: DirectoryDep,
    idempotency: IdempotencyDep,
    new: Annotated[NewCounterparty, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Makes a retry return the first answer instead of creating again.",
        ),
    ] = None,
) -> Response:
    async def produce() -> StoredAnswer:
        created = await directory.create(new.name, new.description)
        location = str(request.url_for("get_counterparty", counterparty_id=created.id).path)
        return StoredAnswer(status=201, body=encode_json(created), headers={"Location": location})

    if idempotency_key is None:
        answer = await produce()
        replayed = False
    else:
        # A key reused with another body raises IdempotencyKeyReusedError: a 422 problem.
        answer, replayed = await idempotency.run(
            # Keys are each caller's own: another caller's key never replays its answer.
            f"{caller.name}\x00{idempotency_key}",
            fingerprint(new.model_dump(mode="json")),
            produce,
            keep=lambda stored: stored.status == 201,
        )
    headers = dict(answer.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
    )
