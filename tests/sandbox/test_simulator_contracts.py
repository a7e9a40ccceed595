"""The simulators honour the upstream contracts in openapi/, checked by schemathesis."""

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.applications import Starlette

from app.sandbox import FINSYNC_API_KEY, create_finqware_app, create_finsync_app
from tests.support.simulators import consent

SPECS = Path(__file__).resolve().parents[2] / "openapi"
FINSYNC_SPEC = SPECS / "finsync.yaml"
FINQWARE_SPEC = SPECS / "finqware.yaml"

# Fixed seed: the same cases every run, so a finding is reproducible and CI is not flaky.
SEED = 20261123
# Per operation and per hypothesis-driven phase; keeps the whole module well under 60 s.
MAX_EXAMPLES = 25


@pytest.mark.parametrize("path", [FINSYNC_SPEC, FINQWARE_SPEC], ids=lambda p: p.name)
def test_spec_is_valid_openapi_3_1(path: Path) -> None:
    spec, base_uri = read_from_filename(str(path))

    validate(spec, base_uri=base_uri)
    assert str(spec["openapi"]).startswith("3.1")


@pytest.fixture(scope="module")
def case_counts(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """How many cases schemathesis sent to each simulator, reported at the end."""
    counts: Counter[str] = Counter()
    yield counts
    if counts:
        summary = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
        # Shown even when output is captured: the counts are part of the test's evidence.
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nschemathesis cases per simulator: {summary}")


def _config(**extra: object) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            **extra,
        }
    )


def _load(spec: Path, app: Starlette, **extra: object) -> OpenApiSchema:
    # Loaded at collection, because schemathesis' lazy `from_fixture` loader reads a private
    # pytest attribute that pytest 9 no longer has. Cases reach `app` in-process.
    schema = schemathesis.openapi.from_path(spec, config=_config(**extra))
    schema.app = app
    return schema


finsync_contract = _load(
    FINSYNC_SPEC,
    create_finsync_app(),
    auth={"openapi": {"apiKey": {"api_key": FINSYNC_API_KEY}}},
)
finqware_contract = _load(FINQWARE_SPEC, create_finqware_app())


@finsync_contract.parametrize()
def test_finsync_simulator_follows_its_spec(
    case: schemathesis.Case[Any], case_counts: Counter[str]
) -> None:
    case_counts["finsync"] += 1
    case.call_and_validate()


@finqware_contract.parametrize()
def test_finqware_simulator_follows_its_spec(
    case: schemathesis.Case[Any], case_counts: Counter[str]
) -> None:
    case_counts["finqware"] += 1
    # Secrets travel in the body, where OpenAPI auth cannot put them: swap in the sandbox's
    # for every string the generator chose. Non-strings and absent keys stay as generated,
    # so a negative case keeps the flaw it was built with.
    if isinstance(case.body, dict):
        valid = consent(("bt-main", "ing-ops")[case_counts["finqware"] % 2])
        for key, value in list(case.body.items()):
            if key in valid and isinstance(value, str):
                case.body[key] = valid[key]
    case.call_and_validate()
