"""ONNX sessions: provider choice and reporting, strict GPU requests, model checks."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
from tiny_onnx import constant_model

from calibration.errors import CrossviewError
from models.onnx_session import TensorSpec, create_session


@pytest.fixture()
def tiny(tmp_path):
    outputs = {"boxes": np.ones((1, 10, 12), np.float32), "scores": np.zeros((1, 10, 1), np.float32)}
    return constant_model(tmp_path / "tiny.onnx", "input_1", (None, 32, 32, 3), outputs, gain=2.0)


def test_cpu_session_runs_and_reports(tiny, caplog):
    with caplog.at_level(logging.INFO, logger="models.onnx_session"):
        model = create_session(tiny, "cpu")
    assert model.provider == "CPUExecutionProvider" and not model.on_gpu and not model.gpu_fallback
    assert model.input_names == ("input_1",) and model.output_names == ("boxes", "scores")
    assert model.fixed_batch is None  # dynamic batch
    assert model.self_test_ms >= 0
    assert "runs on CPUExecutionProvider" in caplog.text
    boxes, scores = model.run(np.full((3, 32, 32, 3), 0.5, np.float32))
    assert boxes.shape == (3, 10, 12) and scores.shape == (3, 10, 1)
    np.testing.assert_allclose(scores, 1.0)  # 0 + 2 * mean(0.5)


def test_outputs_found_by_shape_in_requested_order(tiny):
    model = create_session(
        tiny, "cpu",
        inputs=[TensorSpec(None, (None, 32, 32, 3))],
        outputs=[TensorSpec(None, (None, 10, 1)), TensorSpec("boxes", (1, 10, 12))],
    )
    assert model.output_names == ("scores", "boxes")


def test_wrong_models_give_clear_errors(tiny, tmp_path):
    with pytest.raises(CrossviewError, match="no such model file"):
        create_session(tmp_path / "missing.onnx", "cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(CrossviewError, match="garbage.onnx: ONNX Runtime cannot load"):
        create_session(garbage, "cpu")
    with pytest.raises(CrossviewError, match=r"tiny\.onnx: expected input <any name> \(\?, 3, 32, 32\).*input_1 \(batch, 32, 32, 3\).*layout mismatch"):
        create_session(tiny, "cpu", inputs=[TensorSpec(None, (None, 3, 32, 32))])
    with pytest.raises(CrossviewError, match=r"no output named 'heatmaps'.*boxes \(batch, 10, 12\), scores \(batch, 10, 1\)"):
        create_session(tiny, "cpu", outputs=[TensorSpec("heatmaps", (None, 64, 64, 39))])
    with pytest.raises(CrossviewError, match=r"expected output <any name> \(\?, 2254, 12\)"):
        create_session(tiny, "cpu", outputs=[TensorSpec(None, (None, 2254, 12))])
    with pytest.raises(CrossviewError, match="unknown device 'gpu'"):
        create_session(tiny, "gpu")


def test_strict_cuda_request_never_falls_back_silently(tiny, caplog):
    """On a machine without a working CUDA provider, "cuda" raises and "auto" warns loudly."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(CrossviewError, match="no CUDAExecutionProvider"):
            create_session(tiny, "cuda")
        return
    with caplog.at_level(logging.WARNING, logger="models.onnx_session"):
        auto = create_session(tiny, "auto")
    if auto.on_gpu:
        assert not auto.gpu_fallback
        assert create_session(tiny, "cuda").provider == "CUDAExecutionProvider"
        return
    assert auto.gpu_fallback and auto.provider == "CPUExecutionProvider"
    assert "GPU NOT USED for tiny.onnx" in caplog.text
    assert "GPU unavailable" in auto.describe()
    with pytest.raises(CrossviewError, match="device 'cuda' asked for.*fell back to CPUExecutionProvider"):
        create_session(tiny, "cuda")
