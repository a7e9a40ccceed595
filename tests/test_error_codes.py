"""The adapters' reason codes and the published `SourceErrorCode` enum are one list."""

from __future__ import annotations

from typing import get_args

from app.domain.models import SourceErrorCode
from app.upstreams import errors
from app.upstreams.errors import ErrorCode, UpstreamError


def _error_classes() -> list[type[UpstreamError]]:
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, UpstreamError)
    ]


def test_every_adapter_code_is_a_published_code() -> None:
    # A code the enum lacks would fail the answer that reports it in `sources[].error`.
    assert set(get_args(ErrorCode)) == {code.value for code in SourceErrorCode}


def test_every_error_class_carries_a_published_code() -> None:
    classes = _error_classes()
    assert len(classes) >= 10
    published = {code.value for code in SourceErrorCode}
    assert {cls.code for cls in classes} <= published
