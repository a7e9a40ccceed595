"""The URL map: every route module, included in one place."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import counterparties, events, health, metrics, positions

api_router = APIRouter()
api_router.include_router(counterparties.router)
api_router.include_router(positions.router)
api_router.include_router(events.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
