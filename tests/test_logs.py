"""A credential sent in a query string is never written to the access log."""

from __future__ import annotations

import logging

import pytest

from app.logs import CredentialQueryFilter, redact_query, uvicorn_log_config


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/positions", "/positions"),
        ("/positions?page=2&currency=ARS", "/positions?page=2&currency=ARS"),
        ("/positions?api_key=sk_live_1&page=2", "/positions?api_key=[hidden]&page=2"),
        (
            "/x?access_token=abc&Password=p&SECRET=s",
            "/x?access_token=[hidden]&Password=[hidden]&SECRET=[hidden]",
        ),
    ],
)
def test_credential_like_query_values_are_hidden(path: str, expected: str) -> None:
    assert redact_query(path) == expected


def test_the_access_log_as_configured_for_serve_hides_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = uvicorn_log_config()
    assert "credentials" in config["handlers"]["access"]["filters"]
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/positions?token=sk_live_123", "1.1", 200),
        None,
    )
    assert CredentialQueryFilter().filter(record)
    assert "sk_live_123" not in record.getMessage()
    assert "token=[hidden]" in record.getMessage()
