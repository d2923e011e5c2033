"""What a worker process inherits from the server: only what an engine needs to run.

A worker runs model code: SpeechBrain builds its model from ``hyperparams.yaml``, whose
tags call Python, and XTTS unpickles ``.pth`` files. So it gets none of the server's
secrets (``HF_TOKEN``, ``BRAGI_*`` settings such as a key passed in the environment,
cloud credentials): only the names below, for paths, locale, threads and the GPU. A
worker never downloads (the model is on disk before it starts), so the hub is offline
for it. This keeps secrets from model code; it is not a sandbox: the worker runs as the
server's user and can read what that user can.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["worker_environment"]

_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "LD_LIBRARY_PATH",
        "XDG_CACHE_HOME",
        "XDG_RUNTIME_DIR",
        "SYSTEMROOT",  # Windows needs it to start Python at all
    }
)
_PREFIXES = (
    "LC_",  # locale
    "PYTHON",  # the interpreter's own switches (the caller sets PYTHONPATH)
    "OMP_",  # thread pools: OpenMP, MKL, OpenBLAS, torch
    "MKL_",
    "KMP_",
    "OPENBLAS_",
    "TORCH_",
    "PYTORCH_",
    "CUDA_",  # the GPU: which devices, where CUDA is
    "NVIDIA_",
    "CUBLAS_",
    "CUDNN_",
    "ORT_",  # ONNX Runtime
)
#: Every library a worker may load looks for these before touching the network.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def worker_environment(server: Mapping[str, str]) -> dict[str, str]:
    """The environment for a worker, from the server's."""
    kept = {
        name: value
        for name, value in server.items()
        if name in _NAMES or name.startswith(_PREFIXES)
    }
    return kept | _OFFLINE | {"PYTHONUNBUFFERED": "1"}
