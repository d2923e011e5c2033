"""A worker process: one engine, served over a framed socket to the Bragi server.

Started by the server as ``python -m bragi.runners.worker_main --fd N`` with the
interpreter of the engine's environment. It handles one message at a time: ``load``
once, then ``transcribe`` / ``synthesize`` (which open a stream), ``next`` (the
stream's next segment or audio chunk, produced only when asked), ``cancel`` (closes
the engine's generator), ``ping`` and ``shutdown``. Several streams may be
open at once; they interleave item by item, so the engine is never called from two
threads. The server going away (end of stream on the socket) ends the worker.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bragi import __version__
from bragi.audio.types import Audio
from bragi.backends.protocol import Backend, Device, Engine, Segment, SpeechToText, TextToSpeech
from bragi.backends.registry import load_engine
from bragi.errors import BragiError, EngineError
from bragi.runners import codec
from bragi.runners.framing import Channel, ChannelClosed, Frame, MalformedFrame
from bragi.runners.memory import resident_bytes

__all__ = ["EXIT_MALFORMED", "main", "resolve_backend"]

log = logging.getLogger("bragi.worker")
#: The worker's exit code when the server's bytes stop being frames.
EXIT_MALFORMED = 4
Reply = tuple[dict[str, Any], bytes | bytearray | memoryview]


def resolve_backend(name: str, reference: str | None) -> Backend:
    """The backend ``name``: the ``module:attr`` reference, else its entry point here."""
    if reference:
        module_name, _, attribute = reference.partition(":")
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    else:
        matches = list(entry_points(group="bragi.backends", name=name))
        if not matches:
            raise EngineError(f"no backend named {name!r} is installed in {sys.prefix}")
        found = matches[0].load()
    if getattr(found, "name", None) != name:
        raise EngineError(f"{reference or name} is not the backend {name!r}")
    backend: Backend = found
    return backend


class WorkerServer:
    """The worker's side of the protocol: an engine and its open streams."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.engine: Engine | None = None
        self.streams: dict[int, Iterator[Any]] = {}
        self.handlers: dict[str, Callable[[Frame], Reply]] = {
            "load": self._load,
            "transcribe": self._transcribe,
            "synthesize": self._synthesize,
            "next": self._next,
            "cancel": self._cancel,
            "ping": self._ping,
        }

    def serve(self) -> int:
        try:
            while True:
                try:
                    frame = self.channel.receive()
                except MalformedFrame as exc:  # out of step with the server for good
                    log.error("%s; exiting", exc)
                    return EXIT_MALFORMED
                except ChannelClosed:
                    log.info("the server went away; exiting")
                    return 0
                if frame.op == "shutdown":
                    self._close_all()
                    self.channel.send({"op": "bye"})
                    return 0
                try:
                    handler = self.handlers.get(frame.op)
                    if handler is None:
                        raise EngineError(f"unknown message {frame.op!r}")
                    header, payload = handler(frame)
                except Exception as exc:  # every failure becomes an error frame
                    if not isinstance(exc, BragiError):
                        log.exception("%s failed", frame.op)
                    header, payload = codec.encode_error(exc), b""
                self.channel.send(header, payload)
        except ChannelClosed:
            log.info("the server went away; exiting")
            return 0
        finally:
            self._close_all()

    def _engine(self) -> Engine:
        if self.engine is None:
            raise EngineError("no engine is loaded in this worker")
        return self.engine

    def _load(self, frame: Frame) -> Reply:
        header = frame.header
        if self.engine is not None:  # a second engine would leave the first unclosed
            raise EngineError("an engine is already loaded in this worker")
        if header.get("protocol") != codec.PROTOCOL_VERSION:
            raise EngineError(
                f"this worker speaks protocol {codec.PROTOCOL_VERSION} (Bragi {__version__}), "
                f"the server {header.get('protocol')}; reinstall the engine environment"
            )
        backend = resolve_backend(header["backend"], header.get("reference"))
        options = backend.options_model.model_validate(header.get("options", {}))
        device: Device = "cuda" if header.get("device") == "cuda" else "cpu"
        self.engine = engine = load_engine(backend, Path(header["model_dir"]), device, options)
        reply: dict[str, Any] = {"op": "loaded", "kind": backend.kind.value, "pid": os.getpid()}
        if isinstance(engine, TextToSpeech):
            reply["capabilities"] = codec.encode(engine.capabilities)
            reply["voices"] = [codec.encode(v) for v in engine.voices()]
        elif isinstance(engine, SpeechToText):
            reply["capabilities"] = codec.encode(engine.capabilities)
        return reply, b""

    def _transcribe(self, frame: Frame) -> Reply:
        engine = self._engine()
        if not isinstance(engine, SpeechToText):
            raise EngineError("this engine cannot transcribe")
        audio = codec.audio_from_payload(frame.payload, int(frame.header["sample_rate"]))
        options = codec.transcribe_options(frame.header["options"])
        segments, info = engine.transcribe(audio, options)
        self.streams[int(frame.header["stream"])] = iter(segments)
        return {"op": "started", "info": codec.encode(info)}, b""

    def _synthesize(self, frame: Frame) -> Reply:
        engine = self._engine()
        if not isinstance(engine, TextToSpeech):
            raise EngineError("this engine cannot synthesize")
        request = codec.synthesis_request(frame.header["request"], frame.payload)
        chunks = engine.synthesize(request)
        self.streams[int(frame.header["stream"])] = iter(chunks)
        return {"op": "started"}, b""

    def _next(self, frame: Frame) -> Reply:
        stream = int(frame.header["stream"])
        items = self.streams.get(stream)
        if items is None:
            raise EngineError(f"stream {stream} is not open")
        try:
            item = next(items)
        except StopIteration:
            del self.streams[stream]
            return {"op": "end"}, b""
        except BaseException:
            self._close_stream(stream)
            raise
        if isinstance(item, Audio):
            return {"op": "chunk", "sample_rate": item.sample_rate}, codec.audio_payload(item)
        if isinstance(item, Segment):
            return {"op": "segment", "segment": codec.encode(item)}, b""
        raise EngineError(f"the engine yielded a {type(item).__name__}")

    def _cancel(self, frame: Frame) -> Reply:
        self._close_stream(int(frame.header["stream"]))
        return {"op": "cancelled"}, b""

    def _ping(self, frame: Frame) -> Reply:
        return {
            "op": "pong",
            "pid": os.getpid(),
            "rss": resident_bytes(),
            "streams": len(self.streams),
            "python": sys.executable,
            "prefix": sys.prefix,
            "bragi": __version__,
        }, b""

    def _close_stream(self, stream: int) -> None:
        items = self.streams.pop(stream, None)
        close = getattr(items, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("closing stream %d failed", stream)

    def _close_all(self) -> None:
        for stream in list(self.streams):
            self._close_stream(stream)
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bragi-worker")
    parser.add_argument("--fd", type=int, required=True, help="the connected socket's fd")
    parser.add_argument("--label", default="engine", help="name shown in log lines")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(levelname)s worker[{args.label}] %(name)s: %(message)s",
    )
    channel = Channel(socket.socket(fileno=args.fd))
    try:
        return WorkerServer(channel).serve()
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())
