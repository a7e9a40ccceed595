"""The FinSync and Finqware simulators as tests drive them: their faults, call counters and
valid Finqware request bodies."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette

from app.sandbox import (
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    SANDBOX_CONSENTS,
    Faults,
    create_finqware_app,
    create_finsync_app,
)
from app.sandbox.wiring import HostRouterTransport, rate_simulators, sandbox_transport


def faults_of(simulator: Starlette) -> Faults:
    """The live fault switch of one simulator app."""
    faults: Faults = simulator.state.faults
    return faults


def consent(key: str) -> dict[str, str]:
    """A valid Finqware request body for one sandbox consent."""
    found = next(c for c in SANDBOX_CONSENTS if c.key == key)
    return {
        "client_id": FINQWARE_CLIENT_ID,
        "client_secret": FINQWARE_CLIENT_SECRET,
        "credentials_id": found.credentials_id,
        "access_token": found.access_token,
        "tenant_user_id": found.tenant_user_id,
    }


@dataclass
class Simulators:
    """One FinSync and one Finqware simulator, with the faults and call counts of each."""

    finsync: Starlette
    finqware: Starlette
    # The rate sources' simulators by source name ("bcra", "bnr", "ecb", "dolarapi").
    rates: dict[str, Starlette] = field(default_factory=dict)

    @classmethod
    def fresh(cls) -> Simulators:
        return cls(
            finsync=create_finsync_app(), finqware=create_finqware_app(), rates=rate_simulators()
        )

    def transport(self) -> HostRouterTransport:
        """A transport that sends tesoro's upstream calls to these simulators."""
        return sandbox_transport(self.finsync, self.finqware, rate_apps=self.rates)

    def rate_faults(self, source: str) -> Faults:
        """The live fault switch of one rate source's simulator."""
        return faults_of(self.rates[source])

    @property
    def finsync_faults(self) -> Faults:
        return faults_of(self.finsync)

    @property
    def finqware_faults(self) -> Faults:
        return faults_of(self.finqware)

    def finsync_calls(self, route: str = "GET /api/clients") -> int:
        count: int = self.finsync.state.calls[route]
        return count

    def finqware_calls(self, route: str = "POST /v1/balances/get") -> int:
        count: int = self.finqware.state.calls[route]
        return count

    def consent_calls(self, key: str, route: str = "POST /v1/balances/get") -> int:
        """Calls Finqware received for one consent (one bank connection)."""
        count: int = self.finqware.state.calls_by_consent[route, key]
        return count
