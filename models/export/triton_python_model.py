"""Triton python-backend model: runs the `model.onnx` beside it with ONNX Runtime.

`labelgate export triton-repo --flavor python` copies this file as `<model>/1/model.py`, for
machines without a GPU or without Triton's onnxruntime backend. It imports only numpy,
onnxruntime and Triton's own `triton_python_backend_utils`, from the Python environment the
python-backend stub runs in (see docs/triton.md).

Triton's dynamic batcher hands `execute` several requests at once; their rows run as one ONNX
Runtime call and every request gets exactly one response. Requests whose shapes differ run
separately, and a failing group fails only its own requests. A request that fails the input
checks gets INVALID_ARG (the caller's mistake); any other failure is INTERNAL.
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        threads = int(parameters.get("onnxruntime_intra_op_threads", {}).get("string_value", "0"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            device = int(args.get("model_instance_device_id", 0))
            providers = [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = onnxruntime.InferenceSession(path, options, providers=providers)
        self.input_names = [tensor.name for tensor in self.session.get_inputs()]
        self.output_names = [tensor.name for tensor in self.session.get_outputs()]

    def execute(self, requests):
        responses = [None] * len(requests)
        groups = {}
        for index, request in enumerate(requests):
            try:
                arrays = self._inputs(request)
            except (ValueError, TypeError) as error:
                responses[index] = _error(error, pb_utils.TritonError.INVALID_ARG)
                continue
            except Exception as error:
                responses[index] = _error(error)
                continue
            shapes = tuple((name, array.shape[1:], array.dtype.str) for name, array in arrays.items())
            groups.setdefault(shapes, []).append((index, arrays, set(request.requested_output_names())))
        for members in groups.values():
            try:
                feed = {name: np.concatenate([arrays[name] for _, arrays, _ in members]) for name in self.input_names}
                outputs = self.session.run(self.output_names, feed)
            except Exception as error:
                for index, _, _ in members:
                    responses[index] = _error(error)
                continue
            start = 0
            for index, arrays, wanted in members:
                stop = start + len(arrays[self.input_names[0]])
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(output[start:stop]))
                    for name, output in zip(self.output_names, outputs)
                    if not wanted or name in wanted
                ]
                responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = stop
        return responses

    def _inputs(self, request):
        arrays = {}
        for name in self.input_names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input tensor {name!r}")
            arrays[name] = tensor.as_numpy()
        rows = {len(array) for array in arrays.values()}
        if len(rows) != 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(rows)}")
        return arrays


def _error(error, code=None):
    """A failed response; `code` None = INTERNAL (TritonError's default)."""
    message = f"{type(error).__name__}: {error}"
    triton_error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=triton_error)
