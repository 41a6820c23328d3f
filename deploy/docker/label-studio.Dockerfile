# syntax=docker/dockerfile:1
# Label Studio ML backend for labelgate (clients/label_studio), talking to a labelgate server.
#   docker build -f deploy/docker/label-studio.Dockerfile -t labelgate-label-studio .
#   docker run -p 9090:9090 -e LABELGATE_SERVER=labelgate:50051 labelgate-label-studio
# Then add http://HOST:9090 as a model in the Label Studio project's settings.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/labelgate/bin:$PATH
RUN python -m venv /opt/labelgate
WORKDIR /src
COPY clients/python clients/python
COPY clients/label_studio clients/label_studio
RUN pip install ./clients/python ./clients/label_studio

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 labelgate
COPY --from=build /opt/labelgate /opt/labelgate
ENV PATH=/opt/labelgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LABELGATE_LS_HOST=0.0.0.0 \
    LABELGATE_LS_PORT=9090 \
    LABELGATE_SERVER=labelgate:50051
WORKDIR /home/labelgate
USER 10001
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['LABELGATE_LS_PORT']}/health\", timeout=3)"]
ENTRYPOINT ["python", "-m", "labelgate.label_studio"]
