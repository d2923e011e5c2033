"""A tiny diarization model pair in sherpa-onnx's formats, that hears two "voices": tones.

* ``write_segmentation``: pyannote segmentation's interface (sherpa-onnx's export,
  ``scripts/pyannote/segmentation/export-onnx.py``): input ``x`` float32 ``[N, 1, T]``,
  output ``y`` ``[N, frames, 7]``, the log-probabilities of the powerset of three local
  speakers taken at most two at a time (nobody, 0, 1, 2, 0+1, 0+2, 1+2), and the metadata
  keys sherpa-onnx reads. Here a frame (20 ms) is local speaker 0 when it holds a
  250 Hz tone, speaker 1 for a 1000 Hz tone, both for both: energy at each frequency
  (a sine and a cosine filter, squared) against a fixed level. Its window is 2 s (the real
  model's is 10 s), so tests stay short.
* ``write_embedding``: a speaker-embedding model as sherpa-onnx's extractor runs it
  (``speaker-embedding-extractor-model.cc``): input ``x`` ``[N, T, 80]`` (fbank), output
  ``embedding`` ``[N, dim]``, metadata ``framework``, ``sample_rate``, ``output_dim``,
  ``normalize_samples``, ``language``. It projects the mean log-mel spectrum, centred, so
  tones of different pitch get dissimilar embeddings and the same tone similar ones.

Real voices are out of reach for these models; they exist to run the real loaders and the
whole pipeline (segmentation, units, clustering, turns, known speakers, blocks) on audio
whose answer is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "EMBEDDING_METADATA",
    "HIGH_HZ",
    "LOW_HZ",
    "RATE",
    "SEGMENTATION_METADATA",
    "WINDOW",
    "tone",
    "write_embedding",
    "write_segmentation",
]

RATE = 16_000
HOP = 320  # samples per frame: 20 ms, a multiple of both tones' periods
WINDOW = 32_000  # samples per segmentation window: 2 s
LOW_HZ, HIGH_HZ = 250, 1000  # local speaker 0, local speaker 1
_LEVEL = 100.0  # filter energy above which a tone counts as speech (a 0.3 tone: ~2300)
_ABSENT = -100.0  # log-probability of the classes this model never gives

SEGMENTATION_METADATA = {
    "model_type": "pyannote-segmentation-3.0",
    "version": "1",
    "sample_rate": str(RATE),
    "window_size": str(WINDOW),
    "receptive_field_size": str(HOP),
    "receptive_field_shift": str(HOP),
    "num_speakers": "3",
    "powerset_max_classes": "2",
    "num_classes": "7",
}
EMBEDDING_METADATA = {
    "framework": "3d-speaker",
    "language": "English",
    "sample_rate": str(RATE),
    "output_dim": "16",
    "normalize_samples": "1",
    "comment": "tiny tone-hearing embedding model for tests",
}


def tone(hz: float, seconds: float, amplitude: float = 0.3, phase: float = 0.0) -> np.ndarray:
    """A sine tone at ``RATE``, float32."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t + phase)).astype(np.float32)


def _save(model: onnx.ModelProto, path: Path, metadata: dict[str, str | None]) -> Path:
    for key, value in metadata.items():
        if value is not None:  # None leaves a key out
            model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def write_segmentation(
    directory: Path,
    *,
    filename: str = "model.onnx",
    metadata: dict[str, str | None] | None = None,
) -> Path:
    """Write the segmentation model; ``metadata`` overrides (None removes) default keys."""
    t = np.arange(HOP) / RATE
    filters = np.stack(
        [f(2 * np.pi * hz * t) for hz in (LOW_HZ, HIGH_HZ) for f in (np.sin, np.cos)]
    ).astype(np.float32)[:, None, :]  # (4, 1, HOP)
    pairs = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32)  # sin² + cos² per tone
    # log-probability of each class from log(energy low), log(energy high):
    # nobody: the level; one tone: its energy; both: their product over the level
    weights = np.zeros((2, 7), np.float32)
    bias = np.full(7, _ABSENT, np.float32)
    bias[0] = np.log(_LEVEL)
    weights[0, 1], bias[1] = 1, 0
    weights[1, 2], bias[2] = 1, 0
    weights[:, 4], bias[4] = 1, -np.log(_LEVEL)
    inits = [
        numpy_helper.from_array(filters, "filters"),
        numpy_helper.from_array(pairs, "pairs"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "tiny"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "filters"], ["bands"], strides=[HOP]),  # (N, 4, F)
        helper.make_node("Transpose", ["bands"], ["frames"], perm=[0, 2, 1]),  # (N, F, 4)
        helper.make_node("Mul", ["frames", "frames"], ["squares"]),
        helper.make_node("MatMul", ["squares", "pairs"], ["energy"]),  # (N, F, 2)
        helper.make_node("Add", ["energy", "tiny"], ["floored"]),
        helper.make_node("Log", ["floored"], ["loudness"]),
        helper.make_node("MatMul", ["loudness", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-segmentation",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "F", 7])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, directory / filename, SEGMENTATION_METADATA | (metadata or {}))


def write_embedding(
    directory: Path,
    *,
    filename: str = "embedding.onnx",
    metadata: dict[str, str | None] | None = None,
    seed: int = 0,
) -> Path:
    """Write the embedding model; ``metadata`` overrides (None removes) default keys."""
    dim = int(EMBEDDING_METADATA["output_dim"])
    centre = np.eye(80, dtype=np.float32) - np.full((80, 80), 1 / 80, np.float32)
    projection = centre @ np.random.default_rng(seed).standard_normal((80, dim)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "time"),
        numpy_helper.from_array(projection, "projection"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x", "time"], ["spectrum"], keepdims=0),  # (N, 80)
        helper.make_node("MatMul", ["spectrum", "projection"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-embedding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return _save(model, directory / filename, EMBEDDING_METADATA | (metadata or {}))
