"""The TFLite -> ONNX converter: helpers against numpy references, operators on tiny hand-made
graphs against numpy implementations of TFLite's kernels, and the two BlazePose models against the
TFLite interpreter (ai-edge-litert) on real images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from models.tflite import Graph, Operator, Tensor, TFLiteError, densify, graph_to_onnx, same_padding  # noqa: E402
from models.tflite.reader import Sparsity  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CROSSVIEW_SHARED_DATA", REPO.parent / "shared" / "data"))
VIDEO = SHARED / "pose2sim_demo_single" / "videos" / "cam01.mp4"
MANNEQUIN = SHARED.parent / "docs" / "img" / "mannequin_detected.png"


def _run(model, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


# ------------------------------------------------------------------------------------------------
# Helpers
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (224, 3, 2, 1, (0, 1, 112)),  # even input, stride 2: the extra pixel goes after (asymmetric)
        (225, 3, 2, 1, (1, 1, 113)),
        (5, 3, 1, 1, (1, 1, 5)),
        (7, 3, 1, 2, (2, 2, 7)),  # dilated kernel spans 5 pixels
        (8, 2, 2, 1, (0, 0, 4)),  # nothing to pad
        (6, 4, 1, 1, (1, 2, 6)),  # even kernel: odd total padding
    ],
)
def test_same_padding(size, kernel, stride, dilation, expected) -> None:
    assert same_padding(size, kernel, stride, dilation) == expected


def test_densify_csr_matrix() -> None:
    """The CSR example of TFLite's schema: rows dense, columns compressed."""
    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    levels = (("dense", 4), ("csr", np.array([0, 3, 4, 5, 6]), np.array([0, 2, 3, 1, 2, 3])))
    values = np.array([1, 2, 3, 4, 5, 6], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), Sparsity((0, 1), (), levels)), dense)


def test_densify_column_major() -> None:
    """Traversal order (1, 0): columns first (CSC)."""
    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    levels = (("dense", 4), ("csr", np.array([0, 1, 2, 4, 6]), np.array([0, 1, 0, 2, 0, 3])))
    values = np.array([1, 4, 2, 5, 3, 6], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), Sparsity((1, 0), (), levels)), dense)


def test_densify_block_sparse() -> None:
    """The 2x2 block-sparse example of TFLite's schema (block_map, block dimensions dense)."""
    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    levels = (("dense", 2), ("csr", np.array([0, 2, 3]), np.array([0, 1, 1])), ("dense", 2), ("dense", 2))
    values = np.array([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), Sparsity((0, 1, 2, 3), (0, 1), levels)), dense)


def _encode_last_axis_csr(dense: np.ndarray) -> tuple[np.ndarray, Sparsity]:
    """Independent encoder: all axes dense except the last, which is CSR (what the detector uses)."""
    rows = dense.reshape(-1, dense.shape[-1])
    counts = (rows != 0).sum(axis=1)
    segments = np.concatenate([[0], np.cumsum(counts)])
    indices = np.nonzero(rows)[1]
    levels = tuple(("dense", n) for n in dense.shape[:-1]) + (("csr", segments, indices),)
    return rows[rows != 0], Sparsity(tuple(range(dense.ndim)), (), levels)


def test_densify_random_4d_round_trip() -> None:
    rng = np.random.default_rng(3)
    dense = rng.normal(size=(6, 1, 1, 10)).astype(np.float16)
    dense[rng.random(dense.shape) < 0.6] = 0
    values, sparsity = _encode_last_axis_csr(dense)
    np.testing.assert_array_equal(densify(values, dense.shape, sparsity), dense)


def test_densify_rejects_inconsistent_metadata() -> None:
    levels = (("dense", 2), ("csr", np.array([0, 1, 2]), np.array([0, 1])))
    with pytest.raises(TFLiteError, match="stored"):
        densify(np.ones(3, np.float32), (2, 2), Sparsity((0, 1), (), levels))


# ------------------------------------------------------------------------------------------------
# Operators on tiny graphs, against numpy versions of TFLite's kernels (NHWC)
def _graph(x_shape, ops_tensors, operators, outputs) -> Graph:
    tensors = [Tensor(0, "x", tuple(x_shape), np.dtype(np.float32))]
    for shape, data in ops_tensors:
        dtype = np.dtype(np.float32) if data is None else data.dtype
        tensors.append(Tensor(len(tensors), f"t{len(tensors)}", tuple(shape), dtype, data))
    return Graph(tuple(tensors), tuple(operators), (0,), tuple(outputs))


def _conv_reference(x, weights, bias, stride, pads, depthwise=False):
    """Direct NHWC convolution: x (B,H,W,C), weights OHWI (or 1HWC for depthwise)."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = weights.shape[1:3]
    out_h = (xp.shape[1] - kh) // stride + 1
    out_w = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, weights.shape[3] if depthwise else weights.shape[0]))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :]
            if depthwise:
                out += patch * weights[0, i, j]
            else:
                out += patch @ weights[:, i, j, :].T
    return out + bias


def test_conv_same_stride2_asymmetric_padding_relu6() -> None:
    """CONV_2D SAME, stride 2 on an even size (pad 0 before, 1 after), fused RELU6; batch of 2."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 6, 3)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    options = dict(
        padding=0, stride_h=2, stride_w=2, fused_activation_function=3, dilation_h_factor=1, dilation_w_factor=1
    )
    conv = Operator("CONV_2D", (0, 1, 2), (3,), options)
    graph = _graph((1, 8, 6, 3), [((4, 3, 3, 3), w), ((4,), b), ((1, 4, 3, 4), None)], [conv], [3])
    (got,) = _run(graph_to_onnx(graph), x)
    expected = np.clip(_conv_reference(x, w, b, 2, ((0, 1), (0, 1))), 0, 6)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_depthwise_conv_same() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 5, 7, 4)).astype(np.float32)
    w = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    options = dict(
        padding=0, stride_h=1, stride_w=1, depth_multiplier=1, fused_activation_function=1,
        dilation_h_factor=1, dilation_w_factor=1,
    )
    conv = Operator("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), options)
    graph = _graph((1, 5, 7, 4), [((1, 3, 3, 4), w), ((4,), b), ((1, 5, 7, 4), None)], [conv], [3])
    (got,) = _run(graph_to_onnx(graph), x)
    expected = np.maximum(_conv_reference(x, w, b, 1, ((1, 1), (1, 1)), depthwise=True), 0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _resize_half_pixel_reference(x, out_h, out_w):
    """TensorFlow's ResizeBilinear with half_pixel_centers=True (clamped at the borders)."""
    def axis(in_size, out_size):
        src = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
        low = np.floor(src)
        frac = src - low
        return np.clip(low, 0, in_size - 1).astype(int), np.clip(low + 1, 0, in_size - 1).astype(int), frac

    y0, y1, fy = axis(x.shape[1], out_h)
    x0, x1, fx = axis(x.shape[2], out_w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def test_resize_bilinear_half_pixel_then_depth_to_space_and_reshape() -> None:
    """RESIZE_BILINEAR (half-pixel centres), DEPTH_TO_SPACE and an NHWC-order RESHAPE, batch 3."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 3, 4, 8)).astype(np.float32)
    graph = _graph(
        (1, 3, 4, 8),
        [
            ((2,), np.array([6, 8], np.int32)),
            ((1, 6, 8, 8), None),
            ((1, 12, 16, 2), None),
            ((3,), np.array([1, -1, 2], np.int32)),
            ((1, 192, 2), None),
        ],
        [
            Operator("RESIZE_BILINEAR", (0, 1), (2,), dict(align_corners=False, half_pixel_centers=True)),
            Operator("DEPTH_TO_SPACE", (2,), (3,), dict(block_size=2)),
            Operator("RESHAPE", (3, 4), (5,), {}),
        ],
        [2, 5],
    )
    resized, flat = _run(graph_to_onnx(graph), x)
    expected = _resize_half_pixel_reference(x, 6, 8)
    np.testing.assert_allclose(resized, expected, atol=1e-5)
    b, h, w, c = expected.shape  # DCR: output[h*2+i, w*2+j, c] = input[h, w, (i*2+j)*C + c]
    d2s = expected.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * 2, w * 2, c // 4)
    np.testing.assert_allclose(flat, d2s.reshape(b, -1, 2), atol=1e-5)


def test_pad_maxpool_concat_add_logistic() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    pool = dict(padding=0, stride_h=2, stride_w=2, filter_height=2, filter_width=2, fused_activation_function=0)
    graph = _graph(
        (1, 5, 5, 3),
        [((4, 2), np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32)), ((1, 6, 7, 3), None), ((1, 3, 3, 3), None),
         ((3,), bias), ((1, 3, 3, 3), None), ((1, 3, 3, 6), None), ((1, 3, 3, 6), None)],
        [
            Operator("PAD", (0, 1), (2,), {}),
            Operator("MAX_POOL_2D", (0,), (3,), pool),
            Operator("ADD", (3, 4), (5,), dict(fused_activation_function=0)),
            Operator("CONCATENATION", (3, 5), (6,), dict(axis=3, fused_activation_function=0)),
            Operator("LOGISTIC", (6,), (7,), {}),
        ],
        [2, 7],
    )
    padded, out = _run(graph_to_onnx(graph), x)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0))))
    xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)  # SAME: 5 -> 3, pad after
    pooled = xp.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4))
    expected = 1 / (1 + np.exp(-np.concatenate([pooled, pooled + bias], axis=3)))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_unsupported_operator_is_named() -> None:
    graph = _graph((1, 2, 2, 1), [((1, 2, 2, 1), None)], [Operator("SQUARED_DIFFERENCE", (0, 0), (1,), {})], [1])
    with pytest.raises(TFLiteError, match="SQUARED_DIFFERENCE"):
        graph_to_onnx(graph)


# ------------------------------------------------------------------------------------------------
# The BlazePose models against the TFLite interpreter on real images
@pytest.fixture(scope="session")
def blazepose_models() -> dict[str, Path]:
    from calibration.errors import CrossviewError
    from models.model_store import ensure_blazepose_models

    try:
        return ensure_blazepose_models()
    except CrossviewError as exc:
        pytest.skip(f"BlazePose models unavailable (no network?): {exc}")


def _real_images() -> list[np.ndarray]:
    """BGR frames: three of the Pose2Sim demo video and the mannequin picture."""
    cv2 = pytest.importorskip("cv2")
    images = []
    if VIDEO.is_file():
        capture = cv2.VideoCapture(str(VIDEO))
        for index in (0, 40, 80):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if ok:
                images.append(frame)
        capture.release()
    if MANNEQUIN.is_file():
        images.append(cv2.imread(str(MANNEQUIN)))
    if not images:
        pytest.skip(f"no real images: {VIDEO} and {MANNEQUIN} are absent")
    return images


def _letterbox(image: np.ndarray, size: int, low: float) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> (size, size, 3) RGB float32 in [low, 1], aspect kept, zero border."""
    import cv2

    scale = size / max(image.shape[:2])
    height, width = round(image.shape[0] * scale), round(image.shape[1] * scale)
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top : top + height, left : left + width] = cv2.resize(image, (width, height))
    return (canvas[:, :, ::-1].astype(np.float32) / 255.0) * (1.0 - low) + low


def _interpreter_outputs(tflite_path: Path, batch: np.ndarray) -> list[np.ndarray]:
    """TFLite's outputs (default XNNPACK kernels), one image at a time, stacked on the batch axis."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    outputs = []
    for image in batch:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        outputs.append([interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()])
    return [np.concatenate(per_output) for per_output in zip(*outputs)]


def _relative_errors(ours: list[np.ndarray], reference: list[np.ndarray], names) -> dict[str, float]:
    errors = {}
    for name, mine, ref in zip(names, ours, reference, strict=True):
        assert mine.shape == ref.shape, name
        errors[name] = float(np.abs(mine - ref).max() / np.abs(ref).max())
    return errors


def test_blazepose_matches_tflite_on_real_images(blazepose_models) -> None:
    """Both models, ONNX Runtime (CPU, all images in one batched call) vs the TFLite interpreter.

    Max abs difference relative to the output's largest magnitude, measured on 3 video frames and
    the mannequin picture (landmark crops around each detection): detector boxes 2.3e-6, scores
    1.0e-6; landmarks 3.1e-6 (8.7e-4 crop px), pose flag 1.5e-6, heatmaps 3.4e-6, world landmarks
    2.4e-5, segmentation logits 1.5e-4. The segmentation head ends in RELU6-saturated layers at
    256x256 that amplify float rounding: TFLite's own XNNPACK and reference kernels differ from each
    other by 1.1e-4 there.
    """
    images = _real_images()
    detector = blazepose_models["pose_detection"]
    detector_input = np.stack([_letterbox(image, 224, -1.0) for image in images])
    session = ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"input_1": detector_input})
    reference = _interpreter_outputs(detector.with_suffix(".tflite"), detector_input)
    errors = _relative_errors(ours, reference, ["boxes", "scores"])
    assert max(errors.values()) < 2e-5, errors

    # Landmark crops: a square around the best detection's body circle (keypoints 0 and 1).
    crops = []
    for image, boxes, scores in zip(images, ours[0], ours[1][..., 0], strict=True):
        best = boxes[np.argmax(scores)]
        center, edge = _body_square(image, best, int(np.argmax(scores)))
        crops.append(_crop(image, center, edge))
    landmark = blazepose_models["pose_landmark_full"]
    crop_input = np.stack(crops)
    session = ort.InferenceSession(str(landmark), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"input_1": crop_input})
    reference = _interpreter_outputs(landmark.with_suffix(".tflite"), crop_input)
    names = ["landmarks", "pose_flag", "segmentation", "heatmaps", "world_landmarks"]
    errors = _relative_errors(ours, reference, names)
    ceilings = {"landmarks": 2e-5, "pose_flag": 1e-5, "segmentation": 5e-4, "heatmaps": 2e-5, "world_landmarks": 2e-4}
    assert all(errors[name] < ceilings[name] for name in names), errors
    pixel_error = np.abs(ours[0].reshape(-1, 39, 5)[..., :2] - reference[0].reshape(-1, 39, 5)[..., :2]).max()
    assert pixel_error < 0.01, pixel_error  # landmark x, y in crop pixels
    assert np.all(ours[1] > 0.5), ours[1]  # a person in every crop: the crops are meaningful


def _anchor_centers() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1] of the detector's SSD grid (28x28x2, 14x14x2, 7x7x6)."""
    centers = []
    for grid, per_cell in ((28, 2), (14, 2), (7, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cell = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        centers.append(np.repeat(cell, per_cell, axis=0))
    return np.concatenate(centers)


def _body_square(image: np.ndarray, box: np.ndarray, anchor: int) -> tuple[np.ndarray, float]:
    """Centre (x, y) and edge, image px, of the square around the detection's body circle."""
    center_224 = box[4:6] + _anchor_centers()[anchor] * 224
    circle_224 = box[6:8] + _anchor_centers()[anchor] * 224
    scale = max(image.shape[:2]) / 224
    offset = np.array([(224 * scale - image.shape[1]) / 2, (224 * scale - image.shape[0]) / 2])
    center = center_224 * scale - offset
    radius = np.linalg.norm(circle_224 - center_224) * scale
    return center, 2.5 * radius


def _crop(image: np.ndarray, center: np.ndarray, edge: float) -> np.ndarray:
    """(256, 256, 3) RGB float32 in [0, 1]: the square of ``edge`` px around ``center``, zero outside."""
    import cv2

    scale = 256 / edge
    affine = np.array([[scale, 0, 128 - scale * center[0]], [0, scale, 128 - scale * center[1]]], np.float32)
    crop = cv2.warpAffine(image, affine, (256, 256), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop[:, :, ::-1].astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------------------
# The model store: errors a user can meet, idempotence, the reader on the real files
def test_download_failure_says_how_to_fix(tmp_path, monkeypatch) -> None:
    import subprocess

    from calibration.errors import CrossviewError
    from models import model_store

    def refuse(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (network unreachable)\n")

    monkeypatch.setattr(model_store.subprocess, "run", refuse)
    with pytest.raises(CrossviewError, match="crossview models fetch") as caught:
        model_store.ensure_blazepose_models(folder=tmp_path)
    assert "network unreachable" in str(caught.value) and "--wheel" in str(caught.value)


def test_wrong_wheels_are_refused(tmp_path) -> None:
    import zipfile

    from calibration.errors import CrossviewError
    from models.model_store import POSE_DETECTION, ensure_blazepose_models

    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("mediapipe/__init__.py", "")
    with pytest.raises(CrossviewError, match="has no mediapipe/modules"):
        ensure_blazepose_models(wheel=empty, folder=tmp_path / "models")
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(tampered, "w") as archive:
        archive.writestr(POSE_DETECTION.member, b"TFL3 but not the real model")
    with pytest.raises(CrossviewError, match="SHA-256"):
        ensure_blazepose_models(wheel=tampered, folder=tmp_path / "models")
    with pytest.raises(CrossviewError, match="not a wheel"):
        ensure_blazepose_models(wheel=__file__, folder=tmp_path / "models")


def test_models_are_cached_with_cards(blazepose_models) -> None:
    """A second call changes nothing; each ONNX file has a card that records its source and digest."""
    import yaml

    from models.model_store import BLAZEPOSE_MODELS, ensure_blazepose_models, model_status, sha256_of

    before = {name: path.stat().st_mtime_ns for name, path in blazepose_models.items()}
    again = ensure_blazepose_models()
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == before
    for spec in BLAZEPOSE_MODELS:
        path = blazepose_models[spec.name]
        card = yaml.safe_load(path.with_suffix(".yaml").read_text())
        assert card["family"] == "blazepose" and card["sha256"] == sha256_of(path)
        assert card["source"]["tflite_sha256"] == spec.tflite_sha256 == sha256_of(path.with_suffix(".tflite"))
        assert list(card["outputs"]) == list(spec.output_names)
        assert model_status(spec, path.parent) == "ready"


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors.:UserWarning")
def test_reader_weights_match_the_interpreter(blazepose_models) -> None:
    """All 73 convolution filters of the detector (38 of them stored sparse, all float16), densified
    and dequantised by the reader, equal the tensors TFLite's own DENSIFY + DEQUANTIZE produce."""
    from models.tflite import read_tflite

    litert = pytest.importorskip("ai_edge_litert.interpreter")
    path = blazepose_models["pose_detection"].with_suffix(".tflite")
    graph = read_tflite(path)
    assert graph.opcodes().get("DENSIFY", 0) == 0 and graph.opcodes().get("DEQUANTIZE", 0) == 0
    # TFLite's built-in kernels (no XNNPACK delegate, which packs weights away) keep every tensor.
    interpreter = litert.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.zeros((1, 224, 224, 3), np.float32))
    interpreter.invoke()
    checked = 0
    for op in graph.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weights = graph.tensors[op.inputs[1]]
            np.testing.assert_array_equal(weights.data, interpreter.get_tensor(weights.index), err_msg=weights.name)
            checked += 1
    assert checked == 73
