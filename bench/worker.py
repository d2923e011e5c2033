"""A direct-engine process: ``python -m bench.worker MODELS_DIR``, and its client.

The engine libraries run in a plain Python process of their own, called as a user calls
them (:class:`bench.direct.DirectEngines`), one JSON line per call over stdin/stdout. The
call is timed inside the worker, so the pipe costs the direct side nothing. The bench runs
several such workers (and as many servers) because one process of an engine can be
about 10 % faster or slower than another for its whole life (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

__all__ = ["DirectWorker", "main"]

_ROOT = Path(__file__).resolve().parent.parent  # so `-m bench.worker` imports this bench


class DirectWorker:
    """One worker process; :meth:`call` runs a :class:`DirectEngines` method in it."""

    def __init__(self, models_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", str(models_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )

    def wait_ready(self) -> None:
        self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            log = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench worker exited with {self.process.poll()}:\n{log}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"bench worker failed:\n{reply['error']}")
        return reply

    def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
        """(wall seconds, CPU seconds, result) of ``DirectEngines.<method>(*args)``."""
        assert self.process.stdin is not None
        request = {"method": method, "args": [str(a) for a in args], "kwargs": kwargs}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        return float(reply["wall"]), float(reply["cpu"]), reply["result"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def main() -> int:
    from bench.direct import DirectEngines, materialize_starter

    models_dir = Path(sys.argv[1])
    engines = DirectEngines(materialize_starter(models_dir), models_dir)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            method = getattr(engines, request["method"])
            cpu, wall = time.process_time(), time.perf_counter()
            result = method(*request["args"], **request["kwargs"])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            reply = {"wall": wall, "cpu": cpu, "result": result}
        except Exception:
            reply = {"error": traceback.format_exc()}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
