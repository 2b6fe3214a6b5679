"""Operator settings: every image from one registry and one tag."""

from __future__ import annotations

import dataclasses

import pytest

from modelship_operator import __version__
from modelship_operator.settings import Images, Settings


def test_an_empty_environment_gives_the_release_images_and_cluster_local() -> None:
    settings = Settings.from_env({})

    assert settings == Settings(
        images=Images(
            server=f"ghcr.io/modelship/modelship-server:{__version__}",
            trainer=f"ghcr.io/modelship/modelship-trainer:{__version__}",
            triton="nvcr.io/nvidia/tritonserver:25.10-py3",
        ),
        cluster_domain="cluster.local",
    )


def test_a_registry_and_a_tag_move_the_server_and_trainer_images_together() -> None:
    settings = Settings.from_env({
        "MODELSHIP_IMAGE_REGISTRY": "mirror.test:5000/ml/",
        "MODELSHIP_IMAGE_TAG": "dev",
    })

    assert settings.images.server == "mirror.test:5000/ml/modelship-server:dev"
    assert settings.images.trainer == "mirror.test:5000/ml/modelship-trainer:dev"
    assert settings.images.triton == "nvcr.io/nvidia/tritonserver:25.10-py3"


def test_the_triton_image_and_the_cluster_domain_are_set_on_their_own() -> None:
    settings = Settings.from_env({
        "MODELSHIP_TRITON_IMAGE": "mirror.test/tritonserver:25.01-py3",
        "MODELSHIP_CLUSTER_DOMAIN": "corp.internal",
    })

    assert settings.images.triton == "mirror.test/tritonserver:25.01-py3"
    assert settings.cluster_domain == "corp.internal"
    assert settings.images.server == f"ghcr.io/modelship/modelship-server:{__version__}"


def test_settings_cannot_be_changed_after_they_are_read() -> None:
    settings = Settings.from_env({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.cluster_domain = "x"  # type: ignore[misc]
