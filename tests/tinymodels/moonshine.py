"""A tiny Moonshine in the hub's ONNX layout (``onnx-community/moonshine-*-ONNX``): a random
encoder and merged decoder with Moonshine's real input and output names, and a
``tokenizer.json`` written from moonshine-voice's real ``tokenizer.bin``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bragi.backends.moonshine import read_vocabulary

__all__ = ["write_tiny_moonshine", "write_tokenizer_json"]


def write_tokenizer_json(tokenizer_bin: Path, folder: Path) -> Path:
    """The hub's tokenizer.json (a byte-fallback BPE) for the same vocabulary."""
    pieces = read_vocabulary(tokenizer_bin)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for token, piece in enumerate(pieces[259:32_000], start=259):
        vocab.setdefault(piece.decode("utf-8", "replace"), token)
    decoder = [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]
    special = [{"id": i, "content": c, "special": True} for i, c in enumerate(list(vocab)[:3])]
    spec = {
        "version": "1.0",
        "added_tokens": [
            s | {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
            for s in special
        ],
        "truncation": None,
        "padding": None,
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoder},
        "model": {"type": "BPE", "byte_fallback": True, "vocab": vocab, "merges": []},
    }
    path = folder / "tokenizer.json"
    path.write_text(json.dumps(spec))
    return path


def write_tiny_moonshine(onnx: Any, folder: Path, vocab: int = 512, heads: int = 2) -> None:
    """Random-weight encoder and merged decoder with Moonshine's real input/output names
    (no attention masks, as some exports have none)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    size, hidden = 3, 4

    def const(name: str, shape: tuple[int, ...]) -> Any:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    audio = helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["b", "n"])
    states = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "t", 4])
    encoder = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["input_values", "axis2"], ["column"]),
            helper.make_node("MatMul", ["column", "w"], ["last_hidden_state"]),
        ],
        "encoder",
        [audio],
        [states],
        [numpy_helper.from_array(np.array([2], np.int64), "axis2"), const("w", (1, hidden))],
    )
    kv = ["b", heads, "p", size]
    names = [
        f"{i}.{a}.{b}" for i in range(2) for a in ("decoder", "encoder") for b in ("key", "value")
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
        helper.make_tensor_value_info(
            "encoder_hidden_states", TensorProto.FLOAT, ["b", "t", hidden]
        ),
        *(
            helper.make_tensor_value_info(f"past_key_values.{n}", TensorProto.FLOAT, kv)
            for n in names
        ),
        helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["logits"]),
        helper.make_node("Gather", ["kv_table", "input_ids"], ["step_kv"]),  # [b, s, heads, size]
        helper.make_node("Transpose", ["step_kv"], ["new_kv"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["encoder_hidden_states", "cross"], ["flat"]),
        helper.make_node("Reshape", ["flat", "cross_shape"], ["cross_bthd"]),
        helper.make_node("Transpose", ["cross_bthd"], ["cross_kv"], perm=[0, 2, 1, 3]),
    ]
    for n in names:
        if ".decoder." in f".{n}":
            nodes.append(
                helper.make_node(
                    "Concat", [f"past_key_values.{n}", "new_kv"], [f"present.{n}"], axis=2
                )
            )
        else:
            nodes.append(helper.make_node("Identity", ["cross_kv"], [f"present.{n}"]))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", vocab])] + [
        helper.make_tensor_value_info(f"present.{n}", TensorProto.FLOAT, kv) for n in names
    ]
    initializers = [
        const("embedding", (vocab, vocab)),
        const("kv_table", (vocab, heads, size)),
        const("cross", (hidden, heads * size)),
        numpy_helper.from_array(np.array([1, -1, heads, size], np.int64), "cross_shape"),
    ]
    decoder = helper.make_graph(nodes, "decoder", inputs, outputs, initializers)
    for graph, name in ((encoder, "encoder_model"), (decoder, "decoder_model_merged")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(folder / f"{name}.onnx"))
