"""Caller authentication and scopes, and secrets never leaving the service."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from app.sandbox import FINQWARE_CLIENT_SECRET, FINSYNC_API_KEY, SANDBOX_CONSENTS
from tests.support.apps import MakeClient
from tests.support.keys import READ_KEY, WRITE_KEY, bearer, sha256
from tests.support.simulators import Simulators

SECRETS = [FINSYNC_API_KEY, FINQWARE_CLIENT_SECRET, READ_KEY, WRITE_KEY] + [
    secret for c in SANDBOX_CONSENTS for secret in (c.access_token, c.credentials_id)
]


@pytest.mark.parametrize("path", ["/positions", "/counterparties", "/counterparties/finsync:101"])
def test_reads_without_a_key_are_401_with_a_bearer_challenge(
    authed_client: TestClient, path: str
) -> None:
    response = authed_client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "header", ["Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer", f"Token {READ_KEY}"]
)
def test_wrong_keys_and_schemes_are_401(authed_client: TestClient, header: str) -> None:
    response = authed_client.get("/positions", headers={"Authorization": header})
    assert response.status_code == 401


def test_read_key_reads(authed_client: TestClient) -> None:
    assert authed_client.get("/positions", headers=bearer(READ_KEY)).status_code == 200


def test_read_key_cannot_create(authed_client: TestClient, simulators: Simulators) -> None:
    response = authed_client.post("/counterparties", json={"name": "X"}, headers=bearer(READ_KEY))
    assert response.status_code == 403
    assert simulators.finsync_calls("POST /api/clients") == 0


def test_write_key_creates(authed_client: TestClient) -> None:
    response = authed_client.post("/counterparties", json={"name": "X"}, headers=bearer(WRITE_KEY))
    assert response.status_code == 201


def test_idempotency_keys_belong_to_their_caller(
    make_client: MakeClient, simulators: Simulators
) -> None:
    other_writer = "other-writer-key-0123"
    client = make_client(
        api_keys={
            "writer": {"sha256": sha256(WRITE_KEY), "scopes": ["read", "write"]},
            "other": {"sha256": sha256(other_writer), "scopes": ["read", "write"]},
        }
    )
    first = client.post(
        "/counterparties",
        json={"name": "Uno"},
        headers={**bearer(WRITE_KEY), "Idempotency-Key": "shared-key"},
    )
    # The same key from another caller is that caller's own: no replay of the first answer.
    second = client.post(
        "/counterparties",
        json={"name": "Dos"},
        headers={**bearer(other_writer), "Idempotency-Key": "shared-key"},
    )
    replay = client.post(
        "/counterparties",
        json={"name": "Uno"},
        headers={**bearer(WRITE_KEY), "Idempotency-Key": "shared-key"},
    )
    assert (first.status_code, second.status_code, replay.status_code) == (201, 201, 201)
    assert second.json()["name"] == "Dos"
    assert "idempotent-replayed" not in second.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert simulators.finsync_calls("POST /api/clients") == 2


def test_probes_are_open(authed_client: TestClient) -> None:
    assert authed_client.get("/healthz").json() == {"status": "ok"}
    ready = authed_client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert "finsync" in ready["connections"]


def test_sandbox_without_keys_does_not_authenticate(client: TestClient) -> None:
    assert client.get("/positions").status_code == 200


def test_auth_disabled_explicitly_admits_everyone(make_client: MakeClient) -> None:
    client = make_client(
        auth_disabled=True, api_keys={"r": {"sha256": "0" * 64, "scopes": ["read"]}}
    )
    assert client.get("/positions").status_code == 200


def test_no_secret_in_any_answer_or_log(
    authed_client: TestClient, simulators: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        authed_client.get("/positions", headers=bearer(READ_KEY)),
        authed_client.get("/counterparties", headers=bearer(READ_KEY)),
        authed_client.get("/positions", headers=bearer("wrong")),
        authed_client.post("/counterparties", json={"name": READ_KEY}, headers=bearer(READ_KEY)),
        authed_client.get("/openapi.json"),
    ]
    simulators.finsync_faults.mode = "unauthorized"
    simulators.finqware_faults.mode = "unauthorized"
    answers.append(
        authed_client.get("/positions", headers={**bearer(READ_KEY), "Cache-Control": "no-cache"})
    )
    answers.append(
        authed_client.post("/counterparties", json={"name": "Y"}, headers=bearer(WRITE_KEY))
    )
    assert answers[-2].status_code in (200, 503)
    text = "\n".join(a.text for a in answers) + "\n" + caplog.text
    for secret in SECRETS:
        assert secret not in text
