"""The fast path: a GET whose (route, raw query, caller's scope, encoding) names a kept answer
is answered here, from the kept bytes, without FastAPI's per-request solving.

What may be answered here is decided in one place, `app.api.caching.answer_json`: when it
sends a kept answer, it remembers in the `AnswerCache` how the request's raw query names it
again (its question, and how to gather its data state without waiting: `Recall`). The fast
path only looks that up and asks the same questions the route would, in the same way:

- the caller is admitted with the `read` scope (else FastAPI refuses it);
- the request asks no refetch (`Cache-Control: no-cache` / `max-age=0`: FastAPI refetches);
- every connection answers at once (no load to wait for; a TTL lapse then shows as a new
  data state), and the data state gathered now names a kept answer;
- the encoding the caller accepts is already compressed (else FastAPI compresses it once);
- the response itself (validators, 304 for a matching If-None-Match, the body for the
  encoding) is made by the same function as FastAPI's (`caching.kept_response`).

Anything else (a first sight of a query, any error, every other route, OpenAPI) returns None
and the request goes on to FastAPI. HEAD, CORS, encoding headers and metrics are the edge's
own, the same for both paths (`layer.Edge`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from app.api.answers import AnswerCache
from app.api.auth import admit
from app.api.caching import GATHERED_AT_THE_EDGE, kept_response
from app.api.deps import wants_refresh
from app.api.errors import UnauthenticatedError
from app.api.state import Services
from app.settings import Settings

_READ = "read"


class FastPath:
    """Answers from kept bytes at the edge, or None (then FastAPI answers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.answered = 0  # requests answered here (the tests read it)

    async def answer(self, scope: Scope, headers: Headers, authorization: str) -> Response | None:
        """The answer to this GET from a kept answer, or None when FastAPI must answer."""
        services: Services | None = scope.get("state", {}).get("services")
        if services is None:
            return None
        answers: AnswerCache = services.answers
        recall = answers.recall(scope["path"], scope["query_string"])
        if recall is None or await wants_refresh(headers.get("cache-control")):
            return None
        try:
            caller = admit(self.settings, authorization or None)
        except UnauthenticatedError:
            return None
        if _READ not in caller.scopes:
            return None
        gathering = recall.again()
        if gathering is None:
            return None
        try:
            gathered = await gathering
        except Exception as exc:
            # FastAPI answers it (the route raises it again, and its handlers answer it).
            scope[GATHERED_AT_THE_EDGE] = exc
            return None
        response = kept_response(Request(scope), answers, recall.question, gathered)
        if response is None:
            # The route reads the same data state rather than gathering again.
            scope[GATHERED_AT_THE_EDGE] = gathered
            return None
        self.answered += 1
        scope["route"] = recall.route
        return response
