# syntax=docker/dockerfile:1
# labelgate server image, two targets. Build from the repository root:
#   docker build -f deploy/docker/server.Dockerfile --target cpu  -t labelgate:cpu  .
#   docker build -f deploy/docker/server.Dockerfile --target cuda -t labelgate:cuda .
# Weights are mounted at /weights (see `labelgate weights fetch --dir weights ...`); try it without
# any with `docker run labelgate:cpu serve --demo-weights /tmp/demo` (random weights).
# With Triton serving the models (--backend triton), labelgate itself needs no GPU: use `cpu`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Where pip finds torch and torchvision. PyPI's wheels carry the CUDA libraries and also run on
# CPUs; for a much smaller `cpu` image, point this at a CPU-only wheel index.
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/labelgate/bin:$PATH
RUN python -m venv /opt/labelgate \
 && pip install setuptools==80.9.0 wheel==0.45.1 \
 && pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1 \
 && SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0
WORKDIR /src
COPY clients/python clients/python
COPY pyproject.toml README.md ./
COPY server server
COPY models models
RUN pip install ./clients/python "./[triton]"

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 labelgate
COPY --from=build /opt/labelgate /opt/labelgate
ENV PATH=/opt/labelgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    LABELGATE_HOST=0.0.0.0 \
    LABELGATE_PORT=50051 \
    LABELGATE_METRICS_HOST=0.0.0.0 \
    LABELGATE_METRICS_PORT=9464 \
    LABELGATE_SAM2_CHECKPOINT=/weights/sam2.1_hiera_tiny.pt \
    LABELGATE_GDINO_MODEL=/weights/grounding-dino-tiny
WORKDIR /home/labelgate
USER 10001
EXPOSE 50051 9464
# gRPC health protocol: SERVING once the models are loaded and warmed (loading can take minutes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-m", "labelgate.server.health_probe"]
ENTRYPOINT ["labelgate"]
CMD ["serve"]

FROM runtime AS cuda
# Needs the NVIDIA container toolkit on the host (`--gpus all`, or the compose/k8s GPU requests).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LABELGATE_DEVICE=cuda \
    LABELGATE_DTYPE=bf16

FROM runtime AS cpu
ENV LABELGATE_DEVICE=cpu
