"""Triton Inference Server: the model repository writer and the backends that call Triton over gRPC."""
