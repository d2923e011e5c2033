"""A stand-in worker process that loads nothing and answers what a test scripted.

Started by :class:`~bragi.runners.process.WorkerProcess` in place of
``python -m bragi.runners.worker_main`` (through a wrapper script set as the spec's
interpreter), it answers ``load`` as a speech-to-text engine would, then answers each
later message with the bytes of the first file ``<script dir>/reply-*`` in name order
(raw: they need not be a frame), which it deletes, so a restarted impostor goes on
with the next; when there is none, with a well-formed error frame. The script
directory is ``$IMPOSTOR_SCRIPT``. Standard library only, so it starts fast.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from pathlib import Path

PREFIX = struct.Struct(">IQ")
LOADED = {
    "op": "loaded",
    "kind": "stt",
    "pid": os.getpid(),
    "capabilities": {
        "languages": ["en"],
        "translate": False,
        "word_timestamps": False,
        "sample_rate": 16000,
    },
}


def frame(header: dict[str, object]) -> bytes:
    encoded = json.dumps(header).encode()
    return PREFIX.pack(len(encoded), 0) + encoded


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def main() -> int:
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    script = Path(os.environ["IMPOSTOR_SCRIPT"])
    sock = socket.socket(fileno=fd)
    try:
        while True:
            header_size, payload_size = PREFIX.unpack(read_exactly(sock, PREFIX.size))
            header = json.loads(read_exactly(sock, header_size))
            read_exactly(sock, payload_size)
            if header.get("op") == "load":
                sock.sendall(frame(LOADED))
                continue
            if header.get("op") == "shutdown":
                sock.sendall(frame({"op": "bye"}))
                return 0
            scripted = sorted(script.glob("reply-*"))
            if scripted:  # deleted before it is sent: the server may kill us mid-send
                reply = scripted[0].read_bytes()
                scripted[0].unlink()
                sock.sendall(reply)
            else:
                error = {"op": "error", "classes": ["EngineError"], "message": "unscripted"}
                sock.sendall(frame(error))
    except EOFError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
