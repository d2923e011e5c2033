"""The page's files, read from the package once and held in memory, gzipped once.

The files are small (tens of kilobytes in all), so serving them from memory costs
nothing and lets every response carry a strong ETag. The version is a hash of every
file, so the asset URLs change whenever any file does and can be cached for good.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["Asset", "Assets"]

#: What the page is made of; anything else in the folder is not served.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Below this size gzip's header and window cost more than they save.
_MIN_GZIP_BYTES = 256
#: Where index.html names the versioned asset folder, and whether API keys are needed.
VERSION_MARK = "__ASSETS__"
AUTH_MARK = "__AUTH__"


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    gzipped: bytes | None  # None when compression would not pay
    content_type: str
    etag: str


def _asset(name: str, body: bytes) -> Asset:
    suffix = name[name.rfind(".") :]
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    gzipped = packed if len(body) >= _MIN_GZIP_BYTES and len(packed) < len(body) else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(name, body, gzipped, content_type, etag)


def _files(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found |= _files(entry, f"{prefix}{entry.name}/")
        elif entry.name[entry.name.rfind(".") :] in _TYPES:
            found[prefix + entry.name] = entry.read_bytes()
    return found


class Assets:
    """The page (``index``) and its versioned files (``get(name)``). The page tells its
    script whether the server asks for API keys (``auth``), so a page that needs none
    starts without a refused request."""

    def __init__(self, files: dict[str, bytes], *, auth: bool = True):
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
        self.version = digest.hexdigest()[:12]
        page = files["index.html"].decode("utf-8").replace(VERSION_MARK, f"web/{self.version}")
        page = page.replace(AUTH_MARK, "enabled" if auth else "disabled")
        self.index = _asset("index.html", page.encode())
        self._assets = {name: _asset(name, body) for name, body in files.items()}

    @classmethod
    def packaged(cls, *, auth: bool = True) -> Assets:
        return cls(_files(resources.files("bragi.web") / "static"), auth=auth)

    def get(self, name: str) -> Asset | None:
        return None if name == "index.html" else self._assets.get(name)

    @property
    def files(self) -> list[Asset]:
        """Every versioned file (index.html as written, before the version is put in)."""
        return [self._assets[name] for name in sorted(self._assets)]
