"""The node's rules on their own: expansion, images, phases, resources, hosts files.

No cluster needed: these are the pure functions the cluster tests rest on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.harness.devnode import images
from tests.harness.devnode.downward import ContainerConfigError, field_value, resource_value
from tests.harness.devnode.environment import expand
from tests.harness.devnode.network import NamedPod, render_hosts
from tests.harness.devnode.status import ContainerRecord, phase, waiting

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "1"),
    ("x-$(A)-$(B)", "x-1-two"),
    ("$$(A)", "$(A)"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$(A", "$(A"),
    ("cost $5", "cost $5"),
    ("$", "$"),
])
def test_expansion_follows_the_kubelets_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}) == expected


@pytest.mark.parametrize(("image", "name"), [
    ("ghcr.io/modelship/modelship-server:0.1.0", "modelship-server"),
    ("registry.local:5000/team/modelship-trainer:dev", "modelship-trainer"),
    ("ghcr.io/modelship/modelship-operator@sha256:" + "a" * 64, "modelship-operator"),
    ("modelship-server:test", "modelship-server"),
    ("modelship-router", "modelship-router"),
    ("nvcr.io/nvidia/tritonserver:25.10-py3", None),
    ("ghcr.io/someone/modelship-lookalike:1", None),
    ("python:3.11", None),
])
def test_only_modelships_images_are_runnable(image: str, name: str | None) -> None:
    assert images.image_name(image) == name
    assert images.can_run(image) is (name is not None)


def _final_stage(dockerfile: Path) -> dict[str, object]:
    stage = dockerfile.read_text().split("\nFROM ")[-1]
    # Join continuation lines, then read the instructions the node mirrors.
    lines = re.sub(r"\\\n\s*", " ", stage).splitlines()
    found: dict[str, object] = {"env": {}}
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = tuple(json.loads(rest))
        elif word == "WORKDIR":
            found["WORKDIR"] = rest.strip()
        elif word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                found["env"][key] = value  # type: ignore[index]
    return found


@pytest.mark.parametrize("name", ["modelship-server", "modelship-trainer", "modelship-operator"])
def test_image_defaults_mirror_the_dockerfiles(name: str) -> None:
    stage = _final_stage(REPO / "images" / f"{name.removeprefix('modelship-')}.Dockerfile")
    defaults = images.IMAGE_DEFAULTS[name]
    assert defaults.entrypoint == stage["ENTRYPOINT"]
    assert defaults.cmd == stage.get("CMD", ())
    assert defaults.workdir == stage.get("WORKDIR")
    env = dict(stage["env"])  # type: ignore[call-overload]
    env.pop("PATH")
    assert env == images.IMAGE_ENV


def test_command_replaces_the_entrypoint_and_args_replace_cmd() -> None:
    image = "modelship-server:test"
    assert images.effective_argv(image, None, None) == [
        "modelship-server", "--model-repository", "/mnt/models"]
    assert images.effective_argv(image, None, ["--http-port=9000"]) == [
        "modelship-server", "--http-port=9000"]
    assert images.effective_argv(image, ["python"], None) == ["python"]


def _record(state: dict, *, last: dict | None = None, init: bool = False) -> ContainerRecord:
    return ContainerRecord(name="c", image="i", init=init, state=state, last_state=last or {})


RUNNING = {"running": {"startedAt": "t"}}
DONE = {"terminated": {"exitCode": 0}}
FAILED = {"terminated": {"exitCode": 2}}


@pytest.mark.parametrize(("init", "main", "policy", "expected"), [
    ([], [_record(waiting("ContainerCreating"))], "Always", "Pending"),
    ([], [_record(RUNNING)], "Always", "Running"),
    ([], [_record(DONE)], "Never", "Succeeded"),
    ([], [_record(FAILED)], "Never", "Failed"),
    ([], [_record(FAILED)], "OnFailure", "Running"),
    ([], [_record(DONE), _record(FAILED)], "Never", "Failed"),
    ([], [_record(waiting("CrashLoopBackOff"), last=FAILED)], "Always", "Running"),
    ([], [_record(RUNNING), _record(waiting("ImageCannotRun"))], "Always", "Pending"),
    ([_record(RUNNING, init=True)], [_record(waiting("PodInitializing"))], "Always", "Pending"),
    ([_record(FAILED, init=True)], [_record(waiting("PodInitializing"))], "Never", "Failed"),
    ([_record(waiting("CrashLoopBackOff"), last=FAILED, init=True)],
     [_record(waiting("PodInitializing"))], "Always", "Pending"),
    ([_record(DONE, init=True)], [_record(RUNNING)], "Always", "Running"),
])
def test_pod_phase_follows_the_kubelets_rules(
    init: list[ContainerRecord], main: list[ContainerRecord], policy: str, expected: str
) -> None:
    assert phase(init, main, policy) == expected


def test_a_deleted_pod_ends_succeeded_only_if_every_container_exited_zero() -> None:
    assert phase([], [_record(DONE)], "Always", terminal=True) == "Succeeded"
    assert phase([], [_record({"terminated": {"exitCode": 143}})], "Always",
                 terminal=True) == "Failed"


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                 "labels": {"app": "x", "b": "2"},
                 "annotations": {"batch.kubernetes.io/job-completion-index": "3"}},
    "spec": {"nodeName": "n", "serviceAccountName": "sa", "containers": [
        {"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"},
                                    "limits": {"cpu": "2500m"}}}]},
    "status": {"podIP": "127.0.1.9"},
}


def test_field_references_read_metadata_spec_and_status() -> None:
    assert field_value(POD, "metadata.annotations['batch.kubernetes.io/job-completion-index']") \
        == "3"
    assert field_value(POD, "metadata.labels['missing']") == ""
    assert field_value(POD, "status.podIP") == "127.0.1.9"
    assert field_value(POD, "metadata.labels") == 'app="x"\nb="2"'
    with pytest.raises(ContainerConfigError):
        field_value(POD, "spec.containers")


@pytest.mark.parametrize(("resource", "divisor", "expected"), [
    ("limits.cpu", "1", "3"),           # 2.5 cores round up
    ("limits.cpu", "1m", "2500"),
    ("requests.cpu", "1m", "100"),
    ("requests.memory", "1Mi", "1024"),
    ("limits.memory", "1Gi", "256"),    # no limit: the node's allocatable
    ("requests.ephemeral-storage", "1", "0"),
])
def test_resource_references_round_up_by_their_divisor(
    resource: str, divisor: str, expected: str
) -> None:
    ref = {"resource": resource, "divisor": divisor}
    assert resource_value(POD, ref, default_container="c",
                          allocatable={"cpu": "64", "memory": "256Gi"}) == expected


def test_hosts_files_name_services_headless_members_and_pods_with_subdomains() -> None:
    me = NamedPod("a", "client", "127.0.1.1", "client", "", {}, True)
    worker = NamedPod("a", "train-0-x", "127.0.1.2", "train-0", "workers", {"job": "t"}, True)
    other_ns = NamedPod("b", "db", "127.0.1.3", "db", "", {"app": "db"}, True)
    services = [
        ({"metadata": {"namespace": "a", "name": "web"}, "spec": {"clusterIP": "10.0.0.5"}},
         "127.1.1.5"),
        ({"metadata": {"namespace": "b", "name": "db"}, "spec": {"clusterIP": "10.0.0.6"}},
         "127.1.1.6"),
        ({"metadata": {"namespace": "a", "name": "workers"},
          "spec": {"clusterIP": "None", "selector": {"job": "t"}}}, None),
    ]
    text = render_hosts(me, services=services, pods=[me, worker, other_ns])
    lines = {line.split("\t")[0]: line.split("\t")[1].split() for line in text.splitlines()
             if "\t" in line and not line.startswith("#")}
    assert "web" in lines["127.1.1.5"] and "web.a.svc.cluster.local" in lines["127.1.1.5"]
    # Short names only for the pod's own namespace.
    assert "db" not in lines["127.1.1.6"] and "db.b" in lines["127.1.1.6"]
    assert "train-0.workers.a.svc.cluster.local" in lines["127.0.1.2"]
    assert "train-0.workers" in lines["127.0.1.2"]
    assert "workers.a.svc.cluster.local" in text
    assert lines["127.0.1.1"] == ["client"]
