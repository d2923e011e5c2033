"""``bragi transcribe --live FILE|-``: speak to a running server and watch the text come.

The audio goes to the server's ``/v1/realtime`` endpoint (the OpenAI Realtime API) at
real pace, 100 ms at a time; the server finds the turns. Text still being spoken goes to
standard error (rewritten in place on a terminal), each turn's final text to standard
output, one line per turn. ``FILE`` is anything FFmpeg decodes; ``-`` reads standard
input: a WAV stream, or raw 16-bit little-endian mono PCM at ``--rate``
(``arecord -f S16_LE -r 24000 -c 1 | bragi transcribe --live -``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from bragi.errors import AuthenticationError, BragiError, InvalidRequestError

__all__ = ["add_arguments", "run_live"]

CHUNK_MS = 100
TAIL_SILENCE_S = 1.0  # lets the server's VAD hear the end of the last turn
FINISH_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group("live (--live: stream to a running server)")
    live.add_argument(
        "--live",
        action="store_true",
        help="stream FILE (or - for standard input) to a server's /v1/realtime at real pace "
        "and print the text as it is spoken",
    )
    live.add_argument("--url", help="the server (default: $BRAGI_URL, else http://127.0.0.1:8000)")
    live.add_argument("--api-key", help="its API key (default: $BRAGI_API_KEY, $OPENAI_API_KEY)")
    live.add_argument(
        "--rate", type=int, default=24_000, help="sample rate of raw PCM on standard input"
    )
    live.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="how many times faster than real time to send (default 1; 0: at once)",
    )


def _realtime_url(base: str, model: str | None) -> str:
    parts = urlsplit(base.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.removesuffix("/v1") + "/v1/realtime"
    query = {"intent": "transcription"} | ({"model": model} if model else {})
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def _file_audio(path: Path) -> tuple[bytes, int]:
    from bragi.audio import decode_audio
    from bragi.audio.encode import to_pcm16

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    audio = decode_audio(data, 24_000)
    return to_pcm16(audio.samples).tobytes(), 24_000


def _stdin_audio(stream: IO[bytes], rate: int) -> tuple[Iterator[bytes], int]:
    """Pieces of 16-bit mono PCM from standard input, read as they come."""
    head = stream.read(4)
    if head == b"RIFF":
        with wave.open(cast(IO[bytes], _Prefixed(head, stream)), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise InvalidRequestError("a WAV on standard input must be 16-bit mono")
            rate = wav.getframerate()
            return _wav_pieces(wav, rate), rate
    return _raw_pieces(head, stream, rate), rate


class _Prefixed:
    """A stream with bytes already read put back in front (``wave`` reads from the start)."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        head, self._head = self._head, b""
        if size < 0:
            return head + self._stream.read()
        return head + self._stream.read(max(size - len(head), 0))


def _wav_pieces(wav: wave.Wave_read, rate: int) -> Iterator[bytes]:
    frames = rate * CHUNK_MS // 1000
    while piece := wav.readframes(frames):
        yield piece


def _raw_pieces(head: bytes, stream: IO[bytes], rate: int) -> Iterator[bytes]:
    size = rate * 2 * CHUNK_MS // 1000
    pending = head
    while True:
        piece = stream.read(size - len(pending))
        if not piece:
            break
        pending += piece
        if len(pending) >= size:
            yield pending
            pending = b""
    if pending:
        yield pending


def _pieces(pcm: bytes, rate: int) -> Iterator[bytes]:
    size = rate * 2 * CHUNK_MS // 1000
    for offset in range(0, len(pcm), size):
        yield pcm[offset : offset + size]


class _Printer:
    """Partial text to standard error (in place on a terminal), final text to standard
    output; keeps track of the turns still waiting for their text."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.speaking = False  # a turn has started and not stopped
        self.errors: list[str] = []
        self.done = threading.Event()
        self._partial: dict[str, str] = {}
        self._tty = sys.stderr.isatty()
        self._lock = threading.Lock()

    def event(self, event: dict[str, Any]) -> None:
        kind, item = event.get("type", ""), event.get("item_id", "")
        with self._lock:
            if kind in ("input_audio_buffer.speech_started", "input_audio_buffer.committed"):
                self.pending.add(item)
                self.speaking = kind.endswith("speech_started")
            elif kind.endswith("input_audio_transcription.delta"):
                self._partial[item] = self._partial.get(item, "") + event.get("delta", "")
                self._show(self._partial[item])
            elif kind.endswith("input_audio_transcription.completed"):
                self._final(item, event.get("transcript", ""))
            elif kind.endswith("input_audio_transcription.failed"):
                message = event.get("error", {}).get("message", "failed")
                self._final(item, "")
                self.errors.append(message)
                sys.stderr.write(f"bragi: a turn was not transcribed: {message}\n")
            elif kind == "error":
                error = event.get("error", {})
                if error.get("code") != "input_audio_buffer_commit_empty":
                    self.errors.append(error.get("message", ""))
                    sys.stderr.write(f"bragi: {error.get('message')}\n")

    def _show(self, text: str) -> None:
        if self._tty:
            sys.stderr.write("\r\033[2K… " + text[-200:])
        else:
            sys.stderr.write(f"… {text}\n")
        sys.stderr.flush()

    def _final(self, item: str, text: str) -> None:
        self._partial.pop(item, None)
        self.pending.discard(item)
        if self._tty:
            sys.stderr.write("\r\033[2K")
            sys.stderr.flush()
        if text:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def _receive(connection: Any, printer: _Printer) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in connection:
            printer.event(json.loads(message))
    except ConnectionClosed:
        pass
    finally:
        printer.done.set()


def _connect(url: str, key: str | None) -> Any:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return connect(url, additional_headers=headers, open_timeout=30, max_size=None)
    except InvalidStatus as exc:
        try:
            message = json.loads(exc.response.body or b"{}")["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.response.status_code}"
        if exc.response.status_code == 401:
            raise AuthenticationError(f"{message} (--api-key or $BRAGI_API_KEY)") from None
        raise BragiError(f"{url}: {message}") from None


def run_live(args: argparse.Namespace) -> int:
    if args.translate or args.words or args.format != "text":
        raise InvalidRequestError(
            "--live prints text as it is spoken: --format, --words and --translate are for "
            "transcribing a file here"
        )
    base = args.url or os.environ.get("BRAGI_URL") or "http://127.0.0.1:8000"
    key = args.api_key or os.environ.get("BRAGI_API_KEY") or os.environ.get("OPENAI_API_KEY")
    if str(args.file) == "-":
        pieces, rate = _stdin_audio(sys.stdin.buffer, args.rate)
    else:
        pcm, rate = _file_audio(args.file)
        pieces = _pieces(pcm, rate)
    connection = _connect(_realtime_url(base, args.model), key)
    with connection:
        created = json.loads(connection.recv(timeout=30))
        if created.get("type") == "error":
            raise BragiError(created["error"]["message"])
        transcription = {"language": args.language} if args.language else {}
        update = {"format": {"type": "audio/pcm", "rate": rate}, "transcription": transcription}
        session = {"type": "transcription", "audio": {"input": update}}
        connection.send(json.dumps({"type": "session.update", "session": session}))
        printer = _Printer()
        receiver = threading.Thread(target=_receive, args=(connection, printer), daemon=True)
        receiver.start()
        _send(connection, pieces, rate, args.pace)
        tail = bytes(int(rate * TAIL_SILENCE_S) * 2)
        _send(connection, _pieces(tail, rate), rate, args.pace)
        time.sleep(0.3)  # for the server to have read the tail
        if printer.speaking:  # speech to the very end: end the turn by hand
            connection.send(json.dumps({"type": "input_audio_buffer.commit"}))
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while printer.pending and time.monotonic() < deadline and not printer.done.is_set():
            time.sleep(0.05)
    receiver.join(5)
    return 1 if printer.errors or printer.pending else 0


def _send(connection: Any, pieces: Iterator[bytes], rate: int, pace: float) -> None:
    started, sent = time.monotonic(), 0.0
    for piece in pieces:
        if pace > 0:
            wait = started + sent / pace - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        audio = base64.b64encode(piece).decode()
        connection.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        sent += len(piece) / 2 / rate
