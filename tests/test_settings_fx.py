"""The rate settings (TESORO_FX_*): defaults, the policies' JSON, every mistake at once."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.sandbox.serve import sandbox_banner, sandbox_env
from app.settings import Settings, describe_invalid, unknown_setting_names

pytestmark = pytest.mark.usefixtures("clean_env")


def test_the_rate_defaults_are_the_contracts() -> None:
    settings = Settings()
    assert settings.fx_bcra_base_url == "https://api.bcra.gob.ar"
    assert settings.fx_bnr_base_url == "https://curs.bnr.ro"
    assert settings.fx_ecb_base_url == "https://data-api.ecb.europa.eu"
    assert settings.fx_dolarapi_base_url == "https://dolarapi.com"
    assert settings.fx_sources == ["bcra", "bnr", "ecb", "dolarapi"]
    assert settings.fx_default_policy == "official"
    assert settings.fx_max_age_days == 7
    assert list(settings.fx_policy_table) == ["official", "market"]


def test_configured_policies_are_read_from_json_and_may_be_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "TESORO_FX_POLICIES", json.dumps({"usdt": {"extends": "market", "pegs": {"USDT": "USD"}}})
    )
    monkeypatch.setenv("TESORO_FX_DEFAULT_POLICY", "usdt")
    monkeypatch.setenv("TESORO_FX_SOURCES", '["bnr", "ecb"]')
    settings = Settings()
    assert list(settings.fx_policy_table) == ["official", "market", "usdt"]
    assert settings.fx_policy_table["usdt"].chain("USDT", "ARS") is not None
    assert settings.fx_sources == ["bnr", "ecb"]


def test_every_rate_setting_mistake_is_reported_at_once_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TESORO_FX_POLICIES", '{"board": {"rates": {"USD/ARS": 1450}}}')
    monkeypatch.setenv("TESORO_FX_SOURCES", '["bcra", "bcra", "oanda"]')
    monkeypatch.setenv("TESORO_FX_MAX_AGE_DAYS", "-1")
    monkeypatch.setenv("TESORO_FX_ECB_BASE_URL", "data-api.ecb.europa.eu")
    with pytest.raises(ValidationError) as caught:
        Settings()
    reported = describe_invalid(caught.value)
    assert "TESORO_FX_POLICIES: board.rates['USD/ARS']: write the rate as a decimal" in reported
    assert "TESORO_FX_SOURCES[2]" in reported
    assert "TESORO_FX_MAX_AGE_DAYS" in reported
    assert "TESORO_FX_ECB_BASE_URL" in reported


def test_an_unknown_default_policy_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESORO_FX_DEFAULT_POLICY", "blue")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_invalid(caught.value) == (
        "TESORO_FX_DEFAULT_POLICY: unknown policy 'blue'; known: official, market"
    )


def test_a_rate_source_given_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESORO_FX_SOURCES", '["ecb", "ecb"]')
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "given more than once: ecb" in describe_invalid(caught.value)


def test_a_misspelt_rate_setting_is_found_with_the_nearest_name() -> None:
    found = unknown_setting_names({"TESORO_FX_MAX_AGE": "3"})
    assert found == [("TESORO_FX_MAX_AGE", "TESORO_FX_MAX_AGE_DAYS")]


def test_the_sandbox_env_file_points_tesoro_at_the_rate_simulators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rate_urls = {
        "bcra": "http://127.0.0.1:9001",
        "bnr": "http://127.0.0.1:9002",
        "ecb": "http://127.0.0.1:9003",
        "dolarapi": "http://127.0.0.1:9004",
    }
    env = sandbox_env("http://127.0.0.1:9000", "http://127.0.0.1:9005", rate_urls)
    assert env["TESORO_FX_BCRA_BASE_URL"] == "http://127.0.0.1:9001"
    assert env["TESORO_FX_DOLARAPI_BASE_URL"] == "http://127.0.0.1:9004"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.fx_bnr_base_url == "http://127.0.0.1:9002"
    banner = sandbox_banner("http://127.0.0.1:9000", "http://127.0.0.1:9005", rate_urls)
    assert "ECB rate simulator: http://127.0.0.1:9003" in banner
    assert "GET/PUT http://127.0.0.1:9003/_sandbox/faults" in banner
