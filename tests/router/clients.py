"""tritonclient calls the router tests make: to members directly, and to routers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype


def infer(protocol: str, url: str, model: str, inputs: Mapping[str, np.ndarray],
          outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run `model` at `url` with tritonclient's HTTP or gRPC client; every output asked."""
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(url)
    try:
        tensors = []
        for name, array in inputs.items():
            tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        if outputs is None:
            metadata = client.get_model_metadata(model) if protocol == "http" else \
                client.get_model_metadata(model, as_json=True)
            outputs = [o["name"] for o in metadata["outputs"]]
        result = client.infer(model, tensors,
                              outputs=[module.InferRequestedOutput(n) for n in outputs])
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()
