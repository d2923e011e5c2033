"""The server's side of a worker: start the child, exchange frames, restart it when it dies.

Each exchange is one request and its reply, under a per-worker lock, with a deadline
(``timeout`` per step, ``load_timeout`` for starting and loading). A worker that
closes its socket or misses a deadline is stopped (killed, if need be); the exchange
in flight and every stream opened on that run of the worker fail with
:class:`~bragi.errors.ModelUnavailableError` (503), and the next new request starts
a fresh worker. Streams are tagged with the run (``generation``) that opened them.
"""

from __future__ import annotations

import itertools
import logging
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bragi.errors import BragiError, ModelUnavailableError
from bragi.runners import codec
from bragi.runners.framing import Channel, ChannelClosed, Frame

__all__ = ["LiveWorkers", "WorkerProcess", "WorkerSpec"]

log = logging.getLogger(__name__)
Payload = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """How to start a worker, and the engine it loads."""

    label: str  # the model alias, in log lines and error messages
    python: str  # the interpreter: the engine environment's, or the server's own
    backend: str  # backend name, resolved through entry points in the worker ...
    reference: str | None  # ... unless a ``module:attr`` reference is given
    model_dir: Path
    device: str
    options: dict[str, Any]
    environment: Mapping[str, str] = field(repr=False)
    timeout: float = 120.0  # longest wait for one reply (a segment, a chunk)
    load_timeout: float = 600.0  # longest wait for the worker to start and load
    stop_timeout: float = 10.0  # grace before a worker that should exit is killed


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _OutputReader(threading.Thread):
    """Forwards the worker's stdout and stderr to the log; keeps the last lines."""

    def __init__(self, stream: IO[bytes], label: str):
        super().__init__(name=f"bragi-worker-output-{label}", daemon=True)
        self._stream = stream
        self._label = label
        self.tail: deque[str] = deque(maxlen=20)

    def run(self) -> None:
        with self._stream:
            for raw in iter(self._stream.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self.tail.append(line)
                    log.info("[%s] %s", self._label, line)


class LiveWorkers:
    """The worker processes one server started, so that shutdown can kill those still
    running when its deadline passes (loading, or stuck in a step)."""

    def __init__(self) -> None:
        self._workers: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, worker: WorkerProcess) -> None:
        with self._lock:
            self._workers.add(worker)

    def kill_all(self) -> int:
        """Kill every worker process still running; returns how many there were."""
        with self._lock:
            workers = list(self._workers)
        return sum(worker.kill() for worker in workers)


class WorkerProcess:
    """One worker process for one model, restarted on demand. Thread-safe."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.generation = 0  # which run of the worker process this is
        self.loaded: dict[str, Any] = {}  # the worker's reply to ``load``
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._output: _OutputReader | None = None
        self._cancels: deque[tuple[int, int]] = deque()
        self._stream_ids = itertools.count(1)
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> dict[str, Any]:
        """Start the worker and load the engine; returns the ``loaded`` reply."""
        with self._lock:
            self._start()
            return self.loaded

    def new_stream(self) -> int:
        return next(self._stream_ids)

    def call(
        self, header: dict[str, Any], payload: Payload = b"", *, generation: int | None = None
    ) -> tuple[Frame, int]:
        """One exchange; returns the reply and the worker run that answered it.

        A new request (``generation=None``) restarts a worker that has died; a step of an
        open stream (its ``generation``) fails with 503 if the run that opened it ended.
        """
        with self._lock:
            if self._closed:
                raise ModelUnavailableError(f"Model `{self.spec.label}` has been unloaded.")
            self._flush_cancels()
            if generation is None and not self._alive():
                self._restart()
            elif generation is not None and (generation != self.generation or not self._alive()):
                raise ModelUnavailableError(
                    f"The worker for model `{self.spec.label}` stopped while this request was "
                    "in progress; retry it."
                )
            frame = self._exchange(header, payload, self.spec.timeout)
            answered = self.generation
            self._flush_cancels()
            return frame, answered

    def cancel(self, stream: int, generation: int) -> None:
        """Close a stream in the worker, without waiting (safe on the event loop): sent
        by a short-lived thread if the worker is free, else after the reply in flight."""
        self._cancels.append((stream, generation))
        if not self._lock.locked():
            name = f"bragi-cancel-{self.spec.label}"
            threading.Thread(target=self._flush_if_free, name=name, daemon=True).start()

    def _flush_if_free(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                self._flush_cancels()
            finally:
                self._lock.release()

    def forget(self, stream: int, generation: int) -> None:
        """Queue a cancel without taking the lock (safe from a finalizer)."""
        self._cancels.append((stream, generation))

    def close(self) -> None:
        """Shut the worker down (the engine is closed, the process exits)."""
        with self._lock:
            killed, self._closed = self._closed, True
            if not killed and self._alive():
                try:
                    self._exchange({"op": "shutdown"}, b"", self.spec.timeout)
                except BragiError as exc:
                    log.warning("shutting down %s: %s", self.spec.label, exc.message)
            self._stop(kill=killed)

    def kill(self) -> bool:
        """Kill the process now, without the lock: the exchange in flight fails (503) and
        nothing restarts it. Returns whether a process was running."""
        self._closed = True
        process = self._process
        if process is None or process.poll() is not None:
            return False
        log.warning("killing the worker for %s (pid %d)", self.spec.label, process.pid)
        process.kill()
        return True

    # --- under the lock ---------------------------------------------------------

    def _alive(self) -> bool:
        process = self._process
        return process is not None and self._channel is not None and process.poll() is None

    def _start(self) -> None:
        spec = self.spec
        ours, theirs = socket.socketpair()
        command = [spec.python, "-m", "bragi.runners.worker_main"]
        command += ["--fd", str(theirs.fileno()), "--label", spec.label]
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(spec.environment),
                start_new_session=True,  # a Ctrl-C meant for the server is not the worker's
            )
        except OSError as exc:
            ours.close()
            raise ModelUnavailableError(
                f"Cannot start a worker for model `{spec.label}` with {spec.python}: "
                f"{exc.strerror or exc}"
            ) from None
        finally:
            theirs.close()
        assert process.stdout is not None
        self._process, self._channel = process, Channel(ours)
        self._output = _OutputReader(process.stdout, f"{spec.label} pid {process.pid}")
        self._output.start()
        self.generation += 1
        load = {
            "op": "load",
            "protocol": codec.PROTOCOL_VERSION,
            "backend": spec.backend,
            "reference": spec.reference,
            "model_dir": str(spec.model_dir),
            "device": spec.device,
            "options": spec.options,
        }
        try:
            self.loaded = self._exchange(load, b"", spec.load_timeout).header
        except BaseException:
            self._stop(kill=True)
            raise
        log.info("worker for %s is up (pid %d, %s)", spec.label, process.pid, spec.python)

    def _restart(self) -> None:
        log.warning("starting a new worker for %s", self.spec.label)
        self._stop(kill=True)
        try:
            self._start()
        except BragiError as exc:
            raise ModelUnavailableError(
                f"The worker for model `{self.spec.label}` could not be restarted: {exc.message}"
            ) from exc

    def _exchange(self, header: dict[str, Any], payload: Payload, timeout: float) -> Frame:
        channel, label, op = self._channel, self.spec.label, header.get("op")
        assert channel is not None
        deadline = time.monotonic() + timeout
        try:
            channel.send(header, payload, deadline=deadline)
            frame = channel.receive(deadline=deadline)
        except TimeoutError:
            self._stop(kill=True)
            raise ModelUnavailableError(
                f"The worker for model `{label}` did not answer {op!r} within {timeout:g} s; "
                "it was stopped and will be restarted."
            ) from None
        except ValueError:  # a reply that is not a frame: the streams are out of step
            self._stop(kill=True)
            raise ModelUnavailableError(
                f"The worker for model `{label}` sent a malformed reply to {op!r}; "
                "it was stopped and will be restarted."
            ) from None
        except (ChannelClosed, OSError):
            how = self._stop(kill=False)
            raise ModelUnavailableError(
                f"The worker for model `{label}` {how} during {op!r}; it will be restarted."
                + self._last_words()
            ) from None
        if frame.op == "error":
            raise codec.decode_error(frame.header)
        return frame

    def _flush_cancels(self) -> None:
        while self._cancels:
            stream, generation = self._cancels.popleft()
            if generation != self.generation or not self._alive():
                continue  # that run of the worker is gone, and its streams with it
            try:
                self._exchange({"op": "cancel", "stream": stream}, b"", self.spec.timeout)
            except BragiError as exc:
                log.warning("cancelling a request on %s: %s", self.spec.label, exc.message)

    def _stop(self, *, kill: bool) -> str:
        """End the process (killed at once if ``kill``, else after a grace period)."""
        process, self._process = self._process, None
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()  # an idle worker sees the end of the stream and exits
        if process is None:
            return "was not running"
        if kill and process.poll() is None:
            process.kill()
        try:
            code = process.wait(self.spec.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if self._output is not None:
            self._output.join(self.spec.stop_timeout)
        return _describe_exit(code)

    def _last_words(self) -> str:
        tail = self._output.tail if self._output is not None else ()
        return f" Its last output: {tail[-1]}" if tail else ""
