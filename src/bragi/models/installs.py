"""Engine environments installed on demand (``install_engines``), in the background.

A configured model whose backend runs in an engine environment (torch engines) that is
not installed would otherwise fail at its first load with "run `bragi backend
install`". With ``install_engines`` on, the manager runs that command itself at
start-up, as it fetches missing files: the model is INSTALLING meanwhile (requests get
a 503 with Retry-After that says so; /health/ready lists it as pending), pip's output
goes to the log, and a failed install marks only the models that needed it failed,
saying why. Models sharing an environment (``torch-tts``) share one install.

The install is ``python -m bragi backend install NAME`` in a process group of its own:
on shutdown the group is killed (pip included) and the half-made environment removed,
so an install never holds up ``bragi serve``'s exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from pathlib import Path

from bragi.backends.protocol import IsolatedBackend
from bragi.errors import BragiError
from bragi.models.progress import InstallProgress
from bragi.models.served import ModelState, ServedModel
from bragi.models.tasks import BackgroundTasks
from bragi.runners.envs import EngineEnvs, environment_of

__all__ = ["RETRY_AFTER_SECONDS", "EngineInstalls", "InstallFailed"]

log = logging.getLogger("bragi.models.manager")

#: What a request for a model whose engine is being installed is told to wait (an
#: install with torch takes minutes).
RETRY_AFTER_SECONDS = 30
#: Seconds between the log lines that say an install is still going.
_LOG_EVERY = 20.0
_TAIL_LINES = 40


class InstallFailed(BragiError):
    """``bragi backend install`` failed; the message says why (pip's own error)."""


class EngineInstalls:
    """Installs missing engine environments, one install per environment."""

    def __init__(self, data_dir: Path, tasks: BackgroundTasks, *, enabled: bool):
        self.data_dir = data_dir
        self.envs = EngineEnvs(data_dir / "envs")
        self.enabled = enabled
        self._tasks = tasks
        self._running: dict[str, tuple[asyncio.Task[None], InstallProgress]] = {}
        self._groups: set[int] = set()  # process groups of installs in flight
        self._aborted = False

    def missing(self, model: ServedModel) -> str | None:
        """The environment ``model`` needs and lacks (None: it needs none, or has it)."""
        backend = model.backend
        if not isinstance(backend, IsolatedBackend):
            return None
        name = environment_of(backend)
        return name if self.envs.manifest(name) is None else None

    async def install(self, model: ServedModel, device: str) -> None:
        """Install ``model``'s missing environment (or wait for the install already running
        for it); the model is INSTALLING meanwhile, then AVAILABLE, or FAILED saying why.
        Never raises but for cancellation."""
        name = self.missing(model)
        if not self.enabled or name is None or self._aborted:
            return
        if model.state is not ModelState.AVAILABLE:
            return
        running = self._running.get(name)
        if running is None:
            progress = InstallProgress(name)
            task = self._tasks.spawn(self._install(name, device, progress), f"install {name}")
            running = (task, progress)
            self._running[name] = running
            task.add_done_callback(lambda _: self._running.pop(name, None))
        task, progress = running
        model.installing(progress)
        try:
            await asyncio.shield(task)
        except InstallFailed as exc:
            model.unavailable(exc.message, "install failed")
        except asyncio.CancelledError:
            if task.cancelled() and model.install is not None:  # still waiting on it
                model.unavailable("the install was stopped: the server is stopping", "stopped")
            raise
        except Exception as exc:  # a bug: the model says so, the others serve on
            log.exception("installing the %s environment failed", name)
            model.unavailable(f"installing the {name} engine environment failed: {exc}")
        else:
            model.installed()

    def abort(self) -> None:
        """Kill every install in flight (pip included) and start no more."""
        self._aborted = True
        for group in list(self._groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    async def _install(self, name: str, device: str, progress: InstallProgress) -> None:
        command = [sys.executable, "-m", "bragi", "backend", "install", name]
        command += ["--data-dir", str(self.data_dir), "--device", device]
        log.info("installing the %s engine environment in %s", name, self.envs.path(name))
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: pip dies with it on abort
        )
        self._groups.add(process.pid)
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        try:
            assert process.stdout is not None
            last_log = time.monotonic()
            while raw := await process.stdout.readline():
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                progress.last_line = line
                if line.startswith("$ "):  # a step starts: the command `backend install` runs
                    progress.step = line[2:]
                    log.info("install %s: %s", name, line)
                elif time.monotonic() - last_log >= _LOG_EVERY:
                    log.info("install %s (%.0f s): %s", name, progress.seconds, line)
                    last_log = time.monotonic()
                else:
                    log.debug("install %s: %s", name, line)
            code = await process.wait()
        except BaseException:  # cancelled (shutdown): leave no pip and no half environment
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            await asyncio.to_thread(shutil.rmtree, self.envs.path(name), True)
            raise
        finally:
            self._groups.discard(process.pid)
        if code != 0:
            if self._aborted:  # killed by abort(): the process left a half environment
                await asyncio.to_thread(shutil.rmtree, self.envs.path(name), True)
            reason = _why(tail) if not self._aborted else "the server is stopping"
            message = f"installing the {name} engine environment failed: {reason}"
            log.error("%s\n%s", message, "\n".join(tail))
            raise InstallFailed(message)
        log.info("installed the %s engine environment in %.0f s", name, progress.seconds)


def _why(tail: deque[str]) -> str:
    """pip's own error lines (``ERROR: No matching distribution found for ...``) and what
    it says caused a conflict, else the last thing said."""
    lines = list(tail)
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    if "The conflict is caused by:" in lines:  # the requirements that clash, one per line
        start = lines.index("The conflict is caused by:") + 1
        causes = [line.strip() for line in itertools.takewhile(str.strip, lines[start:])]
        errors.insert(1, "caused by: " + "; ".join(causes))
    if errors:
        return "; ".join(errors[:3])
    return lines[-1] if lines else "the installer said nothing"
