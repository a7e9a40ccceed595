"""Sandbox simulators of FinSync and Finqware, with seeded data and switchable faults.

``create_finsync_app()`` and ``create_finqware_app()`` build in-process ASGI apps (drive
them with ``httpx2.ASGITransport``); ``serve_simulators()`` serves both over HTTP.
"""

from app.sandbox.data import (
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CONSENTS,
    SandboxConsent,
)
from app.sandbox.faults import FAULT_MODES, ConnectionDroppedError, FaultMode, Faults
from app.sandbox.finqware import FinqwareStore, create_finqware_app
from app.sandbox.finsync import FinsyncStore, create_finsync_app
from app.sandbox.serve import serve_simulators

__all__ = [
    "FAULT_MODES",
    "FINQWARE_CLIENT_ID",
    "FINQWARE_CLIENT_SECRET",
    "FINSYNC_API_KEY",
    "SANDBOX_CONSENTS",
    "ConnectionDroppedError",
    "FaultMode",
    "Faults",
    "FinqwareStore",
    "FinsyncStore",
    "SandboxConsent",
    "create_finqware_app",
    "create_finsync_app",
    "serve_simulators",
]
