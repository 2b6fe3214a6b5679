"""The Argo CD health scripts give the right verdict for every status fixture.

Each fixture is an object with the health Argo CD should show (see
fixtures/README.md). Every script runs twice per fixture: with integers as
JSON has them, and with every number a double, as Argo CD's Lua hands them
over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.install.lua import health_script, lua_available, load_fixture, run_health
from tests.unit.install.paths import FIXTURES

pytestmark = pytest.mark.skipif(not lua_available(), reason="lua5.4 is not installed "
                                "(scripts/setup-system.sh installs it)")

FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
SCRIPTS = {
    "ModelDeployment": health_script("modeldeployment-health.lua"),
    "ModelEnsemble": health_script("modelensemble-health.lua"),
}


def script_for(obj: dict) -> Path:
    return SCRIPTS[obj["kind"]]


@pytest.mark.parametrize("floats", [False, True], ids=["integers", "doubles"])
@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=[f.stem for f in FIXTURE_FILES])
def test_each_fixture_gets_the_health_it_expects(fixture: Path, floats: bool):
    expect, obj = load_fixture(fixture)

    health = run_health(script_for(obj), obj, floats=floats)

    assert health.status == expect["status"], health.message
    assert expect.get("messageContains", "") in health.message
    assert health.message, "Argo CD shows the message; it must never be empty"


def test_the_fixtures_cover_every_verdict_for_both_kinds():
    seen = set()
    for fixture in FIXTURE_FILES:
        expect, obj = load_fixture(fixture)
        seen.add((obj["kind"], expect["status"]))

    wanted = {(kind, status) for kind in SCRIPTS for status in ("Healthy", "Progressing",
                                                                 "Degraded")}
    assert wanted <= seen, f"no fixture for {sorted(wanted - seen)}"


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
@pytest.mark.parametrize("phase,expected", [
    ("Pending", "Progressing"),
    ("Progressing", "Progressing"),
    ("Degraded", "Degraded"),
    ("Failed", "Degraded"),
])
def test_a_phase_without_ready_maps_to_its_verdict(kind: str, phase: str, expected: str):
    obj = {
        "kind": kind,
        "metadata": {"name": "m", "generation": 2},
        "status": {"phase": phase, "observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": "False", "reason": "NotReady", "message": "",
             "observedGeneration": 2},
        ]},
    }

    assert run_health(SCRIPTS[kind], obj).status == expected


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_an_empty_conditions_list_is_progressing_not_an_error(kind: str):
    obj = {"kind": kind, "metadata": {"generation": 1},
           "status": {"observedGeneration": 1, "conditions": []}}

    assert run_health(SCRIPTS[kind], obj).status == "Progressing"


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_messages_with_quotes_and_unicode_survive_the_trip(kind: str):
    message = 'model "résumé-ü" failed: \\ back\nslash'
    obj = {"kind": kind, "metadata": {"generation": 1},
           "status": {"phase": "Failed", "observedGeneration": 1, "conditions": [
               {"type": "Ready", "status": "False", "reason": "Broken", "message": message}]}}

    assert run_health(SCRIPTS[kind], obj).message == message
