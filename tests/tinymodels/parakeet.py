"""A tiny NVIDIA Parakeet (FastConformer TDT or RNN-T) in onnx-asr's hub layout.

The layout of ``istupakov/parakeet-tdt-0.6b-v2-onnx`` and ``-v3-onnx`` (NeMo's own
``model.export()`` plus a vocabulary and a config), read by onnx-asr's
``onnx_asr/models/nemo.py``:

* ``encoder-model.onnx`` (weights in ``encoder-model.onnx.data``, as the real 2.4 GB
  encoder must keep them): ``audio_signal`` float32 ``[B, 128, T]`` (log-mel features) and
  ``length`` int64 ``[B]`` in; ``outputs`` float32 ``[B, D, ceil(T / 8)]`` and
  ``encoded_lengths`` int64 ``[B]`` out;
* ``decoder_joint-model.onnx``: ``encoder_outputs`` float32 ``[B, D, 1]``, ``targets`` int32
  ``[B, 1]``, ``target_length`` int32 ``[B]``, ``input_states_1`` / ``input_states_2``
  float32 ``[2, B, 640]`` (two LSTM layers) in; ``outputs`` float32 ``[B, 1, 1, V + 5]``
  (token logits, then TDT's five duration logits), ``prediction_lengths``,
  ``output_states_1`` / ``output_states_2`` out;
* ``vocab.txt`` (``token id`` lines, SentencePiece ``▁`` for spaces, ``<blk>`` last) and
  ``config.json`` (``model_type``, ``features_size``, ``subsampling_factor``).

The real encoder width is 1024 and the state width 640; here the encoder is 16 wide and the
states 8, and ``quantization="int8"`` names the files as the hub's int8 exports are named.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["MULTILINGUAL", "VOCAB", "write_parakeet"]

FEATURES = 128
SUBSAMPLING = 8
WIDTH = 16  # encoder output width (1024 in the real model)
STATE = 8  # prediction network state width (640 in the real model)
DURATIONS = 5  # TDT durations 0..4
VOCAB = ["<unk>", "▁the", "▁cat", "▁sat", "▁on", "▁mat", "s", "ing", ".", ",", "▁Ever", "<blk>"]
#: Like v3's vocabulary, which spells 25 European languages: letters beyond ASCII.
MULTILINGUAL = [*VOCAB[:-1], "▁über", "ß", "▁ça", "▁и", "<blk>"]


def write_parakeet(
    directory: Path,
    *,
    model_type: Literal["nemo-conformer-tdt", "nemo-conformer-rnnt"] = "nemo-conformer-tdt",
    quantization: str | None = None,
    external_data: bool = True,
    vocab: Sequence[str] = VOCAB,
    seed: int = 0,
) -> Path:
    """Write the encoder, decoder-joint, vocab.txt and config.json into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = f".{quantization}" if quantization else ""
    encoder = f"encoder-model{suffix}.onnx"
    extra = DURATIONS if model_type == "nemo-conformer-tdt" else 0
    _save(_encoder(rng), directory / encoder, external_data)
    joint = _decoder_joint(rng, len(vocab), extra)
    _save(joint, directory / f"decoder_joint-model{suffix}.onnx", False)
    lines = "".join(f"{token} {index}\n" for index, token in enumerate(vocab))
    (directory / "vocab.txt").write_text(lines, encoding="utf-8")
    config = {"model_type": model_type, "features_size": FEATURES}
    config["subsampling_factor"] = SUBSAMPLING
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def _save(model: onnx.ModelProto, path: Path, external_data: bool) -> None:
    onnx.checker.check_model(model)
    if external_data:  # like the real encoder, which is past protobuf's 2 GB limit
        location = path.name + ".data"  # weights out, the small shape constants stay inline
        onnx.save(model, path, save_as_external_data=True, location=location, size_threshold=1024)
    else:
        onnx.save(model, path)


def _tensor(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _encoder(rng: np.random.Generator) -> onnx.ModelProto:
    """Keep every 8th feature frame (the 8x subsampling) and project it to ``WIDTH``."""
    consts = {"start": [0], "end": [2**62], "axis": [2], "step": [SUBSAMPLING], "one": [1]}
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()]
    inits += [numpy_helper.from_array(np.array(SUBSAMPLING, np.int64), "factor")]
    inits.append(_tensor(rng, "w", FEATURES, WIDTH))
    nodes = [
        helper.make_node("Slice", ["audio_signal", "start", "end", "axis", "step"], ["kept"]),
        helper.make_node("Transpose", ["kept"], ["frames"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["frames", "w"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["hidden"]),
        helper.make_node("Transpose", ["hidden"], ["outputs"], perm=[0, 2, 1]),
        # ceil(length / 8), as NeMo's three stride-2 convolutions give
        helper.make_node("Sub", ["length", "one"], ["length_1"]),
        helper.make_node("Div", ["length_1", "factor"], ["steps"]),
        helper.make_node("Add", ["steps", "one"], ["encoded_lengths"]),
    ]
    graph = helper.make_graph(
        nodes,
        "encoder",
        [
            helper.make_tensor_value_info(
                "audio_signal", TensorProto.FLOAT, ["batch", FEATURES, "time"]
            ),
            helper.make_tensor_value_info("length", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["batch", WIDTH, "frames"]),
            helper.make_tensor_value_info("encoded_lengths", TensorProto.INT64, ["batch"]),
        ],
        initializer=inits,
    )
    return _model(graph)


def _decoder_joint(rng: np.random.Generator, vocab: int, durations: int) -> onnx.ModelProto:
    """Token (+ duration) logits from the encoder frame and the previous token; states drift."""
    width = vocab + durations
    inits = [_tensor(rng, "joint", WIDTH, width), _tensor(rng, "embedding", vocab, width)]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    nodes = [
        helper.make_node("Transpose", ["encoder_outputs"], ["frame"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["frame", "joint"], ["from_audio"]),
        helper.make_node("Gather", ["embedding", "targets"], ["from_token"], axis=0),
        helper.make_node("Add", ["from_audio", "from_token"], ["logits"]),
        helper.make_node("Unsqueeze", ["logits", "axis1"], ["outputs"]),
        helper.make_node("Identity", ["target_length"], ["prediction_lengths"]),
        helper.make_node("Tanh", ["input_states_1"], ["output_states_1"]),
        helper.make_node("Tanh", ["input_states_2"], ["output_states_2"]),
    ]
    state: list[int | str] = [2, "batch", STATE]
    graph = helper.make_graph(
        nodes,
        "decoder_joint",
        [
            helper.make_tensor_value_info(
                "encoder_outputs", TensorProto.FLOAT, ["batch", WIDTH, "frames"]
            ),
            helper.make_tensor_value_info("targets", TensorProto.INT32, ["batch", "tokens"]),
            helper.make_tensor_value_info("target_length", TensorProto.INT32, ["batch"]),
            helper.make_tensor_value_info("input_states_1", TensorProto.FLOAT, [2, "batch", STATE]),
            helper.make_tensor_value_info("input_states_2", TensorProto.FLOAT, [2, "batch", STATE]),
        ],
        [
            helper.make_tensor_value_info(
                "outputs", TensorProto.FLOAT, ["batch", "frames", "tokens", width]
            ),
            helper.make_tensor_value_info("prediction_lengths", TensorProto.INT32, ["batch"]),
            helper.make_tensor_value_info("output_states_1", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("output_states_2", TensorProto.FLOAT, state),
        ],
        initializer=inits,
    )
    return _model(graph)
