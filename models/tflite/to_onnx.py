"""Turn a TFLite :class:`~models.tflite.reader.Graph` into an ONNX model (opset 17, dynamic batch).

Layout: TFLite computes in NHWC, ONNX convolutions in NCHW. The input is transposed once to NCHW
and every 4-d activation stays NCHW through the graph; an operator whose meaning depends on the
memory order (RESHAPE, a concatenation mixing ranks) gets its input transposed back to NHWC first,
and 4-d graph outputs are transposed back, so every output has TFLite's shape and element order.

Padding: TFLite's SAME pads ``total = max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)``
with ``total // 2`` before and the rest after (the extra pixel goes to the bottom/right). The pads
are computed here and written explicitly, never as ONNX ``auto_pad`` (whose SAME_UPPER agrees today
but is deprecated).

The batch dimension is symbolic (``batch``), so all views of a frame run in one call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.tflite.reader import Graph, Operator, TFLiteError, read_tflite

logger = logging.getLogger(__name__)

#: Bumped whenever the ONNX this module writes changes; stored in model cards to trigger reconversion.
CONVERTER_VERSION = "1"
OPSET = 17
BATCH = "batch"
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)


def same_padding(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """TFLite's SAME padding along one axis: ``(pad_before, pad_after, out_size)``.

    ``out_size = ceil(in_size / stride)``; the odd pixel of the total padding goes after.
    """
    out_size = -(-in_size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2, out_size


def convert_tflite(
    path: str | Path, output_names: Sequence[str] | None = None, expose: Sequence[int] = ()
) -> onnx.ModelProto:
    """Read ``path`` (``.tflite``) and convert it; see :func:`graph_to_onnx`."""
    return graph_to_onnx(read_tflite(path), output_names=output_names, expose=expose)


def graph_to_onnx(
    graph: Graph, output_names: Sequence[str] | None = None, expose: Sequence[int] = ()
) -> onnx.ModelProto:
    """Build the ONNX model of ``graph``.

    Args:
        graph: the TFLite graph (constant weights already dequantised and densified).
        output_names: names for the graph outputs, in TFLite's output order; default the TFLite
            tensor names. The input keeps its TFLite name and NHWC float32 layout ``(B, H, W, 3)``.
        expose: indices of intermediate tensors to add as extra outputs (after the graph outputs),
            in TFLite's layout and named by their TFLite names: for locating a mismatch op by op.

    Raises:
        TFLiteError: an operator or option this converter does not support, naming it.
    """
    if output_names is not None and len(output_names) != len(graph.outputs):
        raise TFLiteError(f"{len(output_names)} output names for {len(graph.outputs)} outputs")
    builder = _Builder(graph)
    for index in graph.inputs:
        builder.add_input(index)
    for number, op in enumerate(graph.operators):
        handler = _HANDLERS.get(op.opcode)
        if handler is None:
            raise TFLiteError(f"operator #{number} {op.opcode} is not supported by the converter")
        handler(builder, op)
    names = list(output_names) if output_names is not None else [graph.tensors[i].name for i in graph.outputs]
    for index, name in zip(graph.outputs, names, strict=True):
        builder.add_output(index, name)
    for index in expose:
        if index not in graph.outputs and graph.tensors[index].data is None:
            builder.add_output(index, graph.tensors[index].name)
    onnx_graph = helper.make_graph(builder.nodes, "tflite", builder.inputs, builder.outputs, builder.initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="crossview.models.tflite",
        producer_version=CONVERTER_VERSION,
    )
    model.ir_version = 8  # what opset 17 needs; readable by older ONNX Runtime releases too
    onnx.checker.check_model(model)
    return model


class _Builder:
    """Accumulates ONNX nodes while tracking which activations are stored NCHW."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.names: dict[int, str] = {}  # tensor index -> ONNX name of its value as produced
        self.nchw: set[int] = set()  # tensor indices whose ONNX value is the NCHW transpose
        self._converted: dict[tuple[int, bool], str] = {}
        self._count = 0

    # -- naming ---------------------------------------------------------------------------------
    def fresh(self, stem: str) -> str:
        """A unique ONNX name; TFLite joins fused ops' names with ';', the first one is enough."""
        self._count += 1
        return f"{stem.split(';')[0]}__{self._count}"

    def shape(self, index: int) -> tuple[int, ...]:
        return self.graph.tensors[index].shape

    def const(self, value: np.ndarray, stem: str) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], stem: str, **attributes) -> str:
        out = self.fresh(stem)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attributes))
        return out

    # -- values ---------------------------------------------------------------------------------
    def constant(self, index: int) -> np.ndarray | None:
        return self.graph.tensors[index].data

    def value(self, index: int, nchw: bool) -> str:
        """ONNX name of tensor ``index`` in the layout asked for (``nchw`` only matters for 4-d)."""
        tensor = self.graph.tensors[index]
        nchw = nchw and len(tensor.shape) == 4
        if tensor.data is not None:
            key = (index, nchw)
            if key not in self._converted:
                data = tensor.data.transpose(_TO_NCHW) if nchw else tensor.data
                self._converted[key] = self.const(data, tensor.name)
            return self._converted[key]
        if index not in self.names:
            raise TFLiteError(f"tensor {tensor.name!r} is used before it is computed")
        stored_nchw = index in self.nchw
        if stored_nchw == nchw:
            return self.names[index]
        key = (index, nchw)
        if key not in self._converted:
            perm = _TO_NCHW if nchw else _TO_NHWC
            self._converted[key] = self.node("Transpose", [self.names[index]], tensor.name, perm=list(perm))
        return self._converted[key]

    def define(self, index: int, name: str, nchw: bool) -> None:
        self.names[index] = name
        if nchw:
            self.nchw.add(index)

    def activation(self, name: str, code: int, stem: str) -> str:
        """Apply a TFLite fused activation (ActivationFunctionType code) to ONNX value ``name``."""
        if code == 0:
            return name
        if code == 1:
            return self.node("Relu", [name], stem)
        if code in (2, 3):  # RELU_N1_TO_1, RELU6
            low, high = (-1.0, 1.0) if code == 2 else (0.0, 6.0)
            bounds = [self.const(np.array(v, np.float32), "clip") for v in (low, high)]
            return self.node("Clip", [name, *bounds], stem)
        if code == 4:
            return self.node("Tanh", [name], stem)
        raise TFLiteError(f"fused activation code {code} is not supported")

    # -- graph boundary -------------------------------------------------------------------------
    def add_input(self, index: int) -> None:
        tensor = self.graph.tensors[index]
        if tensor.dtype != np.float32:
            raise TFLiteError(f"input {tensor.name!r} is {tensor.dtype}; only float32 inputs are supported")
        dims = [BATCH, *tensor.shape[1:]]
        self.inputs.append(helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, dims))
        self.define(index, tensor.name, nchw=False)

    def add_output(self, index: int, name: str) -> None:
        tensor = self.graph.tensors[index]
        self.nodes.append(helper.make_node("Identity", [self.value(index, nchw=False)], [name], name=name))
        dims = [BATCH, *tensor.shape[1:]]
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))


# ------------------------------------------------------------------------------------------------
# Operators: one handler per TFLite builtin, each reading its options and defining its outputs.
def _spatial_pads(builder: _Builder, op: Operator, kernel: tuple[int, int], dilation: tuple[int, int]) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right] for the operator's padding mode."""
    _, height, width, _ = builder.shape(op.inputs[0])
    options = op.options
    if options["padding"] == 1:  # VALID
        return [0, 0, 0, 0]
    top, bottom, out_h = same_padding(height, kernel[0], options["stride_h"], dilation[0])
    left, right, out_w = same_padding(width, kernel[1], options["stride_w"], dilation[1])
    expected = builder.shape(op.outputs[0])[1:3]
    if (out_h, out_w) != tuple(expected):
        raise TFLiteError(f"{op.opcode}: SAME padding gives {(out_h, out_w)}, the model declares {expected}")
    return [top, left, bottom, right]


def _convolution(builder: _Builder, op: Operator, depthwise: bool) -> None:
    weights = builder.constant(op.inputs[1])
    if weights is None:
        raise TFLiteError(f"{op.opcode}: weights computed at run time are not supported")
    options = op.options
    dilation = (options["dilation_h_factor"], options["dilation_w_factor"])
    in_channels = builder.shape(op.inputs[0])[3]
    if depthwise:
        kernel = weights.shape[1:3]
        weights_oihw = weights.transpose(3, 0, 1, 2)  # (1, H, W, C*M) -> (C*M, 1, H, W)
        group = in_channels
    else:
        kernel = weights.shape[1:3]
        weights_oihw = weights.transpose(0, 3, 1, 2)  # (O, H, W, I) -> (O, I, H, W)
        group = in_channels // weights.shape[3]
    name = builder.graph.tensors[op.outputs[0]].name
    inputs = [builder.value(op.inputs[0], nchw=True), builder.const(weights_oihw.astype(np.float32), name + "/w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(builder.value(op.inputs[2], nchw=False))
    out = builder.node(
        "Conv",
        inputs,
        name,
        kernel_shape=list(kernel),
        strides=[options["stride_h"], options["stride_w"]],
        dilations=list(dilation),
        pads=_spatial_pads(builder, op, tuple(kernel), dilation),
        group=group,
    )
    builder.define(op.outputs[0], builder.activation(out, options["fused_activation_function"], name), nchw=True)


def _conv_2d(builder: _Builder, op: Operator) -> None:
    _convolution(builder, op, depthwise=False)


def _depthwise_conv_2d(builder: _Builder, op: Operator) -> None:
    _convolution(builder, op, depthwise=True)


def _pool(builder: _Builder, op: Operator) -> None:
    options = op.options
    kernel = (options["filter_height"], options["filter_width"])
    name = builder.graph.tensors[op.outputs[0]].name
    attributes = dict(
        kernel_shape=list(kernel),
        strides=[options["stride_h"], options["stride_w"]],
        pads=_spatial_pads(builder, op, kernel, (1, 1)),
    )
    if op.opcode == "AVERAGE_POOL_2D":
        attributes["count_include_pad"] = 0  # TFLite averages over the valid pixels only
    op_type = "MaxPool" if op.opcode == "MAX_POOL_2D" else "AveragePool"
    out = builder.node(op_type, [builder.value(op.inputs[0], nchw=True)], name, **attributes)
    builder.define(op.outputs[0], builder.activation(out, options["fused_activation_function"], name), nchw=True)


def _all_4d(builder: _Builder, indices: Sequence[int]) -> bool:
    return all(len(builder.shape(i)) == 4 for i in indices)


def _elementwise(builder: _Builder, op: Operator) -> None:
    """ADD / MUL / SUB with broadcasting; a channel vector broadcasts over NCHW as (C, 1, 1)."""
    out_shape = builder.shape(op.outputs[0])
    nchw = len(out_shape) == 4 and all(
        len(builder.shape(i)) == 4 or builder.constant(i) is not None for i in op.inputs
    )
    operands = []
    for index in op.inputs:
        data = builder.constant(index)
        if nchw and data is not None and data.ndim < 4:
            # numpy broadcasting aligns trailing NHWC axes: pad with leading ones, then reorder.
            padded = data.reshape((1,) * (4 - data.ndim) + data.shape)
            operands.append(builder.const(padded.transpose(_TO_NCHW), "operand"))
        else:
            operands.append(builder.value(index, nchw=nchw))
    name = builder.graph.tensors[op.outputs[0]].name
    op_type = {"ADD": "Add", "MUL": "Mul", "SUB": "Sub"}[op.opcode]
    out = builder.node(op_type, operands, name)
    builder.define(op.outputs[0], builder.activation(out, op.options.get("fused_activation_function", 0), name), nchw)


def _concatenation(builder: _Builder, op: Operator) -> None:
    rank = len(builder.shape(op.outputs[0]))
    axis = op.options["axis"] % rank
    nchw = rank == 4 and _all_4d(builder, op.inputs)
    onnx_axis = _TO_NCHW.index(axis) if nchw else axis
    name = builder.graph.tensors[op.outputs[0]].name
    out = builder.node("Concat", [builder.value(i, nchw=nchw) for i in op.inputs], name, axis=onnx_axis)
    builder.define(op.outputs[0], builder.activation(out, op.options["fused_activation_function"], name), nchw)


def _reshape(builder: _Builder, op: Operator) -> None:
    """RESHAPE in TFLite's (NHWC) element order; the batch dimension is copied, not fixed to 1."""
    in_shape = builder.shape(op.inputs[0])
    target = builder.constant(op.inputs[1]) if len(op.inputs) > 1 else None
    new_shape = [int(v) for v in (target if target is not None else op.options.get("new_shape", ()))]
    out_shape = builder.shape(op.outputs[0])
    if not new_shape or len(new_shape) != len(out_shape):
        new_shape = list(out_shape)
    if new_shape[0] == in_shape[0] == out_shape[0] == 1:
        new_shape[0] = 0  # ONNX: copy dimension 0 (the batch) from the input, as allowzero=0 does
    name = builder.graph.tensors[op.outputs[0]].name
    shape_name = builder.const(np.array(new_shape, np.int64), name + "/shape")
    out = builder.node("Reshape", [builder.value(op.inputs[0], nchw=False), shape_name], name)
    builder.define(op.outputs[0], out, nchw=False)


def _pad(builder: _Builder, op: Operator) -> None:
    paddings = builder.constant(op.inputs[1])
    if paddings is None:
        raise TFLiteError("PAD: paddings computed at run time are not supported")
    nchw = paddings.shape[0] == 4
    if nchw:
        paddings = paddings[list(_TO_NCHW)]
    pads = np.concatenate([paddings[:, 0], paddings[:, 1]]).astype(np.int64)
    name = builder.graph.tensors[op.outputs[0]].name
    inputs = [builder.value(op.inputs[0], nchw=nchw), builder.const(pads, name + "/pads")]
    if op.opcode == "PADV2" and len(op.inputs) > 2:
        inputs.append(builder.value(op.inputs[2], nchw=False))
    builder.define(op.outputs[0], builder.node("Pad", inputs, name, mode="constant"), nchw)


def _resize_bilinear(builder: _Builder, op: Operator) -> None:
    size = builder.constant(op.inputs[1])
    if size is None:
        raise TFLiteError("RESIZE_BILINEAR: output size computed at run time is not supported")
    if op.options["align_corners"]:
        mode = "align_corners"
    elif op.options["half_pixel_centers"]:
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    name = builder.graph.tensors[op.outputs[0]].name
    x = builder.value(op.inputs[0], nchw=True)
    batch_channels = builder.node("Shape", [x], name + "/nc", start=0, end=2)
    sizes = builder.node("Concat", [batch_channels, builder.const(size.astype(np.int64), name + "/hw")], name, axis=0)
    out = builder.node("Resize", [x, "", "", sizes], name, mode="linear", coordinate_transformation_mode=mode)
    builder.define(op.outputs[0], out, nchw=True)


def _depth_to_space(builder: _Builder, op: Operator) -> None:
    # TFLite's output[h*b + i, w*b + j, c] = input[h, w, (i*b + j)*C + c] is ONNX's DCR order.
    name = builder.graph.tensors[op.outputs[0]].name
    out = builder.node(
        "DepthToSpace", [builder.value(op.inputs[0], nchw=True)], name, blocksize=op.options["block_size"], mode="DCR"
    )
    builder.define(op.outputs[0], out, nchw=True)


def _unary(op_type: str) -> Callable[[_Builder, Operator], None]:
    def handler(builder: _Builder, op: Operator) -> None:
        nchw = op.inputs[0] in builder.nchw
        name = builder.graph.tensors[op.outputs[0]].name
        builder.define(op.outputs[0], builder.node(op_type, [builder.value(op.inputs[0], nchw=nchw)], name), nchw)

    return handler


_HANDLERS: dict[str, Callable[[_Builder, Operator], None]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "MAX_POOL_2D": _pool,
    "AVERAGE_POOL_2D": _pool,
    "ADD": _elementwise,
    "MUL": _elementwise,
    "SUB": _elementwise,
    "CONCATENATION": _concatenation,
    "RESHAPE": _reshape,
    "PAD": _pad,
    "PADV2": _pad,
    "RESIZE_BILINEAR": _resize_bilinear,
    "DEPTH_TO_SPACE": _depth_to_space,
    "LOGISTIC": _unary("Sigmoid"),
    "RELU": _unary("Relu"),
    "TANH": _unary("Tanh"),
}
