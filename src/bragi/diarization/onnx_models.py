"""Finding a diarizer's two ONNX models and checking them before sherpa-onnx sees them.

sherpa-onnx ends the whole process when a metadata key it reads is missing, so every key
its loaders read (``offline-speaker-segmentation-pyannote-model.cc``,
``speaker-embedding-extractor-model.cc``) is checked here first, from the file header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bragi.backends.chunked import read_onnx_header
from bragi.errors import ModelUnavailableError

__all__ = [
    "EMBEDDING_KEYS",
    "SEGMENTATION_KEYS",
    "EmbeddingModel",
    "SegmentationModel",
    "find_embedding",
    "find_segmentation",
    "has_segmentation",
    "is_embedding",
    "is_segmentation",
]

SEGMENTATION_KEYS = (
    "sample_rate",
    "window_size",
    "receptive_field_size",
    "receptive_field_shift",
    "num_speakers",
    "powerset_max_classes",
    "num_classes",
)
EMBEDDING_KEYS = ("output_dim", "sample_rate", "normalize_samples", "language", "framework")
#: Keys no other engine's ONNX files carry: one of them makes a file a candidate, and a
#: missing key is then named instead of the file passed over.
_SEGMENTATION_MARKS = (
    "powerset_max_classes",
    "receptive_field_shift",
    "receptive_field_size",
    "num_classes",
)
_EMBEDDING_MARKS = ("framework", "output_dim", "normalize_samples")
#: The embedding families sherpa-onnx's general extractor runs (NeMo needs other features).
_FRAMEWORKS = ("wespeaker", "3d-speaker")


@dataclass(frozen=True, slots=True)
class SegmentationModel:
    path: Path
    sample_rate: int
    window_size: int  # samples per window
    num_speakers: int  # local speakers per window
    powerset_max_classes: int  # most speakers at once
    num_classes: int  # powerset classes the model scores

    @property
    def window_seconds(self) -> float:
        return self.window_size / self.sample_rate


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    path: Path
    sample_rate: int
    dim: int
    framework: str


def _metadata(path: Path) -> dict[str, str] | None:
    try:
        return read_onnx_header(path).metadata
    except (OSError, ValueError):
        return None


def has_segmentation(directory: Path) -> bool:
    """Whether ``directory`` has an .onnx file marked as a segmentation model (valid or not)."""
    return any(is_segmentation(_metadata(path) or {}) for path in _onnx_files(directory))


def is_segmentation(metadata: dict[str, str]) -> bool:
    """Marked as a segmentation model by any key only those have (then every key is checked)."""
    return any(key in metadata for key in _SEGMENTATION_MARKS)


def is_embedding(metadata: dict[str, str]) -> bool:
    """Marked as a speaker-embedding model by any key only those have."""
    return any(key in metadata for key in _EMBEDDING_MARKS)


def _onnx_files(directory: Path) -> list[Path]:
    # full precision first: an int8 copy beside it is the fallback
    files = sorted(directory.glob("*.onnx"), key=lambda p: ("int8" in p.name, p.name))
    return [p for p in files if p.is_file()]


def _integer(metadata: dict[str, str], key: str, path: Path) -> int:
    try:
        value = int(metadata[key])
    except (KeyError, ValueError):
        raise ModelUnavailableError(
            f"{path.name}: metadata {key!r} is missing or not an integer"
        ) from None
    if value <= 0:
        raise ModelUnavailableError(f"{path.name}: metadata {key!r} must be positive")
    return value


def find_segmentation(directory: Path) -> SegmentationModel:
    """The pyannote segmentation model in ``directory``, its metadata checked."""
    for path in _onnx_files(directory):
        metadata = _metadata(path)
        if metadata is None or not is_segmentation(metadata):
            continue
        values = {key: _integer(metadata, key, path) for key in SEGMENTATION_KEYS}
        speakers, most = values["num_speakers"], values["powerset_max_classes"]
        classes = sum(math.comb(speakers, size) for size in range(min(most, speakers) + 1))
        if values["num_classes"] != classes:
            raise ModelUnavailableError(
                f"{path.name}: num_classes {values['num_classes']} is not the powerset of "
                f"{speakers} speakers, at most {most} at once ({classes} classes)"
            )
        return SegmentationModel(
            path,
            values["sample_rate"],
            values["window_size"],
            speakers,
            most,
            values["num_classes"],
        )
    raise ModelUnavailableError(
        f"no pyannote segmentation model (an .onnx with sherpa-onnx's metadata: "
        f"{', '.join(SEGMENTATION_KEYS)}) in {directory}"
    )


def find_embedding(location: Path) -> EmbeddingModel:
    """The speaker-embedding model at ``location`` (a file, or the first in a directory)."""
    candidates = [location] if location.is_file() else _onnx_files(location)
    for path in candidates:
        metadata = _metadata(path)
        if metadata is None or not is_embedding(metadata):
            continue
        for key in EMBEDDING_KEYS:
            if key not in metadata:
                raise ModelUnavailableError(f"{path.name}: metadata {key!r} is missing")
        framework = metadata["framework"]
        if framework not in _FRAMEWORKS:
            raise ModelUnavailableError(
                f"{path.name}: speaker embeddings from {framework!r} are not supported; "
                f"use a {' or '.join(_FRAMEWORKS)} model"
            )
        if metadata["normalize_samples"] not in ("0", "1"):
            raise ModelUnavailableError(f"{path.name}: metadata 'normalize_samples' must be 0 or 1")
        return EmbeddingModel(
            path,
            _integer(metadata, "sample_rate", path),
            _integer(metadata, "output_dim", path),
            framework,
        )
    raise ModelUnavailableError(
        f"no speaker-embedding model (an .onnx with sherpa-onnx's metadata: "
        f"{', '.join(EMBEDDING_KEYS)}) at {location}"
    )
