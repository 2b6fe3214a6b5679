"""The minimal ONNX runtime class MLServer serves the benchmark models with.

MLServer imports it from the model's folder (model-settings.json names it as
"mlserver_runtime.OnnxRuntime"). It does what a user's first custom runtime
would: decode with NumpyCodec, run the session, encode with NumpyCodec. The
session gets the same thread count as Modelship's server.
"""

import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("BENCH_ORT_THREADS", "1"))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        results = self._session.run(self._outputs, feed)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, array)
                     for name, array in zip(self._outputs, results)],
        )
