"""Settings: the TESORO_ environment names, start-up refusals, secrets that never print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import (
    BALANCE_TYPES,
    ConfigurationError,
    Settings,
    configured_connections,
    describe_invalid,
    secret_values,
    unknown_setting_names,
)

pytestmark = pytest.mark.usefixtures("clean_env")

CONSENTS = [
    {
        "key": "bt-main",
        "label": "BT",
        "credentials_id": "cred-secret-1",
        "access_token": "token-secret-1",
        "tenant_user_id": "u1",
    }
]


def test_reads_every_documented_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "TESORO_SANDBOX": "false",
        "TESORO_FINSYNC_BASE_URL": "https://finsync.example",
        "TESORO_FINSYNC_API_KEY": "fs-secret",
        "TESORO_FINQWARE_BASE_URL": "https://fq.example/v1",
        "TESORO_FINQWARE_CLIENT_ID": "tenant",
        "TESORO_FINQWARE_CLIENT_SECRET": "tenant-secret",
        "TESORO_FINQWARE_CONSENTS": json.dumps(CONSENTS),
        "TESORO_API_KEYS": json.dumps({"fe": {"sha256": "A" * 64, "scopes": ["read"]}}),
        "TESORO_AUTH_DISABLED": "false",
        "TESORO_FINSYNC_TTL_SECONDS": "12",
        "TESORO_FINQWARE_TTL_SECONDS": "600",
        "TESORO_STALE_IF_ERROR_SECONDS": "60",
        "TESORO_UPSTREAM_TIMEOUT_SECONDS": "2.5",
        "TESORO_CURRENT_BALANCE_TYPES": "ClosingBooked, InterimBooked",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.finsync_base_url == "https://finsync.example"
    assert settings.finsync_api_key is not None
    assert settings.finsync_api_key.get_secret_value() == "fs-secret"
    assert settings.finqware_consents[0].access_token.get_secret_value() == "token-secret-1"
    assert settings.api_keys["fe"].sha256 == "a" * 64
    assert (settings.finsync_ttl_seconds, settings.finqware_ttl_seconds) == (12, 600)
    assert settings.stale_if_error_seconds == 60
    assert settings.upstream_timeout_seconds == 2.5
    assert settings.current_balance_types == ["ClosingBooked", "InterimBooked"]
    settings.check_runnable()
    printed = repr(settings) + str(settings.model_dump())
    for secret in ("fs-secret", "tenant-secret", "token-secret-1", "cred-secret-1"):
        assert secret not in printed


def test_defaults_match_the_contract() -> None:
    settings = Settings()
    assert settings.finsync_base_url == "https://finsync.ar"
    assert settings.finqware_base_url == "https://api.finqware.com/v1"
    assert settings.finsync_ttl_seconds == 30
    assert settings.finqware_ttl_seconds == 300
    assert settings.stale_if_error_seconds == 86400
    assert settings.upstream_timeout_seconds == 5
    assert settings.current_balance_types[0] == "InterimBooked"
    assert settings.available_balance_types[0] == "InterimAvailable"


def test_refuses_to_start_with_no_source() -> None:
    with pytest.raises(ConfigurationError, match="TESORO_FINSYNC_API_KEY"):
        create_app(Settings(auth_disabled=True))


def test_refuses_to_start_without_caller_keys_unless_auth_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TESORO_FINSYNC_API_KEY", "k")
    with pytest.raises(ConfigurationError, match="TESORO_API_KEYS"):
        create_app(Settings())
    monkeypatch.setenv("TESORO_AUTH_DISABLED", "true")
    create_app(Settings())


FINQWARE_SETTINGS = {
    "TESORO_FINQWARE_CLIENT_ID": "tenant",
    "TESORO_FINQWARE_CLIENT_SECRET": "tenant-secret",
    "TESORO_FINQWARE_CONSENTS": json.dumps(CONSENTS),
}


@pytest.mark.parametrize(
    "given",
    [
        ["TESORO_FINQWARE_CLIENT_ID"],
        ["TESORO_FINQWARE_CLIENT_SECRET"],
        ["TESORO_FINQWARE_CONSENTS"],
        ["TESORO_FINQWARE_CLIENT_ID", "TESORO_FINQWARE_CLIENT_SECRET"],
        ["TESORO_FINQWARE_CLIENT_ID", "TESORO_FINQWARE_CONSENTS"],
        ["TESORO_FINQWARE_CLIENT_SECRET", "TESORO_FINQWARE_CONSENTS"],
    ],
)
def test_a_half_configured_finqware_is_refused_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, given: list[str]
) -> None:
    # With or without FinSync: the Finqware half is the mistake, not "no upstream".
    monkeypatch.setenv("TESORO_AUTH_DISABLED", "true")
    for name in given:
        monkeypatch.setenv(name, FINQWARE_SETTINGS[name])
    missing = [name for name in FINQWARE_SETTINGS if name not in given]
    for finsync_key in (None, "fs-key"):
        if finsync_key is not None:
            monkeypatch.setenv("TESORO_FINSYNC_API_KEY", finsync_key)
        with pytest.raises(ConfigurationError) as caught:
            create_app(Settings())
        message = str(caught.value)
        assert message.startswith("Finqware is partly configured: ")
        given_part, missing_part = message.split(" set, ", 1)
        assert all(name in given_part for name in given)
        assert all(name in missing_part.split(" missing")[0] for name in missing)
        assert "no upstream" not in message
        assert "tenant-secret" not in message


def test_consent_keys_given_twice_are_named_under_the_consents_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    twice = [*CONSENTS, {**CONSENTS[0], "label": "BT again"}, *CONSENTS]
    monkeypatch.setenv("TESORO_FINQWARE_CONSENTS", json.dumps(twice))
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_invalid(caught.value) == (
        "TESORO_FINQWARE_CONSENTS: every consent needs a distinct key; "
        "given more than once: bt-main"
    )


def test_every_mistake_is_reported_at_once_bad_json_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bad JSON in two variables (one of them in .env) no longer hides the other mistakes.
    monkeypatch.setenv("TESORO_API_KEYS", '{"svc": sk_live_9')
    monkeypatch.setenv("TESORO_UPSTREAM_TIMEOUT_SECONDS", "-1")
    monkeypatch.setenv("TESORO_FINSYNC_BASE_URL", "finsync.ar")
    Path(".env").write_text("TESORO_CORS_ORIGINS=[https://app.example\n", encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        Settings()
    reported = describe_invalid(caught.value).splitlines()
    assert sorted(line.split(":", 1)[0] for line in reported) == [
        "TESORO_API_KEYS",
        "TESORO_CORS_ORIGINS",
        "TESORO_FINSYNC_BASE_URL",
        "TESORO_UPSTREAM_TIMEOUT_SECONDS",
    ]
    not_json = "not valid JSON (see deploy/tesoro.env.example for its shape)"
    assert f"TESORO_API_KEYS: {not_json}" in reported
    assert f"TESORO_CORS_ORIGINS: {not_json}" in reported
    assert "sk_live_9" not in "\n".join(reported)


def test_a_redis_url_without_the_redis_extra_is_a_configuration_error() -> None:
    settings = Settings(sandbox=True, redis_url="redis://redis:6379/0")
    with pytest.raises(ConfigurationError) as caught:
        settings.check_runnable(installed=lambda module: module != "redis")
    assert str(caught.value) == (
        "TESORO_REDIS_URL is set but the redis extra is not installed "
        "(pip install 'tesoro[redis]'), or unset TESORO_REDIS_URL"
    )
    settings.check_runnable(installed=lambda module: True)
    # Without the URL the extra is never asked about.
    Settings(sandbox=True).check_runnable(installed=lambda module: False)


def test_unknown_tesoro_names_are_found_with_the_nearest_known_name() -> None:
    Path("tesoro.env").write_text(
        "TESORO_FINQWARE_TTL_SECOND=5\nTESORO_LOG_LEVEL=debug\nOTHER=1\n", encoding="utf-8"
    )
    environ = {
        "TESORO_FINSYNC_TTL": "60",
        "tesoro_sandbox": "true",  # names are read case-insensitively
        "TESORO_ZZZ": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_setting_names(environ, Path("tesoro.env")) == [
        ("TESORO_FINQWARE_TTL_SECOND", "TESORO_FINQWARE_TTL_SECONDS"),
        ("TESORO_FINSYNC_TTL", "TESORO_FINSYNC_TTL_SECONDS"),
        ("TESORO_ZZZ", None),
    ]
    assert unknown_setting_names({"TESORO_SANDBOX": "true"}, Path("missing.env")) == []


def test_sandbox_needs_no_configuration() -> None:
    app = create_app(Settings(sandbox=True))
    assert app.state.settings.finsync_enabled
    assert app.state.settings.finqware_enabled


def test_invalid_consents_do_not_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = [{**CONSENTS[0], "key": "has space"}]
    monkeypatch.setenv("TESORO_FINQWARE_CONSENTS", json.dumps(bad))
    with pytest.raises(ValueError, match="key") as caught:
        Settings()
    assert "token-secret-1" not in str(caught.value)


def test_dotenv_file_is_read(tmp_path: object) -> None:
    import pathlib

    pathlib.Path(".env").write_text("TESORO_FINSYNC_TTL_SECONDS=7\n")
    assert Settings().finsync_ttl_seconds == 7


def test_blank_variables_are_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy/tesoro.env.example leaves secrets blank: that must not switch a source on.
    for name in ("FINSYNC_API_KEY", "FINQWARE_CLIENT_ID", "FINQWARE_CLIENT_SECRET"):
        monkeypatch.setenv(f"TESORO_{name}", "")
    monkeypatch.setenv("TESORO_AUTH_DISABLED", "true")
    settings = Settings()
    assert not settings.finsync_enabled
    assert settings.finqware_client_id is None
    with pytest.raises(ConfigurationError, match="TESORO_FINSYNC_API_KEY"):
        create_app(settings)


def test_invalid_settings_are_named_by_their_variable_without_their_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = [{**CONSENTS[0], "key": "has space"}, {"key": "half", "access_token": "tok-hidden"}]
    monkeypatch.setenv("TESORO_FINQWARE_CONSENTS", json.dumps(bad))
    monkeypatch.setenv("TESORO_UPSTREAM_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = describe_invalid(caught.value)
    assert "TESORO_FINQWARE_CONSENTS[0]['key']: String should match pattern" in message
    assert "TESORO_FINQWARE_CONSENTS[1]['credentials_id']: Field required" in message
    assert "TESORO_UPSTREAM_TIMEOUT_SECONDS: Input should be greater than 0" in message
    assert "token-secret-1" not in message
    assert "tok-hidden" not in message


@pytest.mark.parametrize(
    "variable",
    [
        "TESORO_CURRENT_BALANCE_TYPES",
        "TESORO_CURRENT_FALLBACK_BALANCE_TYPES",
        "TESORO_AVAILABLE_BALANCE_TYPES",
    ],
)
def test_an_unknown_balance_type_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "InterimBooked, Interimbooked")
    with pytest.raises(ValidationError) as caught:
        Settings()
    described = describe_invalid(caught.value)
    assert described.startswith(f"{variable}: ")
    assert "unknown balance type Interimbooked" in described
    assert "\n" not in described


def test_every_known_balance_type_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESORO_CURRENT_BALANCE_TYPES", ",".join(BALANCE_TYPES))
    assert Settings().current_balance_types == list(BALANCE_TYPES)


@pytest.mark.parametrize("value", ["tesoro.example", "ftp://tesoro.example", "https://"])
def test_the_public_base_url_needs_a_scheme_and_a_host(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TESORO_PUBLIC_BASE_URL", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_invalid(caught.value).startswith("TESORO_PUBLIC_BASE_URL: ")


def test_the_public_base_url_is_the_served_specs_server() -> None:
    configured = Settings(sandbox=True, public_base_url="https://tesoro.example/api")
    with TestClient(create_app(configured)) as client:
        servers = client.get("/openapi.json").json()["servers"]
    assert servers == [{"url": "https://tesoro.example/api", "description": "This deployment"}]
    # Unset (and not set by `tesoro serve` from its address), the spec names no server:
    # clients call where they fetched it from.
    with TestClient(create_app(Settings(sandbox=True))) as client:
        assert "servers" not in client.get("/openapi.json").json()


def test_log_format_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().log_format, Settings().log_level) == ("json", "info")
    monkeypatch.setenv("TESORO_LOG_FORMAT", "console")
    monkeypatch.setenv("TESORO_LOG_LEVEL", "debug")
    assert (Settings().log_format, Settings().log_level) == ("console", "debug")
    monkeypatch.setenv("TESORO_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_invalid(caught.value).startswith("TESORO_LOG_FORMAT: ")


def test_configured_connections_are_keys_and_labels_only() -> None:
    settings = Settings(
        finsync_api_key="fs-secret",
        finqware_client_id="tenant",
        finqware_client_secret="tenant-secret",
        finqware_consents=CONSENTS,
    )
    assert configured_connections(settings) == [
        {"key": "finsync", "label": None},
        {"key": "finqware:bt-main", "label": "BT"},
    ]
    assert set(secret_values(settings)) == {
        "fs-secret",
        "tenant-secret",
        "token-secret-1",
        "cred-secret-1",
    }
