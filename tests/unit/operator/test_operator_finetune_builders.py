"""The fine-tuning Job: its identity, where it writes, and the pod it runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelship_operator.builders import finetune, meta
from tests.unit.operator.bodies import FINE_TUNING, SETTINGS, UID, body, deployment_of, example


def _tuned(
    *,
    storage_uri: str = "pvc://models/clf",
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    **fine_tuning: Any,
) -> dict[str, Any]:
    """A body with spec.fineTuning (FINE_TUNING with ``fine_tuning`` merged over it)."""
    return body(
        spec={"model": {"format": "onnx", "storageUri": storage_uri},
              "fineTuning": {**FINE_TUNING, **fine_tuning}},
        annotations=annotations, status=status,
    )


def _run(version: int = 2, spec_hash: str = "0123456789") -> finetune.Run:
    return finetune.Run(job_name=f"clf-ft-{spec_hash}", spec_hash=spec_hash, version=version)


def _job(raw: dict[str, Any], run: finetune.Run | None = None, **kwargs: Any) -> dict[str, Any]:
    md, raw = deployment_of(**_as_kwargs(raw))
    return finetune.job(md, raw, SETTINGS, run or _run(), **kwargs)


def _as_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    return {"spec": raw["spec"], "annotations": raw["metadata"].get("annotations"),
            "status": raw.get("status")}


def _identity(raw: dict[str, Any]) -> str:
    md, raw = deployment_of(**_as_kwargs(raw))
    return finetune.run_identity(md, raw)


def _trainer(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _trainer(job)["env"]}


# run_identity and job names.

def test_the_run_identity_is_ten_hex_characters_and_repeatable() -> None:
    first, second = _identity(_tuned()), _identity(_tuned())

    assert first == second
    assert len(first) == 10
    assert int(first, 16) >= 0


def test_the_run_identity_changes_with_spec_fine_tuning() -> None:
    base = _identity(_tuned())

    assert _identity(_tuned(workers=2)) != base
    assert _identity(_tuned(promotion={"metric": "f1", "threshold": 0.91})) != base
    assert _identity(_tuned(dataset={"uri": "sklearn://breast_cancer?rows=0:100"})) != base


def test_the_run_identity_changes_with_the_retrain_annotation() -> None:
    base = _identity(_tuned())
    once = _identity(_tuned(annotations={"modelship.io/retrain": "2030-01-01"}))
    twice = _identity(_tuned(annotations={"modelship.io/retrain": "2030-01-02"}))

    assert len({base, once, twice}) == 3


def test_the_run_identity_ignores_everything_else() -> None:
    base = _identity(_tuned())
    other = _tuned(annotations={"note": "hello"},
                   status={"servingVersion": 4, "phase": "Ready"})
    other["spec"].update(replicas=3, runtime={"instances": 2},
                         monitoring={"driftThreshold": 0.4})
    other["spec"]["model"]["version"] = "4"

    assert _identity(other) == base


def test_the_job_name_carries_the_object_name_and_the_run_identity() -> None:
    md, _ = deployment_of(name="fraud", spec=_tuned()["spec"])

    assert finetune.job_name(md, "abcdef0123") == "fraud-ft-abcdef0123"


# output_location.

@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("pvc://models/clf", ("/mnt/pvc/models", "clf")),
        ("pvc://models/team/a/clf", ("/mnt/pvc/models/team/a", "clf")),
        ("pvc://models/team/clf/", ("/mnt/pvc/models/team", "clf")),
    ],
)
def test_the_output_location_is_the_folder_holding_the_model_folder(
    uri: str, expected: tuple[str, str],
) -> None:
    assert finetune.output_location(uri) == expected


@pytest.mark.parametrize("uri", ["s3://bucket/clf", "file:///models/clf",
                                 "https://example.test/clf.onnx"])
def test_the_output_location_refuses_uris_a_job_cannot_write(uri: str) -> None:
    with pytest.raises(finetune.FineTuningUnsupported, match="must be a pvc:// URI") as info:
        finetune.output_location(uri)

    assert repr(uri) in str(info.value)


@pytest.mark.parametrize("uri", ["pvc://models", "pvc://models/", "pvc://models//"])
def test_the_output_location_refuses_a_claim_without_a_folder(uri: str) -> None:
    with pytest.raises(finetune.FineTuningUnsupported, match=r"pvc://<claim>/<folder>"):
        finetune.output_location(uri)


# The Job.

def test_the_trainer_gets_its_whole_configuration_as_one_json_document() -> None:
    job = _job(_tuned(storage_uri="pvc://models/team/clf"), _run(version=5),
               serving_metrics={"f1": 0.93})

    config = json.loads(_env(job)["MODELSHIP_TRAINER_CONFIG"])

    assert config == {
        "modelName": "clf",
        "version": 5,
        "outputRepository": "/mnt/pvc/models/team",
        "fineTuning": FINE_TUNING,
        "servingMetrics": {"f1": 0.93},
    }


def test_without_serving_metrics_the_configuration_has_none() -> None:
    config = json.loads(_env(_job(_tuned()))["MODELSHIP_TRAINER_CONFIG"])

    assert "servingMetrics" not in config


def test_the_trainer_knows_the_pvc_root_and_has_a_writable_home() -> None:
    env = _env(_job(_tuned()))

    assert env["MODELSHIP_PVC_ROOT"] == "/mnt/pvc"
    assert env["HOME"] == "/tmp"
    assert "WORLD_SIZE" not in env


def test_the_model_claim_is_mounted_writable_and_the_others_read_only() -> None:
    raw = _tuned(
        storage_uri="pvc://models/clf",
        dataset={"uri": "pvc://data/train.csv"},
        baseModel={"architecture": "torchscript", "uri": "pvc://weights/base.pt"},
    )

    job = _job(raw)

    assert _trainer(job)["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "pvc-0", "mountPath": "/mnt/pvc/models", "readOnly": False},
        {"name": "pvc-1", "mountPath": "/mnt/pvc/data", "readOnly": True},
        {"name": "pvc-2", "mountPath": "/mnt/pvc/weights", "readOnly": True},
    ]
    assert job["spec"]["template"]["spec"]["volumes"] == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "models"}},
        {"name": "pvc-1", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "pvc-2", "persistentVolumeClaim": {"claimName": "weights"}},
    ]


def test_a_claim_named_twice_is_mounted_once_and_writable_if_it_holds_the_model() -> None:
    raw = _tuned(dataset={"uri": "pvc://models/data/train.csv"},
                 baseModel={"architecture": "mlp", "uri": "pvc://models/clf/1"})

    mounts = _trainer(_job(raw))["volumeMounts"]

    assert mounts == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "pvc-0", "mountPath": "/mnt/pvc/models", "readOnly": False},
    ]


def test_every_volume_name_is_a_dns_label_whatever_the_claim_is_called() -> None:
    import re

    raw = _tuned(storage_uri="pvc://models.v2/clf",
                 dataset={"uri": f"pvc://{'d' * 70}/train.csv"})

    volumes = _job(raw)["spec"]["template"]["spec"]["volumes"]

    for volume in volumes:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", volume["name"]), volume["name"]
        assert len(volume["name"]) <= 63, volume["name"]


def test_a_trainer_exit_code_two_fails_the_job_and_disruptions_are_not_counted() -> None:
    spec = _job(_tuned())["spec"]

    assert spec["backoffLimit"] == 1
    assert spec["podFailurePolicy"] == {"rules": [
        {"action": "FailJob", "onExitCodes": {
            "containerName": "trainer", "operator": "In", "values": [2]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_one_worker_is_a_plain_job_without_ports_or_a_subdomain() -> None:
    job = _job(_tuned())

    assert "completionMode" not in job["spec"]
    assert "subdomain" not in job["spec"]["template"]["spec"]
    assert _trainer(job)["ports"] == []


def test_several_workers_make_an_indexed_job_that_finds_rank_zero_by_name() -> None:
    job = _job(_tuned(workers=3), _run(spec_hash="aaaabbbbcc"))

    assert (job["spec"]["completionMode"], job["spec"]["completions"],
            job["spec"]["parallelism"]) == ("Indexed", 3, 3)
    assert job["spec"]["template"]["spec"]["subdomain"] == "clf-ft-aaaabbbbcc"
    env = _env(job)
    assert (env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"]) == (
        "3", "clf-ft-aaaabbbbcc-0.clf-ft-aaaabbbbcc", "29500")
    assert _trainer(job)["ports"] == [{"name": "dist", "containerPort": 29500}]


def test_several_workers_get_a_headless_service_named_after_the_job() -> None:
    md, raw = deployment_of(**_as_kwargs(_tuned(workers=2)))

    service = finetune.workers_service(md, raw, _run(spec_hash="aaaabbbbcc"))

    assert service is not None
    assert service["metadata"]["name"] == "clf-ft-aaaabbbbcc"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [{"name": "dist", "port": 29500, "targetPort": 29500}]
    assert service["spec"]["selector"]["modelship.io/finetune-run"] == "aaaabbbbcc"


def test_the_workers_service_selects_only_pods_of_its_own_deployment() -> None:
    md, raw = deployment_of(**_as_kwargs(_tuned(workers=2)))

    service = finetune.workers_service(md, raw, _run())

    assert service is not None
    assert service["spec"]["selector"].get("modelship.io/deployment") == "clf"


def test_one_worker_needs_no_service() -> None:
    md, raw = deployment_of(**_as_kwargs(_tuned()))

    assert finetune.workers_service(md, raw, _run()) is None


def test_no_fine_tuning_needs_no_service() -> None:
    md, raw = deployment_of()

    assert finetune.workers_service(md, raw, _run()) is None


def test_the_job_is_owned_labelled_and_says_which_version_it_produces() -> None:
    job = _job(_tuned(), _run(version=7, spec_hash="0123456789"))

    assert job["metadata"]["name"] == "clf-ft-0123456789"
    assert job["metadata"]["annotations"]["modelship.io/produces-version"] == "7"
    assert job["metadata"]["ownerReferences"][0]["uid"] == UID
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "fine-tuning"
    assert job["metadata"]["labels"]["modelship.io/finetune-run"] == "0123456789"
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert meta.HASH_ANNOTATION in job["metadata"]["annotations"]


def test_the_trainer_runs_locked_down_with_the_trainer_image() -> None:
    job = _job(_tuned())
    pod, trainer = job["spec"]["template"]["spec"], _trainer(job)

    assert trainer["image"] == "registry.test/modelship-trainer:9.9.9"
    assert trainer["command"] == ["modelship-trainer"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert trainer["securityContext"]["readOnlyRootFilesystem"] is True
    assert trainer["securityContext"]["allowPrivilegeEscalation"] is False
    assert trainer["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert trainer["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["automountServiceAccountToken"] is False


def test_trainer_resources_default_and_limits_alone_give_equal_requests() -> None:
    assert _trainer(_job(_tuned()))["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}

    limited = _job(_tuned(resources={"limits": {"cpu": "4", "memory": "8Gi"}}))

    assert _trainer(limited)["resources"] == {
        "requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}


def test_the_fine_tuning_example_builds_a_job_writing_into_its_own_claim() -> None:
    md, raw = example("breast-cancer-finetune.yaml")
    spec_hash = finetune.run_identity(md, raw)
    run = finetune.Run(job_name=finetune.job_name(md, spec_hash), spec_hash=spec_hash,
                       version=2)

    job = finetune.job(md, raw, SETTINGS, run)

    config = json.loads(_env(job)["MODELSHIP_TRAINER_CONFIG"])
    assert (config["modelName"], config["outputRepository"], config["version"]) == (
        "breast-cancer-tuned", "/mnt/pvc/models", 2)
    assert _trainer(job)["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                          "limits": {"memory": "2Gi"}}
    assert len(job["metadata"]["name"]) <= 63
