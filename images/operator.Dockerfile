# syntax=docker/dockerfile:1
# The Modelship operator: `modelship run`, a Kopf operator, and nothing else
# running. Build from the repository root:
#   docker build -f images/operator.Dockerfile -t <registry>/modelship-operator:<tag> .
# Base images are pinned to exact releases; pin them by digest too (name:tag@sha256:...)
# where the registry that builds them can resolve one.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY operator/ operator/
COPY serving/ serving/
# One virtual environment holding the project and its pinned dependencies; the
# final stage copies it whole, leaving pip's build leftovers behind. Bytecode is
# compiled here: the root filesystem is read-only where the operator runs.
RUN python -m venv /opt/modelship \
    && /opt/modelship/bin/pip install --no-cache-dir /src \
    && /opt/modelship/bin/python -m compileall -q /opt/modelship/lib

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="modelship-operator" \
      org.opencontainers.image.description="Modelship's Kubernetes operator (Kopf)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/modelship /opt/modelship
ENV PATH=/opt/modelship/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric user, so the kubelet can prove runAsNonRoot without /etc/passwd.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["modelship"]
CMD ["run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]
