"""Which container images the development node can run, and what they run.

The node has no container engine: it runs a container as a local process of
this repository's virtual environment, which holds exactly what Modelship's
images hold (one ``modelship`` distribution and its console scripts). That is
honest only for Modelship's own images; anything else (Triton's, above all)
is refused with a waiting reason that says so.

``IMAGE_DEFAULTS`` and ``IMAGE_ENV`` mirror ENTRYPOINT, CMD, WORKDIR and ENV of
``images/*.Dockerfile`` (a test keeps them in step), so a container that sets
no ``command`` runs what the image would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CANNOT_RUN_REASON = "ImageCannotRun"
CANNOT_RUN_MESSAGE = (
    "the development node runs only Modelship's images (modelship-server, modelship-trainer, "
    "modelship-operator) as local processes; {image} needs a container engine"
)

_TAG = r"(?::[\w.-]+)?(?:@sha256:[0-9a-f]+)?$"
# <registry>/<path>/modelship-{server,trainer,operator}[:tag][@digest], or a bare modelship-*.
_REGISTRY_IMAGE = re.compile(
    r"^(?:[^/\s]+/)+(?P<name>modelship-(?:server|trainer|operator))" + _TAG)
_PLAIN_IMAGE = re.compile(r"^(?P<name>modelship-[a-z0-9][a-z0-9-]*)" + _TAG)


@dataclass(frozen=True)
class ImageDefaults:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    workdir: str | None = None


IMAGE_DEFAULTS: dict[str, ImageDefaults] = {
    "modelship-server": ImageDefaults(
        ("modelship-server",), ("--model-repository", "/mnt/models"), "/mnt/models"),
    "modelship-trainer": ImageDefaults(("modelship-trainer",), (), "/tmp"),
    "modelship-operator": ImageDefaults(
        ("modelship",), ("run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz")),
}
# ENV lines every image sets besides PATH (the node puts its own bin folder first).
IMAGE_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def image_name(image: str) -> str | None:
    """The Modelship image ``image`` names (``modelship-server``...), or None if not ours."""
    for pattern in (_REGISTRY_IMAGE, _PLAIN_IMAGE):
        match = pattern.match(image.strip())
        if match:
            return match.group("name")
    return None


def can_run(image: str) -> bool:
    return image_name(image) is not None


def cannot_run_message(image: str) -> str:
    return CANNOT_RUN_MESSAGE.format(image=image)


def effective_argv(image: str, command: list[str] | None, args: list[str] | None) -> list[str]:
    """Kubernetes' rule: ``command`` replaces ENTRYPOINT (dropping CMD); ``args`` replaces CMD."""
    defaults = IMAGE_DEFAULTS.get(image_name(image) or "", ImageDefaults(()))
    if command:
        return [*command, *(args or [])]
    return [*defaults.entrypoint, *(args if args else defaults.cmd)]


def default_workdir(image: str) -> str | None:
    defaults = IMAGE_DEFAULTS.get(image_name(image) or "")
    return defaults.workdir if defaults else None
