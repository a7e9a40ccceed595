"""The console's and /docs' routes as HTTP: where `/` leads, the headers, what the page is told
about this tesoro, and turning the console off."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.console.pages import DOCS_ASSETS, STATIC
from app.main import create_app
from app.settings import Settings
from tests.support.keys import sha256

KEY = "pages-key"


def app_with(**overrides: Any) -> TestClient:
    return TestClient(create_app(Settings(_env_file=None, sandbox=True, **overrides)))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with app_with() as client:
        yield client


def test_home_leads_to_the_console_by_a_relative_redirect(client: TestClient) -> None:
    for path in ("/", "/console"):
        response = client.get(path, follow_redirects=False, headers={"Host": "evil.example"})
        assert response.status_code == 302
        # Relative: never built from Host, and right behind any path prefix.
        assert response.headers["location"] == "console/"


def test_the_console_and_docs_carry_a_strict_csp_and_no_referrer(client: TestClient) -> None:
    for path in (
        "/console/",
        "/console/config.json",
        "/console/static/console.js",
        "/docs",
        "/docs/assets/swagger-ui-bundle.js",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self';"), path
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert response.headers["referrer-policy"] == "no-referrer"


def test_no_page_has_an_inline_script_or_style_or_another_host(client: TestClient) -> None:
    for path in ("/console/", "/docs"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html
        assert " style=" not in html
        assert not re.search(r"(src|href)=\"(https?:)?//", html), path


def test_every_asset_the_pages_name_is_served_from_the_package(client: TestClient) -> None:
    for path in ("/console/", "/docs"):
        html = client.get(path).text
        for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
            base = "/console/" if path == "/console/" else "/"
            url = base + asset if not asset.startswith("../") else "/" + asset[3:]
            assert client.get(url).status_code == 200, url


def test_the_page_is_told_whether_to_ask_for_a_key_and_never_a_secret() -> None:
    with app_with() as client:
        assert client.get("/console/config.json").json()["auth_required"] is False
    keys = {"reader": {"sha256": sha256(KEY), "scopes": ["read"]}}
    with app_with(api_keys=keys) as client:
        response = client.get("/console/config.json")  # no key needed to learn that one is
        assert response.status_code == 200
        config = response.json()
    assert config["auth_required"] is True
    assert set(config) == {"auth_required", "sandbox", "version", "refresh_seconds"}
    assert sha256(KEY) not in response.text
    assert "reader" not in response.text


def test_the_page_looks_again_as_often_as_finsync_data_expires_within_bounds() -> None:
    for ttl, expected in ((1, 2.0), (5, 5.0), (30, 15.0)):
        with app_with(finsync_ttl_seconds=ttl) as client:
            assert client.get("/console/config.json").json()["refresh_seconds"] == expected


def test_turned_off_the_console_and_home_are_404_and_docs_still_work() -> None:
    with app_with(console_enabled=False) as client:
        for path in ("/", "/console/", "/console/config.json", "/console/static/console.js"):
            assert client.get(path, follow_redirects=False).status_code == 404, path
        assert client.get("/docs").status_code == 200
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200


def test_redoc_and_the_oauth2_redirect_page_are_not_served(client: TestClient) -> None:
    # Both need inline script or styles the CSP forbids; /docs covers the reference.
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_the_vendored_files_are_the_ones_recorded() -> None:
    recorded = (Path(STATIC).parent / "VENDORED.md").read_text()
    for folder, name in (
        (DOCS_ASSETS, "swagger-ui-bundle.js"),
        (DOCS_ASSETS, "swagger-ui.css"),
        (STATIC / "vendor" / "uplot", "uPlot.esm.js"),
        (STATIC / "vendor" / "uplot", "uPlot.min.css"),
        (Path(__file__).parent / "vendor", "axe.min.js"),
    ):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert digest in recorded, name
