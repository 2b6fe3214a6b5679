"""A development node for the local control plane: a test harness, never shipped.

Kubernetes on this machine has no kubelet and no container engine. This
package registers a Node and runs the pods bound to it whose containers use
Modelship's images as local processes (one loopback address per pod, volumes
bind-mounted at their container paths in a private mount namespace), reports
their lifecycle to the API server, and plays kube-proxy and cluster DNS for
them. See ``agent`` for the overview.

    with DevNode(control_plane.kubeconfig, tmp_path) as node:
        ...
        node.service_address("ns", "my-service")   # reachable from the test

or ``python -m tests.harness.devnode --kubeconfig K --root DIR``.
"""

from tests.harness.devnode.agent import DEFAULT_NODE_NAME, NodeAgent
from tests.harness.devnode.container import Backoff
from tests.harness.devnode.devnode import DevNode, DevNodeError

__all__ = ["DEFAULT_NODE_NAME", "Backoff", "DevNode", "DevNodeError", "NodeAgent"]
