"""The OpenAPI document as tesoro publishes it: FastAPI's, with problems as problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.api.errors import PROBLEM_MEDIA_TYPE


def problems_as_problem_json(spec: dict[str, Any]) -> dict[str, Any]:
    """Move each problem schema from application/json to application/problem+json.

    FastAPI places a `responses=` model under the route's own media type (JSON, or an event
    stream); the problem answers also declare `application/problem+json` (see
    `problem_responses`), and that is the only media type they are sent with.
    """
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_MEDIA_TYPE not in content:
                    continue
                # The route's media type: application/json, or text/event-stream (GET /events).
                for media_type in [m for m in content if m != PROBLEM_MEDIA_TYPE]:
                    problem = content.pop(media_type)
                    content[PROBLEM_MEDIA_TYPE] = {**problem, **content[PROBLEM_MEDIA_TYPE]}
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve the document built by `problems_as_problem_json` over FastAPI's, built once."""
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems_as_problem_json(fastapi_openapi())
        return app.openapi_schema

    # FastAPI's documented way to customise the document ("Extending OpenAPI").
    app.openapi = openapi  # type: ignore[method-assign]
