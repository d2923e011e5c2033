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

__all__ = ["Instance", "Instances", "Side"]


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

    def first_audio(
        self, model: str, voice: str, text: str, fmt: str
    ) -> tuple[float, float | None]:
        """Streamed speech: (seconds to the first audio byte, CPU seconds of server +
        client up to it); the rest of the stream is read, off the clock."""
        probe = self.server_cpu
        if probe is None:
            return self.client.first_audio(model, voice, text, fmt)[0], None
        before, at_first = probe(), []
        first, _body = self.client.first_audio(
            model, voice, text, fmt, at_first=lambda: at_first.append(probe())
        )
        return first, at_first[0] - before


#: one side of a figure: round ``r``'s call goes to the instance this gives for ``r``
Side = Callable[[int], Instance]


@dataclass
class _Launch:
    """How :meth:`Instances.start` started the local servers, for :meth:`Instances.variant`."""

    models_dir: Path
    work_dir: Path
    env: dict[str, str]


class Instances:
    """Start, hand out and stop the server and worker processes."""

    def __init__(self) -> None:
        self.servers: list[BragiServer] = []  # every local server, variants included
        self.workers: list[DirectWorker] = []
        self.items: list[Instance] = []
        #: name -> the servers of a variant and their instances (see :meth:`variant`)
        self.variants: dict[str, tuple[list[BragiServer], list[Instance]]] = {}
        self._launch: _Launch | None = None

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
        # keep_alive -1: no unload and reload in the middle of a measurement
        self._launch = _Launch(models_dir, work_dir, {"BRAGI_KEEP_ALIVE": "-1"} | server_env)
        for index in range(count):
            self.workers.append(DirectWorker(models_dir, work_dir / f"worker-{index}.log"))
        servers = [] if base_url else self._spawn("server", count, config)
        for worker in self.workers:
            worker.wait_ready()
        if base_url is not None:
            outside = Client(base_url, api_key or "none")
            self.items = [Instance(outside, worker, None) for worker in self.workers]
        else:
            self.items = self._connect(servers)

    def _spawn(self, name: str, count: int, config: str | None) -> list[BragiServer]:
        assert self._launch is not None
        launch, servers = self._launch, []
        for index in range(count):
            data_dir = launch.work_dir / f"{name}-{index}"
            server = BragiServer(data_dir, launch.models_dir, dict(launch.env), config)
            server.start()
            servers.append(server)
        self.servers.extend(servers)
        return servers

    def _connect(self, servers: list[BragiServer]) -> list[Instance]:
        """Wait for each server and pair it with the direct worker of its index."""
        items = []
        for server, worker in zip(servers, self.workers, strict=True):
            server.wait_for("/health/ready")
            client = Client(server.base_url, server.api_key())
            items.append(Instance(client, worker, CpuProbe(server.pid)))
        return items

    def variant(self, name: str, config: str) -> Side:
        """As many more local servers as there are direct workers, with another config
        (started once; :meth:`stop_variant` stops them), each paired with the worker of its
        index, as the run's own servers are."""
        if name not in self.variants:
            if self._launch is None or not self.servers:
                raise RuntimeError("server variants need the bench's own local servers")
            servers = self._spawn(name, len(self.workers), config)
            self.variants[name] = (servers, self._connect(servers))
        items = self.variants[name][1]
        return lambda index: items[index % len(items)]

    def stop_variant(self, name: str) -> None:
        servers, items = self.variants.pop(name, ([], []))
        for item in items:
            item.client.close()
        for server in servers:
            server.stop()
            self.servers.remove(server)

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
        for name in list(self.variants):
            self.stop_variant(name)
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
