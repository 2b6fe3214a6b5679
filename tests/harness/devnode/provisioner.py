"""PersistentVolumes for claims, so pods that use PVCs can be scheduled at all.

The scheduler will not place a pod whose claim is unbound, and this control
plane has no storage provisioner. The node therefore answers every pending
claim with a hostPath PersistentVolume on ``<root>/pvc/<namespace>/<claim>``
(the same folder the pod's volume is bind-mounted from), pre-bound to the
claim; Kubernetes' own PV controller then binds the two. The volume keeps
the claim's storage class, access modes and requested size.

Data outlives the claim (the Retain policy): a test may fill a claim's folder
before the claim exists. A released volume the node made is deleted, so the
next claim of the same name gets a fresh volume on the same folder.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from tests.harness.devnode.kubeapi import JSON, KubeApi, KubeApiError, ignore_not_found
from tests.harness.devnode.node import NODE_LABEL
from tests.harness.devnode.volumes import claim_folder

log = logging.getLogger(__name__)


def volume_name(claim: JSON) -> str:
    return f"devnode-{claim['metadata']['uid']}"


def volume_for(claim: JSON, pvc_root: Path, node: str) -> JSON:
    meta, spec = claim["metadata"], claim.get("spec", {})
    folder = claim_folder(pvc_root, meta["namespace"], meta["name"])
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "labels": {NODE_LABEL: node}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "storageClassName": spec.get("storageClassName") or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "namespace": meta["namespace"], "name": meta["name"],
                         "uid": meta["uid"]},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


class ClaimProvisioner:
    """Handles PVC and PV events (from informers) by creating and deleting volumes."""

    def __init__(self, api: KubeApi, pvc_root: Path, node: str) -> None:
        self.api = api
        self.pvc_root = pvc_root
        self.node = node
        self._tasks: set[asyncio.Task[None]] = set()
        self._made: set[str] = set()

    def on_claim(self, kind: str, claim: JSON) -> None:
        spec, status = claim.get("spec", {}), claim.get("status", {})
        if kind == "DELETED" or spec.get("volumeName") or status.get("phase") not in (
                None, "Pending"):
            return
        if claim["metadata"].get("deletionTimestamp") or volume_name(claim) in self._made:
            return
        self._made.add(volume_name(claim))
        self._spawn(self._create(claim))

    def on_volume(self, kind: str, volume: JSON) -> None:
        if kind != "DELETED" and volume.get("status", {}).get("phase") == "Released":
            self._spawn(self._delete(volume["metadata"]["name"]))

    def _spawn(self, coro) -> None:  # noqa: ANN001 - a coroutine
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, claim: JSON) -> None:
        meta = claim["metadata"]
        try:
            await self.api.create("/api/v1/persistentvolumes",
                                  volume_for(claim, self.pvc_root, self.node))
            log.info("Provisioned a volume for claim %s/%s.", meta["namespace"], meta["name"])
        except KubeApiError as exc:
            if not exc.conflict:
                self._made.discard(volume_name(claim))
                log.warning("Provisioning claim %s/%s failed: %s", meta["namespace"],
                            meta["name"], exc)

    async def _delete(self, name: str) -> None:
        try:
            await ignore_not_found(self.api.delete(f"/api/v1/persistentvolumes/{name}"))
        except KubeApiError as exc:
            log.warning("Deleting released volume %s failed: %s", name, exc)
            return
        log.info("Deleted released volume %s (its folder stays).", name)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
