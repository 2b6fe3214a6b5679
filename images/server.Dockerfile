# syntax=docker/dockerfile:1
# Modelship's serving image: the ONNX Runtime model server (the entrypoint), the
# ensemble router and the storage initializer, which the operator starts by
# overriding the command (modelship-router, modelship-storage-initializer).
# Build from the repository root:
#   docker build -f images/server.Dockerfile -t <registry>/modelship-server:<tag> .
# Base images are pinned to exact releases; pin them by digest too (name:tag@sha256:...)
# where the registry that builds them can resolve one.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY operator/ operator/
COPY serving/ serving/
# Bytecode is compiled here: the root filesystem is read-only where these run.
RUN python -m venv /opt/modelship \
    && /opt/modelship/bin/pip install --no-cache-dir /src \
    && /opt/modelship/bin/python -m compileall -q /opt/modelship/lib

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="modelship-server" \
      org.opencontainers.image.description="Modelship's model server, router and storage initializer" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/modelship /opt/modelship
ENV PATH=/opt/modelship/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /mnt/models
# HTTP, gRPC and metrics, as tritonserver numbers them.
EXPOSE 8000 8001 8002
ENTRYPOINT ["modelship-server"]
CMD ["--model-repository", "/mnt/models"]
