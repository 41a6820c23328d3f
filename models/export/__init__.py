"""Export for serving elsewhere: ONNX graphs (`onnx`), TensorRT engines (`tensorrt`), `labelgate export` (`cli`)."""
