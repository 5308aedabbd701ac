"""Tiny ONNX models with the input/output signatures of real pose models, for decoding tests.

Each output is a constant chosen by the test plus ``gain`` times the mean of the input (per batch
item), so a test controls exactly what the "network" says and can also check the preprocessing
(the mean of the normalised input shows through).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_model(
    path: Path,
    input_name: str,
    input_shape: tuple,
    outputs: dict[str, np.ndarray],
    *,
    gain: float = 0.0,
) -> Path:
    """Write a model: input ``input_shape`` (None or a string for a dynamic size); each output
    ``name`` = ``outputs[name]`` (shape ``(1, ...)``, broadcast over the batch) + gain * mean(input)."""
    rank_in = len(input_shape)
    x = helper.make_tensor_value_info(
        input_name, TensorProto.FLOAT, [d if isinstance(d, int) else "batch" for d in input_shape]
    )
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], axes=list(range(1, rank_in)), keepdims=1)]
    initializers = [numpy_helper.from_array(np.array([gain], np.float32), "gain")]
    nodes.append(helper.make_node("Mul", ["mean", "gain"], ["scaled"]))
    value_infos = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value, np.float32)
        rank = value.ndim
        initializers.append(numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), f"shape{i}"))
        initializers.append(numpy_helper.from_array(value, f"const{i}"))
        nodes.append(helper.make_node("Reshape", ["scaled", f"shape{i}"], [f"column{i}"]))
        nodes.append(helper.make_node("Add", [f"column{i}", f"const{i}"], [name]))
        batch = input_shape[0] if isinstance(input_shape[0], int) else "batch"
        value_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *value.shape[1:]]))
    graph = helper.make_graph(nodes, "tiny", [x], value_infos, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path
