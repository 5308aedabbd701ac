"""Read a TFLite flatbuffer into a plain Python graph: tensors, constant weights and operators.

The flatbuffer is parsed with the generated schema classes of the ``tflite`` package. Weights are
returned as float32 arrays ready to use: float16 and int8 weights are dequantised, sparse weights
(TFLite's ``DENSIFY`` input) are expanded to dense arrays, and the ``DENSIFY`` / ``DEQUANTIZE``
operators that only prepare constant weights are evaluated here (constant folding), so the graph a
converter sees holds compute operators only.

Shapes are TFLite's: activations are NHWC, convolution filters OHWI, depthwise filters 1HW(C*M).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from calibration.errors import CrossviewError

# tflite.TensorType codes -> numpy dtypes (the types these models use, plus the common integer ones).
_DTYPES = {
    tflite.TensorType.FLOAT32: np.dtype(np.float32),
    tflite.TensorType.FLOAT16: np.dtype(np.float16),
    tflite.TensorType.INT32: np.dtype(np.int32),
    tflite.TensorType.UINT8: np.dtype(np.uint8),
    tflite.TensorType.INT64: np.dtype(np.int64),
    tflite.TensorType.INT16: np.dtype(np.int16),
    tflite.TensorType.INT8: np.dtype(np.int8),
    tflite.TensorType.BOOL: np.dtype(np.bool_),
}

_OPCODE_NAMES = {value: name for name, value in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}

# Operator options the converter reads, by the name of their flatbuffer table: option -> getter.
_OPTIONS = {
    "Conv2DOptions": ("Padding", "StrideW", "StrideH", "FusedActivationFunction", "DilationWFactor", "DilationHFactor"),
    "DepthwiseConv2DOptions": (
        "Padding", "StrideW", "StrideH", "DepthMultiplier", "FusedActivationFunction", "DilationWFactor",
        "DilationHFactor",
    ),
    "Pool2DOptions": ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight", "FusedActivationFunction"),
    "AddOptions": ("FusedActivationFunction",),
    "MulOptions": ("FusedActivationFunction",),
    "ConcatenationOptions": ("Axis", "FusedActivationFunction"),
    "ResizeBilinearOptions": ("AlignCorners", "HalfPixelCenters"),
    "DepthToSpaceOptions": ("BlockSize",),
    "ReshapeOptions": ("NewShapeAsNumpy",),
}
_OPTION_TYPES = {value: name for name, value in vars(tflite.BuiltinOptions).items() if not name.startswith("_")}


class TFLiteError(CrossviewError):
    """A TFLite file that cannot be read or holds something this reader does not support."""


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor of the graph.

    ``shape`` is TFLite's static shape (NHWC for images); ``data`` is the constant value (weights,
    shapes, paddings) or None for an activation computed at run time.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.data is not None and tuple(self.data.shape) != self.shape:
            raise TFLiteError(f"tensor {self.name!r}: data of shape {self.data.shape}, declared {self.shape}")


@dataclass(frozen=True, slots=True)
class Operator:
    """One operator: its builtin name (``"CONV_2D"``), input/output tensor indices and options.

    An input index of -1 is an omitted optional input (e.g. a convolution without bias).
    ``options`` maps snake_case names (``stride_h``, ``fused_activation_function``) to values.
    """

    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Graph:
    """The first subgraph of a TFLite model, with constant weight preparation already folded."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def __post_init__(self) -> None:
        for index in (*self.inputs, *self.outputs):
            if not 0 <= index < len(self.tensors):
                raise TFLiteError(f"graph input/output index {index} out of range ({len(self.tensors)} tensors)")

    def opcodes(self) -> dict[str, int]:
        """How many operators of each kind the graph holds."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.opcode] = counts.get(op.opcode, 0) + 1
        return counts


def read_tflite(source: str | Path | bytes) -> Graph:
    """Parse a ``.tflite`` file (path or its bytes) into a :class:`Graph`.

    Raises:
        TFLiteError: the file is not a TFLite model, has several subgraphs, or uses tensor types,
            sparsity or constant operators this reader does not handle.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteError(f"{name}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise TFLiteError(f"{name}: {model.SubgraphsLength()} subgraphs; only single-subgraph models are supported")
    subgraph = model.Subgraphs(0)
    tensors = [_read_tensor(model, subgraph, i, data, name) for i in range(subgraph.TensorsLength())]
    operators = []
    for i in range(subgraph.OperatorsLength()):
        raw = subgraph.Operators(i)
        code = model.OperatorCodes(raw.OpcodeIndex())
        opcode = _OPCODE_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
        if opcode == "CUSTOM":
            opcode = f"CUSTOM:{code.CustomCode().decode()}"
        inputs = tuple(int(v) for v in raw.InputsAsNumpy()) if raw.InputsLength() else ()
        outputs = tuple(int(v) for v in raw.OutputsAsNumpy()) if raw.OutputsLength() else ()
        operators.append(Operator(opcode, inputs, outputs, _read_options(raw)))
    inputs = tuple(int(v) for v in subgraph.InputsAsNumpy())
    outputs = tuple(int(v) for v in subgraph.OutputsAsNumpy())
    tensors, operators = _fold_constants(tensors, operators, name)
    return Graph(tuple(tensors), tuple(operators), inputs, outputs)


# ------------------------------------------------------------------------------------------------
# Tensors and buffers
def _read_tensor(model, subgraph, index: int, data: bytes, name: str) -> Tensor:
    raw = subgraph.Tensors(index)
    tensor_name = raw.Name().decode()
    dtype = _DTYPES.get(raw.Type())
    if dtype is None:
        raise TFLiteError(f"{name}: tensor {tensor_name!r} has unsupported type code {raw.Type()}")
    shape = tuple(int(v) for v in raw.ShapeAsNumpy()) if raw.ShapeLength() else ()
    buffer = model.Buffers(raw.Buffer())
    payload = _buffer_bytes(buffer, data)
    if not payload:
        return Tensor(index, tensor_name, shape, dtype)
    values = np.frombuffer(payload, dtype=dtype)
    sparsity = raw.Sparsity()
    if sparsity is not None:
        values = densify(values, shape, _read_sparsity(sparsity))
    elif values.size != int(np.prod(shape, dtype=np.int64)):
        raise TFLiteError(f"{name}: tensor {tensor_name!r} holds {values.size} values for shape {shape}")
    values = values.reshape(shape).copy()  # copy: own the memory rather than view the file bytes
    return Tensor(index, tensor_name, shape, dtype, values)


def _buffer_bytes(buffer, data: bytes) -> bytes:
    """A buffer's bytes: inline data, or an (offset, size) range of the file for models > 2 GB."""
    if buffer.DataLength():
        return buffer.DataAsNumpy().tobytes()
    offset, size = buffer.Offset(), buffer.Size()
    if offset > 1 and size > 0:
        return data[offset : offset + size]
    return b""


@dataclass(frozen=True, slots=True)
class Sparsity:
    """TFLite's sparse tensor format (``SparsityParameters`` of the schema).

    ``traversal_order`` lists the storage order of the n original dimensions followed by the block
    dimensions; ``block_map[k]`` is the original dimension that block dimension k subdivides; one
    ``levels`` entry per traversed dimension, each ``("dense", size)`` or
    ``("csr", array_segments, array_indices)``.
    """

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    levels: tuple[tuple, ...]

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.traversal_order):
            raise TFLiteError(
                f"sparsity: {len(self.levels)} dimension metadata for a traversal order of "
                f"{len(self.traversal_order)} dimensions"
            )


_INDEX_VECTORS = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}


def _read_index_vector(kind: int, table) -> np.ndarray:
    vector_class = _INDEX_VECTORS.get(kind)
    if vector_class is None or table is None:
        raise TFLiteError(f"sparsity: missing or unknown index vector type {kind}")
    vector = vector_class()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64) if vector.ValuesLength() else np.zeros(0, np.int64)


def _read_sparsity(raw) -> Sparsity:
    levels = []
    for k in range(raw.DimMetadataLength()):
        meta = raw.DimMetadata(k)
        if meta.Format() == tflite.DimensionType.DENSE:
            levels.append(("dense", int(meta.DenseSize())))
        else:
            segments = _read_index_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _read_index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            levels.append(("csr", segments, indices))
    order = tuple(int(v) for v in raw.TraversalOrderAsNumpy()) if raw.TraversalOrderLength() else ()
    block_map = tuple(int(v) for v in raw.BlockMapAsNumpy()) if raw.BlockMapLength() else ()
    return Sparsity(order, block_map, tuple(levels))


def densify(values: np.ndarray, dense_shape: tuple[int, ...], sparsity: Sparsity) -> np.ndarray:
    """Expand TFLite sparse storage into a dense array (what the ``DENSIFY`` operator computes).

    The stored values are the leaves of a depth-first walk over the traversed dimensions (original
    dimensions in ``traversal_order``, then block dimensions): a dense level visits every index, a
    CSR level visits ``array_indices[array_segments[p]:array_segments[p+1]]`` where p is the position
    reached in the level above. A block dimension's index adds ``block_index * block_size`` to the
    original dimension it subdivides. Vectorised one level at a time, which keeps the walk's order.

    Args:
        values: ``(S,)`` the stored (non-zero) values, in storage order.
        dense_shape: the dense shape, ``n`` dimensions.
        sparsity: the format description.

    Returns:
        ``dense_shape`` array of ``values.dtype``, zeros where nothing is stored.
    """
    rank = len(dense_shape)
    order = sparsity.traversal_order
    if sorted(order[:rank]) != list(range(rank)) or len(order) != rank + len(sparsity.block_map):
        raise TFLiteError(f"sparsity: traversal order {order} does not fit a {rank}-d tensor")
    block_size = {}
    for level, dim in enumerate(order):
        if dim >= rank:
            kind = sparsity.levels[level]
            if kind[0] != "dense":
                raise TFLiteError("sparsity: a block dimension must be dense")
            block_size[dim - rank] = kind[1]
    position = np.zeros(1, np.int64)  # where each partial walk is, in the current level's numbering
    coords: list[np.ndarray] = []  # per traversed level, the index of every partial walk
    for level in sparsity.levels:
        if level[0] == "dense":
            size = level[1]
            coords = [np.repeat(c, size) for c in coords]
            coords.append(np.tile(np.arange(size, dtype=np.int64), position.size))
            position = (position[:, None] * size + np.arange(size)).ravel()
        else:
            segments, indices = level[1], level[2]
            if position.size and position.max() + 1 >= segments.size:
                raise TFLiteError("sparsity: array_segments too short for the level above")
            starts, stops = segments[position], segments[position + 1]
            counts = stops - starts
            if np.any(counts < 0) or (stops.size and stops.max() > indices.size):
                raise TFLiteError("sparsity: array_segments inconsistent with array_indices")
            # One entry per visited child: the children of walk p are starts[p] ... stops[p] - 1.
            offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            position = np.repeat(starts, counts) + offsets
            coords = [np.repeat(c, counts) for c in coords]
            coords.append(indices[position])
    if position.size != values.size:
        raise TFLiteError(f"sparsity: the format addresses {position.size} values, {values.size} stored")
    dense_index = [np.zeros(values.size, np.int64) for _ in range(rank)]
    for level, dim in enumerate(order[:rank]):
        dense_index[dim] = coords[level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = sparsity.block_map[block]
        dense_index[dim] = dense_index[dim] * block_size[block] + coords[level]
    dense = np.zeros(dense_shape, dtype=values.dtype)
    dense[tuple(dense_index)] = values
    return dense


# ------------------------------------------------------------------------------------------------
# Operators
def _snake(name: str) -> str:
    name = name.removesuffix("AsNumpy")
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _read_options(raw) -> dict[str, Any]:
    kind = _OPTION_TYPES.get(raw.BuiltinOptionsType())
    getters = _OPTIONS.get(kind or "")
    if getters is None or raw.BuiltinOptions() is None:
        return {}
    options = getattr(tflite, kind)()
    table = raw.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    values = {}
    for getter in getters:
        value = getattr(options, getter)()
        values[_snake(getter)] = tuple(int(v) for v in value) if isinstance(value, np.ndarray) else value
    return values


def dequantize(tensor: Tensor) -> np.ndarray:
    """A constant float tensor (float16 weights) as float32.

    Raises:
        TFLiteError: for an activation or integer-quantised weights (not used by the models we convert).
    """
    if tensor.data is None:
        raise TFLiteError(f"tensor {tensor.name!r}: cannot dequantise an activation")
    if tensor.dtype.kind != "f":
        raise TFLiteError(f"tensor {tensor.name!r}: integer-quantised ({tensor.dtype}) weights are not supported")
    return tensor.data.astype(np.float32)


def _fold_constants(tensors: list[Tensor], operators: list[Operator], name: str):
    """Evaluate DENSIFY and DEQUANTIZE of constant weights; keep every other operator."""
    kept = []
    for op in operators:
        if op.opcode in ("DENSIFY", "DEQUANTIZE"):
            source = tensors[op.inputs[0]]
            if source.data is None:
                raise TFLiteError(f"{name}: {op.opcode} of the activation {source.name!r} is not supported")
            target = tensors[op.outputs[0]]
            # DENSIFY's sparse input was already expanded when read; DEQUANTIZE casts to float32.
            value = source.data if op.opcode == "DENSIFY" else dequantize(source)
            tensors[target.index] = Tensor(target.index, target.name, target.shape, value.dtype, value)
        else:
            kept.append(op)
    return tensors, kept
