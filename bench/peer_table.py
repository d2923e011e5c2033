"""The peer table: Bragi's OpenAI API against wyoming-faster-whisper and wyoming-piper
(from PyPI, each in its own venv, :mod:`bench.peers`) and any OpenAI-compatible server
given by ``--base-url``, side by side in one run, on the same model files, recordings
and thread count.

Bragi is a ``bragi serve`` of this suite's own (the starter set: ``whisper-1`` = Whisper
base int8, ``tts-1`` = Piper en_US-joe-medium), asked through the ``openai`` client. The
peers get the very same files and settings: wyoming-faster-whisper ``--model <whisper
base dir> --compute-type int8 --beam-size 5 --cpu-threads <usable cores>``, language
detected, no VAD (as Bragi's default); wyoming-piper ``--voice en_US-joe-medium
--data-dir <the same voice>``. Figures, each interleaved round by round with Bragi:

- STT short clip: beckett (10 s), seconds to the transcript;
- STT long recording: two_cities read four times (177 s, P11's file), seconds, and the
  word error rate of each side's last transcript;
- TTS first audio: P3's three sentences, seconds to the first audio byte (Bragi: ``pcm``
  stream; wyoming-piper: the first audio-chunk);
- TTS throughput: P4's ten sentences, seconds of audio per second (Bragi: ``pcm``).

Every ratio is Bragi ÷ the peer (below 1: Bragi takes less time; for throughput above 1:
Bragi makes more audio per second). Not judged. One process per peer, one Bragi server.
"""

from __future__ import annotations

import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

from bench.assets import TTS_LONG, TTS_THREE_SENTENCES, recording, word_error_rate
from bench.client import Client
from bench.context import Context
from bench.direct import VOICES, materialize_starter
from bench.machine import usable_cpus
from bench.measure import SETTLE, Measured, interleave
from bench.p11_long_recording import REPEATS, long_recording
from bench.peers import PEERS, PeerProcess, pcm16, peer_env, wyoming_speak, wyoming_stt
from bench.report import NO_TARGET, Figure, ratio_figure
from bench.server import BragiServer, free_port

__all__ = ["run"]

BRAGI_STT, BRAGI_TTS = "whisper-1", "tts-1"
PCM_RATE = 24_000  # Bragi's pcm: 16-bit, 24 kHz mono


def _peers_root(ctx: Context) -> Path:
    return ctx.models_dir.parent / "peers"


def _wyoming_whisper(ctx: Context, work: Path) -> PeerProcess:
    python = peer_env(PEERS["wyoming-faster-whisper"], _peers_root(ctx), ctx.log)
    model = materialize_starter(ctx.models_dir)["whisper"]
    port = free_port()
    # fmt: off
    command = [
        str(python), "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}",
        "--model", str(model), "--data-dir", str(work / "wfw-data"),
        "--compute-type", "int8", "--beam-size", "5", "--cpu-threads", str(usable_cpus()),
        "--local-files-only",
    ]
    # fmt: on
    return PeerProcess(command, work / "wyoming-faster-whisper.log", port, {"HF_HUB_OFFLINE": "1"})


def _wyoming_piper(ctx: Context, work: Path) -> PeerProcess:
    python = peer_env(PEERS["wyoming-piper"], _peers_root(ctx), ctx.log)
    voice_dir = materialize_starter(ctx.models_dir)["piper"]
    port = free_port()
    # fmt: off
    command = [
        str(python), "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{port}",
        "--voice", VOICES["piper"], "--data-dir", str(voice_dir), "--local-files-only",
    ]
    # fmt: on
    return PeerProcess(command, work / "wyoming-piper.log", port)


def _pcm_seconds(data: bytes) -> float:
    return len(data) / 2 / PCM_RATE


def run(ctx: Context) -> list[Figure]:
    figures: list[Figure] = []
    reps = ctx.options.reps
    with tempfile.TemporaryDirectory(prefix="bragi-bench-peers-") as tmp:
        work = Path(tmp)
        bragi = BragiServer(work / "bragi", ctx.models_dir, dict(ctx.options.server_env))
        bragi.start()
        processes: list[PeerProcess] = []
        try:
            bragi.wait_for("/health/ready", timeout=300)
            ours = Client(bragi.base_url, bragi.api_key())
            whisper, piper = _wyoming_whisper(ctx, work), _wyoming_piper(ctx, work)
            for process in (whisper, piper):
                processes.append(process)
                process.start()
            figures += _stt(ctx, ours, "wyoming-faster-whisper", whisper.port, reps)
            figures += _tts(ctx, ours, "wyoming-piper", piper.port, reps)
            if ctx.options.base_url:
                assert ctx.options.api_key is not None
                outside = Client(ctx.options.base_url, ctx.options.api_key)
                figures += _openai_peer(ctx, ours, outside, reps)
                outside.close()
            ours.close()
        finally:
            for process in processes:
                process.stop()
            bragi.stop()
    return figures


def _rounds(
    ctx: Context, bragi: Callable[[], Measured], peer: Callable[[], Measured], reps: int
) -> dict[str, list[float]]:
    sides = {"server": lambda _i: bragi(), "peer": lambda _i: peer()}
    return interleave(sides, reps, 1, warmup=True, settle=SETTLE)


def _figure(
    name: str, unit: str, samples: dict[str, list[float]], peer: str, note: str = ""
) -> Figure:
    return ratio_figure("Peers", name, unit, samples, NO_TARGET, [note], over="peer", baseline=peer)


def _stt(ctx: Context, ours: Client, peer: str, port: int, reps: int) -> list[Figure]:
    rec, short = recording("beckett")
    long_path = long_recording(ctx.models_dir)
    long_ref = " ".join([recording("two_cities")[0].reference] * REPEATS)
    long_label = f"two_cities x {REPEATS} {_wav_seconds(long_path):.0f} s"
    return [
        _stt_figure(ctx, ours, peer, port, rec.label, short, rec.reference, reps),
        _stt_figure(ctx, ours, peer, port, long_label, long_path, long_ref, 2),
    ]


def _stt_figure(
    ctx: Context,
    ours: Client,
    peer: str,
    port: int,
    label: str,
    path: Path,
    reference: str,
    rounds: int,
) -> Figure:
    ctx.log(f"peers: {peer}, {label}")
    pcm, texts = pcm16(path), {}

    def bragi() -> Measured:
        started = time.perf_counter()
        texts["bragi"] = ours.transcribe(BRAGI_STT, path)
        return time.perf_counter() - started

    def theirs() -> Measured:
        wall, texts["peer"] = wyoming_stt(port, pcm)
        return wall

    samples = _rounds(ctx, bragi, theirs, 1 if ctx.options.quick else rounds)
    note = (
        f"WER Bragi {word_error_rate(reference, texts['bragi']):.2f} %, "
        f"{peer} {word_error_rate(reference, texts['peer']):.2f} %"
    )
    return _figure(f"STT {label}, json", "s", samples, peer, note)


def _tts(ctx: Context, ours: Client, peer: str, port: int, reps: int) -> list[Figure]:
    voice = VOICES["piper"]
    three, ten = " ".join(TTS_THREE_SENTENCES), " ".join(TTS_LONG)
    ctx.log(f"peers: {peer}, first audio and throughput")
    first = _rounds(
        ctx,
        lambda: ours.first_audio(BRAGI_TTS, voice, three, "pcm")[0],
        lambda: wyoming_speak(port, three, voice)[0],
        reps,
    )

    def bragi_rate() -> Measured:
        started = time.perf_counter()
        data = ours.speech(BRAGI_TTS, voice, ten, "pcm")
        return _pcm_seconds(data) / (time.perf_counter() - started)

    def peer_rate() -> Measured:
        _first, total, seconds = wyoming_speak(port, ten, voice)
        return seconds / total

    rate = _rounds(ctx, bragi_rate, peer_rate, reps)
    return [
        _figure("TTS first audio, 3 sentences (Bragi: pcm stream)", "s", first, peer),
        _figure("TTS throughput, 10 sentences (Bragi: pcm)", "audio s/s", rate, peer),
    ]


def _openai_peer(ctx: Context, ours: Client, theirs: Client, reps: int) -> list[Figure]:
    """The same figures against an OpenAI-compatible server, by --base-url."""
    name = f"{ctx.options.base_url}"
    rec, short = recording("beckett")
    quick = ctx.options.quick
    cases = [(rec.label, short, 1 if quick else reps)]
    cases.append((f"two_cities x {REPEATS}", long_recording(ctx.models_dir), 1 if quick else 2))
    figures = [
        _openai_stt(ctx, ours, theirs, name, label, path, rounds) for label, path, rounds in cases
    ]
    if model := ctx.options.tts_models.get("piper"):
        voice, three = ctx.options.voices["piper"], " ".join(TTS_THREE_SENTENCES)
        samples = _rounds(
            ctx,
            lambda: ours.first_audio(BRAGI_TTS, VOICES["piper"], three, "pcm")[0],
            lambda: theirs.first_audio(model, voice, three, "pcm")[0],
            reps,
        )
        figures.append(_figure("TTS first audio, 3 sentences, pcm stream", "s", samples, name))
    return figures


def _openai_stt(
    ctx: Context, ours: Client, theirs: Client, name: str, label: str, path: Path, rounds: int
) -> Figure:
    ctx.log(f"peers: {name}, {label}")
    samples = _rounds(
        ctx,
        lambda: _timed(lambda: ours.transcribe(BRAGI_STT, path)),
        lambda: _timed(lambda: theirs.transcribe(ctx.options.stt_model, path)),
        rounds,
    )
    return _figure(f"STT {label}, json", "s", samples, name)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as file:
        return float(file.getnframes() / file.getframerate())
