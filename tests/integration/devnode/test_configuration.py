"""Environment, ConfigMaps, Secrets, the downward API and volumes reach the process."""

from __future__ import annotations

import json

import pytest

from tests.harness.controlplane import ControlPlane
from tests.harness.devnode import DevNode
from tests.integration.devnode.conftest import (
    OPERATOR_IMAGE,
    SERVER_IMAGE,
    TRAINER_IMAGE,
    apply,
    terminated,
)

pytestmark = pytest.mark.cluster

# The container reports what it sees as its termination message: JSON of the
# variables and files asked for, so the test reads it from the pod's status.
REPORT = (
    "import json, os, sys; "
    "names = sys.argv[1].split(','); files = sys.argv[2].split(',') if sys.argv[2] else []; "
    "out = {'env': {n: os.environ.get(n) for n in names}, 'files': {}}; "
    "out['files'] = {f: open(f).read() if os.path.exists(f) else None for f in files}; "
    "out['writable'] = {f: os.access(os.path.dirname(f), os.W_OK) for f in files}; "
    "open('/dev/termination-log', 'w').write(json.dumps(out))"
)


def report(plane: ControlPlane, namespace: str, pod: str) -> dict:
    state = terminated(plane, namespace, pod, "main")
    assert state["exitCode"] == 0, state
    return json.loads(state["message"])


def test_env_comes_from_values_config_maps_secrets_and_the_downward_api(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    names = ("PLAIN,EXPANDED,FROM_CM,FROM_SECRET,MISSING_OPTIONAL,POD_NAME,POD_NAMESPACE,POD_UID,"
             "NODE,ACCOUNT,POD_IP,INDEX,TEAM,CPU_LIMIT,CPU_REQUEST_MILLI,MEMORY_MI,CM_A,"
             "S_token,MODELSHIP_BIND_ADDRESS,MODELSHIP_TERMINATION_LOG,KUBERNETES_SERVICE_HOST")
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{level: debug, CM_A: from-env-from}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{token: s3cr3t}}
---
apiVersion: v1
kind: Pod
metadata:
  name: env
  labels: {{team: vision}}
  annotations: {{batch.kubernetes.io/job-completion-index: "2"}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {TRAINER_IMAGE}
    command: [python, -c, "{REPORT}", "{names}", ""]
    resources:
      requests: {{cpu: 250m, memory: 64Mi}}
      limits: {{cpu: "1500m", memory: 128Mi}}
    envFrom:
    - configMapRef: {{name: settings}}
    - secretRef: {{name: creds}}
      prefix: S_
    - configMapRef: {{name: absent, optional: true}}
    env:
    - {{name: PLAIN, value: hello}}
    - {{name: EXPANDED, value: "$(PLAIN)-world-$$(PLAIN)"}}
    - name: FROM_CM
      valueFrom: {{configMapKeyRef: {{name: settings, key: level}}}}
    - name: FROM_SECRET
      valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}
    - name: MISSING_OPTIONAL
      valueFrom: {{secretKeyRef: {{name: creds, key: nope, optional: true}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: POD_NAMESPACE
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    - name: POD_UID
      valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}
    - name: NODE
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
    - name: ACCOUNT
      valueFrom: {{fieldRef: {{fieldPath: spec.serviceAccountName}}}}
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: INDEX
      valueFrom:
        fieldRef: {{fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    - name: TEAM
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['team']"}}}}
    - name: CPU_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: "1"}}}}
    - name: CPU_REQUEST_MILLI
      valueFrom: {{resourceFieldRef: {{resource: requests.cpu, divisor: 1m}}}}
    - name: MEMORY_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
""")
    env = report(control_plane, namespace, "env")["env"]
    pod = json.loads(control_plane.kubectl("get", "-n", namespace, "pod", "env",
                                           "-o", "json").stdout)
    assert env == {
        "PLAIN": "hello",
        "EXPANDED": "hello-world-$(PLAIN)",
        "FROM_CM": "debug",
        "FROM_SECRET": "s3cr3t",
        "MISSING_OPTIONAL": None,
        "POD_NAME": "env",
        "POD_NAMESPACE": namespace,
        "POD_UID": pod["metadata"]["uid"],
        "NODE": dev_node.node_name,
        "ACCOUNT": "default",
        "POD_IP": pod["status"]["podIP"],
        "INDEX": "2",
        "TEAM": "vision",
        "CPU_LIMIT": "2",
        "CPU_REQUEST_MILLI": "250",
        "MEMORY_MI": "128",
        "CM_A": "from-env-from",
        "S_token": "s3cr3t",
        "MODELSHIP_BIND_ADDRESS": pod["status"]["podIP"],
        "MODELSHIP_TERMINATION_LOG": "/dev/termination-log",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
    }


def test_a_limit_that_is_not_set_reads_as_the_nodes_allocatable(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: nolimit}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: [python, -c, "{REPORT}", MODELSHIP_CPU_LIMIT, ""]
    env:
    - name: MODELSHIP_CPU_LIMIT
      valueFrom:
        resourceFieldRef: {{containerName: main, resource: limits.cpu, divisor: "1"}}
""")
    assert report(control_plane, namespace, "nolimit")["env"] == {"MODELSHIP_CPU_LIMIT": "64"}


def test_config_map_secret_and_claim_volumes_appear_at_their_mount_paths(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    (dev_node.pvc_path(namespace, "models") / "model.txt").write_text("weights")
    files = ("/etc/modelship/model-config/config.pbtxt,/etc/modelship/model-config/sub/other,"
             "/var/run/creds/token,/mnt/pvc/models/model.txt,/mnt/models/written")
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: model-config}}
data: {{config.pbtxt: 'name: "iris"', other: x}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{token: s3cr3t}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: models}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: volumes}}
spec:
  restartPolicy: Never
  initContainers:
  - name: write
    image: {SERVER_IMAGE}
    command: [python, -c, "open('/mnt/models/written', 'w').write('by init')"]
    volumeMounts: [{{name: repository, mountPath: /mnt/models}}]
  containers:
  - name: main
    image: {SERVER_IMAGE}
    command: [python, -c, "{REPORT}", "", "{files}"]
    volumeMounts:
    - {{name: config, mountPath: /etc/modelship/model-config, readOnly: true}}
    - {{name: creds, mountPath: /var/run/creds}}
    - {{name: source, mountPath: /mnt/pvc/models, readOnly: true}}
    - {{name: repository, mountPath: /mnt/models}}
  volumes:
  - name: config
    configMap:
      name: model-config
      items: [{{key: config.pbtxt, path: config.pbtxt}}, {{key: other, path: sub/other}}]
  - name: creds
    secret: {{secretName: creds, defaultMode: 0400}}
  - name: source
    persistentVolumeClaim: {{claimName: models, readOnly: true}}
  - name: repository
    emptyDir: {{}}
""")
    seen = report(control_plane, namespace, "volumes")
    assert seen["files"] == {
        "/etc/modelship/model-config/config.pbtxt": 'name: "iris"',
        "/etc/modelship/model-config/sub/other": "x",
        "/var/run/creds/token": "s3cr3t",
        "/mnt/pvc/models/model.txt": "weights",
        "/mnt/models/written": "by init",
    }
    # Read-only mounts stay read-only; an emptyDir is writable.
    assert seen["writable"]["/etc/modelship/model-config/config.pbtxt"] is False
    assert seen["writable"]["/mnt/pvc/models/model.txt"] is False
    assert seen["writable"]["/mnt/models/written"] is True
    claim = json.loads(control_plane.kubectl("get", "-n", namespace, "pvc", "models",
                                             "-o", "json").stdout)
    assert claim["status"]["phase"] == "Bound"


def test_a_pod_talks_to_the_api_server_in_cluster_as_its_service_account(
    control_plane: ControlPlane, dev_node: DevNode, namespace: str
) -> None:
    # What the operator does when it runs as a pod: in-cluster config from the
    # environment and the projected service-account token.
    script = (
        "from kubernetes import client, config; config.load_incluster_config(); "
        "review = client.AuthenticationV1Api().create_self_subject_review("
        "client.V1SelfSubjectReview()); "
        "open('/dev/termination-log', 'w').write(review.status.user_info.username)"
    )
    apply(control_plane, namespace, f"""
apiVersion: v1
kind: Pod
metadata: {{name: incluster}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {OPERATOR_IMAGE}
    command: {json.dumps(["python", "-c", script])}
""")
    state = terminated(control_plane, namespace, "incluster", "main")
    assert state["exitCode"] == 0, state
    assert state["message"] == f"system:serviceaccount:{namespace}:default"
