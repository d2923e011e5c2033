"""Where an engine runs: in the server's process, or in a worker process.

A worker is a child process (``python -m bragi.runners.worker_main``) speaking a small
framed protocol over a Unix socket (:mod:`bragi.runners.framing`); the server's side
(:class:`WorkerProcess`) restarts it when it crashes or hangs. Torch engines run in
workers started from their own environments (:class:`EngineEnvs`,
``bragi backend install``). This package is imported inside workers too, so it
imports nothing that only the server has (no FastAPI, no settings).
"""

from bragi.runners.envs import EngineEnvs, EnvManifest
from bragi.runners.placement import RunnerConfig, backend_reference, create_engine, runs_in_worker
from bragi.runners.process import LiveWorkers, WorkerProcess, WorkerSpec
from bragi.runners.proxy import RemoteStream, WorkerSpeechToText, WorkerTextToSpeech

__all__ = [
    "EngineEnvs",
    "EnvManifest",
    "LiveWorkers",
    "RemoteStream",
    "RunnerConfig",
    "WorkerProcess",
    "WorkerSpec",
    "WorkerSpeechToText",
    "WorkerTextToSpeech",
    "backend_reference",
    "create_engine",
    "runs_in_worker",
]
