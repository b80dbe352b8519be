# syntax=docker/dockerfile:1
# One image for the operator (`assay operator`, the default) and the evaluation Jobs (`python -m assay.evaluator`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# Build assay's wheel (and wheels of its dependencies), then install them into a venv the final stage copies.
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/assay \
 && /opt/assay/bin/pip install --no-index --find-links /wheels assay \
 && /opt/assay/bin/pip uninstall --yes pip

# The lab image (`docker build --target lab`): the product plus assaylab (the LLM simulator and LiteLLM config
# writer the kind e2e runs in the cluster). Never what a production cluster runs.
FROM builder AS lab-builder
COPY lab ./lab
RUN pip wheel --wheel-dir /wheels ./lab \
 && /opt/assay/bin/python -m ensurepip \
 && /opt/assay/bin/python -m pip install --no-index --find-links /wheels assay-lab \
 && /opt/assay/bin/python -m pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS lab
ENV PATH=/opt/assay/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
COPY --from=lab-builder /opt/assay /opt/assay
USER 65532:65532
ENTRYPOINT ["assay"]
CMD ["operator"]

# The product image: the default (last) stage.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/assay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=builder /opt/assay /opt/assay
# The restricted pod security standard's non-root user; the chart also sets it and mounts /tmp.
USER 65532:65532
ENTRYPOINT ["assay"]
CMD ["operator"]
