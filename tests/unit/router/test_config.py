"""The router's config file: camelCase as the operator writes it, and the ModelEnsemble's
rules enforced again, with messages that name what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelship_serving.router.config import ConfigError, load_config, parse_config


def members(*names: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": n, "url": f"http://{n}.models.svc:8000", "grpcUrl": f"{n}.models.svc:8001",
             "model": n, **extra} for n in names]


def test_the_operators_camel_case_config_parses_with_defaults() -> None:
    config = parse_config({
        "name": "pipeline", "strategy": "serial", "members": members("scale", "classify"),
        "steps": [{"member": "scale", "inputMapping": {"raw": "$input.features"}},
                  {"member": "classify", "inputMapping": {"input": "scale.scaled"}}],
        "outputs": {"label": {"member": "classify", "output": "label"},
                    "probability": "classify.probabilities"},
        "timeoutSeconds": 10, "retries": 2,
    })
    assert config.member("scale").grpc_url == "scale.models.svc:8001"
    assert config.steps is not None and config.steps[1].input_mapping == {"input": "scale.scaled"}
    assert config.outputs is not None
    assert (config.outputs["probability"].member, config.outputs["probability"].output) == \
        ("classify", "probabilities")
    assert config.member_protocol == "http" and config.timeout_seconds == 10


def test_a_member_version_may_be_a_number_or_text_of_digits() -> None:
    config = parse_config({"name": "e", "strategy": "voting",
                           "members": members("a") + members("b", version=3)})
    assert config.member("b").version == "3" and config.member("a").version == ""
    with pytest.raises(ConfigError, match="members.1.version"):
        parse_config({"name": "e", "strategy": "voting",
                      "members": members("a") + members("b", version="latest")})


@pytest.mark.parametrize(("change", "message"), [
    ({"strategy": "weighted"}, "strategy weighted needs a weight on every member"),
    ({"members": members("a", "b", weight=1.0)}, "weight is only used by strategy weighted"),
    ({"members": members("a", "a")}, "member names must be unique; repeated: ['a']"),
    ({"members": members("a")}, "members: List should have at least 2 items"),
    ({"strategy": "serial"}, "strategy serial needs steps"),
    ({"parallel": {"combine": "concat"}}, "parallel is only used by strategy parallel"),
    ({"strategy": "parallel", "voting": {"labelOutput": "label"}},
     "voting is only used by strategy voting"),
    ({"members": [{**members("a")[0], "url": "a:8000"}] + members("b")},
     "url must be http://host:port"),
    ({"members": [{**members("a")[0], "grpcUrl": "http://a:8001"}] + members("b")},
     "grpcUrl must be host:port"),
    ({"timeoutSeconds": 0}, "timeoutSeconds: Input should be greater than 0"),
    ({"extra": True}, "extra: Extra inputs are not permitted"),
])
def test_a_config_the_router_would_misread_is_refused_saying_why(
        change: dict[str, Any], message: str) -> None:
    raw = {"name": "e", "strategy": "voting", "members": members("a", "b"), **change}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)


@pytest.mark.parametrize(("steps", "message"), [
    ([{"member": "a", "inputMapping": {"x": "$input.x"}}],
     "steps must list every member exactly once"),
    ([{"member": "a", "inputMapping": {"x": "b.y"}},
      {"member": "b", "inputMapping": {"x": "$input.x"}}],
     "step 'a': input 'x' reads 'b.y', but 'b' is not an earlier step"),
    ([{"member": "a", "inputMapping": {"x": "input.x"}},
      {"member": "b", "inputMapping": {"x": "a.y"}}],
     "'input' is not an earlier step"),
    ([{"member": "a", "inputMapping": {"x": "no-dot"}},
      {"member": "b", "inputMapping": {"x": "a.y"}}],
     "String should match pattern"),
])
def test_serial_steps_must_read_only_from_the_request_or_earlier_steps(
        steps: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"name": "e", "strategy": "serial", "members": members("a", "b"),
                      "steps": steps})
    assert message in str(error.value)


def test_load_config_names_the_file_when_it_is_missing_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*missing.json"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        load_config(broken)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "e", "strategy": "voting", "members": members("a", "b")}))
    assert load_config(good).name == "e"
