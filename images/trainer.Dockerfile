# syntax=docker/dockerfile:1
# Modelship's fine-tuning image: the serving image's tools plus PyTorch and the
# dataset libraries (the `train` extra). The PyTorch wheel is the CUDA build,
# which also runs on CPU, so one image serves GPU and CPU Jobs.
# Build from the repository root:
#   docker build -f images/trainer.Dockerfile -t <registry>/modelship-trainer:<tag> .
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
    && /opt/modelship/bin/pip install --no-cache-dir "/src[train]" \
    && /opt/modelship/bin/python -m compileall -q /opt/modelship/lib

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="modelship-trainer" \
      org.opencontainers.image.description="Modelship's PyTorch fine-tuning Job" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/modelship /opt/modelship
ENV PATH=/opt/modelship/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["modelship-trainer"]
