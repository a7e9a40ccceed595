"""The Prometheus scrape target: this instance's metrics as Prometheus text."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from app.api.deps import MetricsDep

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    name="get_metrics",
    summary="Prometheus metrics",
    description="Requests by route template, method and status; upstream calls by upstream "
    "and outcome; the state of each connection as last reported. Prometheus text format "
    "0.0.4; calls nothing. No authentication.",
    response_class=PlainTextResponse,
    response_description="The metrics, in the Prometheus text exposition format.",
)
async def get_metrics(metrics: MetricsDep) -> Response:
    # 0.0.4 is what prometheus_client sends a scraper that asks for no particular format.
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
