"""What every suite gets: the run's options, the server client, the direct engines."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Client
from bench.direct import DirectEngines

__all__ = ["Context", "Options"]


@dataclass
class Options:
    quick: bool
    base_url: str | None
    api_key: str | None
    stt_model: str
    tts_models: dict[str, str]  # engine (piper, kokoro) -> model name on the server
    voices: dict[str, str]  # engine -> voice on the server
    image_size_json: Path | None = None

    @property
    def reps(self) -> int:
        """Repetitions kept per figure (after the warm-up)."""
        return 3 if self.quick else 5


@dataclass
class Context:
    options: Options
    direct: DirectEngines
    models_dir: Path
    client: Client | None = None  # None when no suite needs a server
    #: engines (per side) that have run at least once: no more warm-up needed in --quick
    warm: set[str] = field(default_factory=set)
    #: (side, recording key) -> transcript, from P1, reused by P8
    transcripts: dict[tuple[str, str], str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def server(self) -> Client:
        if self.client is None:
            raise RuntimeError("this suite needs a server")
        return self.client

    def warmup(self, *engines: str) -> int:
        """Warm-up rounds before timing: 1, or 0 in --quick when every engine already ran."""
        needed = not self.options.quick or not set(engines) <= self.warm
        self.warm.update(engines)
        return 1 if needed else 0

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[bench {elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)
