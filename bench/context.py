"""What every suite gets: the run's options and the process instances it measures."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.instances import Instance, Instances

if TYPE_CHECKING:
    from bench.p7_startup import Startup

__all__ = ["Context", "Options"]


@dataclass
class Options:
    quick: bool
    base_url: str | None
    api_key: str | None
    stt_model: str
    tts_models: dict[str, str]  # engine (piper, kokoro) -> model name on the server
    voices: dict[str, str]  # engine -> voice on the server
    instances: int = 3
    image_size_json: Path | None = None
    server_env: dict[str, str] = field(default_factory=dict)  # for the bench's bragi serve

    @property
    def reps(self) -> int:
        """Rounds kept per figure (after the warm-up): two per instance, at least 5;
        --quick: one per instance, at least 3."""
        if self.quick:
            return max(3, self.instances)
        return max(5, 2 * self.instances)


@dataclass
class Context:
    options: Options
    models_dir: Path
    #: the config of the bench's own servers (None: no config, the starter set)
    config: str | None = None
    instances: Instances = field(default_factory=Instances)
    #: engines (per side) that have run on every instance: no more warm-up needed
    warm: set[str] = field(default_factory=set)
    #: (side, recording key) -> transcript, from P1, reused by P8
    transcripts: dict[tuple[str, str], str] = field(default_factory=dict)
    #: P7's server starts, reused by P6
    startups: list[Startup] | None = None
    started: float = field(default_factory=time.perf_counter)

    def instance(self, index: int) -> Instance:
        if not len(self.instances):
            raise RuntimeError("this suite needs the server and direct processes")
        return self.instances[index]

    @property
    def local(self) -> bool:
        """Whether the servers are `bragi serve` processes this run started."""
        return self.options.base_url is None

    @property
    def count(self) -> int:
        """How many instances each side has."""
        return len(self.instances)

    def warmup(self, *engines: str) -> bool:
        """Whether to warm up: unless every engine named has run on every instance."""
        needed = not set(engines) <= self.warm
        self.warm.update(engines)
        return needed

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[bench {elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)
