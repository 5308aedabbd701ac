"""TFLite -> ONNX conversion written in this project (numpy and onnx only).

:func:`read_tflite` parses a ``.tflite`` flatbuffer into a plain graph with ready-to-use float32
weights; :func:`graph_to_onnx` turns that graph into an NCHW ONNX model with a dynamic batch.
"""

from models.tflite.reader import Graph, Operator, Tensor, TFLiteError, densify, read_tflite
from models.tflite.to_onnx import CONVERTER_VERSION, OPSET, convert_tflite, graph_to_onnx, same_padding

__all__ = [
    "CONVERTER_VERSION",
    "OPSET",
    "Graph",
    "Operator",
    "TFLiteError",
    "Tensor",
    "convert_tflite",
    "densify",
    "graph_to_onnx",
    "read_tflite",
    "same_padding",
]
