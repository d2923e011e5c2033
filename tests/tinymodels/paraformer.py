"""A tiny FunASR Paraformer in sherpa-onnx's layout: ``model.onnx`` (or ``model.int8.onnx``)
plus ``tokens.txt``.

The graph has the interface of FunASR's export as sherpa-onnx repackages it
(``sherpa-onnx/csrc/offline-paraformer-model.cc``, ``offline-recognizer-paraformer-impl.h``):

* inputs ``speech`` float32 ``[N, T, 560]`` (80 fbank bins stacked by LFR 7/6) and
  ``speech_lengths`` int32 ``[N]``;
* outputs ``logits`` float32 ``[N, T, vocab]`` and ``token_num`` int64 ``[N]``, plus, for the
  timestamp-capable exports, ``us_alphas`` and ``us_cif_peak`` float32 ``[N, 3 * T']``
  (the CIF predictor upsampled three times: a peak is a token boundary, 20 ms apart);
* metadata ``vocab_size``, ``lfr_window_size``, ``lfr_window_shift``, ``neg_mean`` and
  ``inv_stddev`` (560 CMVN values each): sherpa-onnx exits the process when one is missing.

The logits are one random projection per LFR frame, so the model emits one noise token per
60 ms and never ``</s>``; its CIF peaks fall every third upsampled frame, one more peak than
tokens, which is what sherpa-onnx needs before it reports token times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["TOKENS", "write_paraformer"]

FEATURE_DIM = 80 * 7  # fbank bins x lfr_window_size
#: A miniature of paraformer-zh's tokens.txt: specials, characters, BPE pieces ("@@" joins).
TOKENS = ["<blank>", "<s>", "</s>", "你", "好", "世", "界", "the", "cat", "sat", "wor@@", "ld"]
TOKENS += ["<unk>"]
_SPECIAL = [TOKENS.index(t) for t in ("<blank>", "<s>", "</s>", "<unk>")]


def write_paraformer(
    directory: Path,
    *,
    timestamps: bool = True,
    filename: str = "model.onnx",
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write the model and tokens.txt into ``directory``; ``metadata`` overrides the defaults."""
    directory.mkdir(parents=True, exist_ok=True)
    model = _graph(timestamps, np.random.default_rng(seed))
    defaults = {
        "model_type": "paraformer",
        "version": "1",
        "model_author": "bragi-tests",
        "comment": "tiny random Paraformer for tests",
        "vocab_size": str(len(TOKENS)),
        "lfr_window_size": "7",
        "lfr_window_shift": "6",
        "neg_mean": ",".join(["-8.0"] * FEATURE_DIM),
        "inv_stddev": ",".join(["0.25"] * FEATURE_DIM),
    }
    for key, value in (defaults | (metadata or {})).items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, directory / filename)
    lines = "".join(f"{token} {index}\n" for index, token in enumerate(TOKENS))
    (directory / "tokens.txt").write_text(lines, encoding="utf-8")
    return directory


def _graph(timestamps: bool, rng: np.random.Generator) -> onnx.ModelProto:
    vocab = len(TOKENS)
    bias = rng.normal(size=vocab).astype(np.float32)
    bias[_SPECIAL] = -1e4  # never </s>: one token per frame, so the CIF peaks line up
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (FEATURE_DIM, vocab)).astype(np.float32), "w"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array(0, np.int64), "zero_s"),
        numpy_helper.from_array(np.array(1, np.int64), "one_s"),
        numpy_helper.from_array(np.array(3, np.int64), "three_s"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("MatMul", ["speech", "w"], ["projected"]),
        helper.make_node("Add", ["projected", "b"], ["logits"]),
        helper.make_node("Cast", ["speech_lengths"], ["token_num"], to=TensorProto.INT64),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", vocab]),
        helper.make_tensor_value_info("token_num", TensorProto.INT64, ["N"]),
    ]
    if timestamps:
        nodes += [  # peaks at 0, 3, 6, ... over 3 * (T + 1) upsampled frames
            helper.make_node("Shape", ["speech"], ["shape"]),
            helper.make_node("Gather", ["shape", "one_s"], ["frames"], axis=0),
            helper.make_node("Add", ["frames", "one_s"], ["frames_1"]),
            helper.make_node("Mul", ["frames_1", "three_s"], ["upsampled"]),
            helper.make_node("Range", ["zero_s", "upsampled", "one_s"], ["positions"]),
            helper.make_node("Mod", ["positions", "three_s"], ["phase"]),
            helper.make_node("Equal", ["phase", "zero_s"], ["is_peak"]),
            helper.make_node("Cast", ["is_peak"], ["peak_row"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["peak_row", "axis0"], ["peak_1"]),
            helper.make_node("Slice", ["shape", "axis0", "one"], ["batch"]),
            helper.make_node("Unsqueeze", ["upsampled", "axis0"], ["width"]),
            helper.make_node("Concat", ["batch", "width"], ["peak_shape"], axis=0),
            helper.make_node("Expand", ["peak_1", "peak_shape"], ["us_cif_peak"]),
            helper.make_node("Identity", ["us_cif_peak"], ["us_alphas"]),
        ]
        outputs += [
            helper.make_tensor_value_info("us_alphas", TensorProto.FLOAT, ["N", "U"]),
            helper.make_tensor_value_info("us_cif_peak", TensorProto.FLOAT, ["N", "U"]),
        ]
    graph = helper.make_graph(
        nodes,
        "paraformer",
        [
            helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["N", "T", FEATURE_DIM]),
            helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["N"]),
        ],
        outputs,
        initializer=inits,
    )
    # IR 8 / opset 13: old enough for the ONNX Runtime that sherpa-onnx bundles.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
