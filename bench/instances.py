"""The processes a run measures: N ``bragi serve`` (or one outside server) and N direct workers.

Round ``r`` of a figure uses server ``r % N`` and worker ``r % N``. Both kinds start
together and load their models lazily, on the warm-up calls.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import Client
from bench.measure import CpuProbe
from bench.server import BragiServer
from bench.worker import DirectWorker

__all__ = ["Instance", "Instances"]


@dataclass
class Instance:
    client: Client  # the server side (an OpenAI client)
    direct: DirectWorker  # the direct side
    server_cpu: Callable[[], float] | None  # None for --base-url: its CPU is not ours to read

    def server_call(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[float, Any, float | None]:
        """(wall seconds, result, CPU seconds of server + client) of one client call."""
        cpu = self.server_cpu() if self.server_cpu else None
        started = time.perf_counter()
        result = function(*args, **kwargs)
        wall = time.perf_counter() - started
        used = self.server_cpu() - cpu if self.server_cpu and cpu is not None else None
        return wall, result, used


class Instances:
    """Start, hand out and stop the server and worker processes."""

    def __init__(self) -> None:
        self.servers: list[BragiServer] = []
        self.workers: list[DirectWorker] = []
        self.items: list[Instance] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Instance:
        return self.items[index % len(self.items)]

    def start(
        self,
        count: int,
        models_dir: Path,
        work_dir: Path,
        *,
        base_url: str | None,
        api_key: str | None,
        server_env: dict[str, str],
        config: str | None = None,
    ) -> None:
        for index in range(count):
            self.workers.append(DirectWorker(models_dir, work_dir / f"worker-{index}.log"))
            if base_url is None:
                # keep_alive -1: no unload and reload in the middle of a measurement
                env = {"BRAGI_KEEP_ALIVE": "-1"} | server_env
                server = BragiServer(work_dir / f"server-{index}", models_dir, env, config)
                server.start()
                self.servers.append(server)
        for worker in self.workers:
            worker.wait_ready()
        outside = Client(base_url, api_key or "none") if base_url else None
        for index, worker in enumerate(self.workers):
            if outside is not None:
                self.items.append(Instance(outside, worker, None))
                continue
            server = self.servers[index]
            server.wait_for("/health/ready")
            client = Client(server.base_url, server.api_key())
            self.items.append(Instance(client, worker, CpuProbe(server.pid)))

    def post_mortem(self) -> str:
        """Exit codes and log tails of servers that died (called when a run fails)."""
        dead = []
        for server in self.servers:
            code = server.process.poll() if server.process is not None else None
            if code is not None:
                dead.append(
                    f"bragi serve on port {server.port} exited with {code}:\n"
                    + server.log()[-1500:]
                )
        for worker in self.workers:
            code = worker.process.poll()
            if code is not None:
                log = worker.log_path.read_text(errors="replace")[-1500:]
                dead.append(f"bench worker exited with {code}:\n{log}")
        return "\n".join(dead)

    def stop_servers(self) -> None:
        """Stop the local servers (before P6/P7, whose servers must have the CPU alone)."""
        for server in self.servers:
            server.stop()
        self.servers.clear()
        for item in self.items:
            item.server_cpu = None

    def close(self) -> None:
        clients = {id(item.client): item.client for item in self.items}
        for client in clients.values():
            client.close()
        self.stop_servers()
        for worker in self.workers:
            try:
                worker.close()
            except OSError as exc:  # a worker that died already
                print(f"[bench] worker: {exc}", file=sys.stderr)
        self.workers.clear()
        self.items.clear()
