"""The pods Modelship's operator builds run on the development node unchanged.

The ConfigMap, Deployment and Service come from the operator's own builders
(without the owner reference: no ModelDeployment object exists here), so the
storage initializer, the pvc:// mount, the read-only repository, the probes
and the named ports are exactly what a real cluster gets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from modelship_operator.api.deployment import ModelDeployment
from modelship_operator.builders.children import desired_children
from modelship_operator.settings import Settings
from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.integration.devnode.conftest import apply, container_status, pods

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def save_plus_one(path: Path) -> None:
    """A four-feature ONNX model that adds one: y = x + 1."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "plus_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def test_the_operators_server_pod_serves_a_model_from_a_claim_through_its_service(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    save_plus_one(dev_node.pvc_path(namespace, "models") / "plusone" / "1" / "model.onnx")
    body = {
        "apiVersion": "modelship.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "plusone", "namespace": namespace,
                     "uid": "6b0c7f1e-0000-4000-8000-000000000001", "generation": 1},
        "spec": {"model": {"format": "onnx", "storageUri": "pvc://models/plusone"}},
    }
    md = ModelDeployment.from_k8s(body)
    wanted = {"ConfigMap", "Deployment", "Service"}
    manifests = [c.manifest for c in desired_children(md, body, Settings.from_env({}))
                 if c.manifest is not None and c.kind.kind in wanted]
    for manifest in manifests:
        manifest["metadata"].pop("ownerReferences", None)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "models"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    apply(control_plane, namespace, "\n---\n".join(json.dumps(m) for m in [claim, *manifests]))
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    service = next(m for m in manifests if m["kind"] == "Service")["metadata"]["name"]

    control_plane.kubectl("rollout", "status", "-n", namespace,
                          f"deployment/{deployment['metadata']['name']}", "--timeout=120s",
                          timeout=150)

    labels = deployment["spec"]["selector"]["matchLabels"]
    [pod] = pods(control_plane, namespace, ",".join(f"{k}={v}" for k, v in labels.items()))
    init = container_status(pod, "storage-initializer", init=True)["state"]["terminated"]
    assert init["exitCode"] == 0
    address = dev_node.service_address(namespace, service)
    client = httpclient.InferenceServerClient(f"{address}:8000")
    assert client.is_model_ready("plusone")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    request = httpclient.InferInput("x", list(x.shape), "FP32")
    request.set_data_from_numpy(x)
    answer = client.infer("plusone", [request])
    np.testing.assert_array_equal(answer.as_numpy("y"), x + 1)
    # gRPC goes through the same Service proxy, on its own port.
    assert grpcclient.InferenceServerClient(f"{address}:8001").is_model_ready("plusone")
