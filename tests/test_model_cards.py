"""Model cards: loading, strict keys, normalisation, joint-set mapping, folder discovery."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from calibration.errors import CrossviewError
from models.keypoint_io import BODY25_TO_COCO17
from models.model_card import discover_models, load_model_card
from models.skeleton import to_h36m17

RTMPOSE = {
    "schema_version": 1,
    "family": "rtmpose",
    "name": "rtmpose-m",
    "input": {
        "shape": ["batch", 3, 256, 192],
        "layout": "NCHW",
        "channels": "RGB",
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
    },
    "outputs": {"simcc_x": {"shape": ["batch", 17, 384]}, "simcc_y": {"shape": ["batch", 17, 512]}},
    "keypoints": {"joint_set": "coco17", "count": 17},
}

# What models.model_store writes beside pose_detection.onnx (abridged, same keys).
BLAZEPOSE_DETECTOR = {
    "schema_version": 1,
    "name": "pose_detection",
    "family": "blazepose",
    "file": "pose_detection.onnx",
    "sha256": "0" * 64,
    "role": "person detector (SSD, one class)",
    "input": {"name": "input_1", "shape": ["batch", 224, 224, 3], "layout": "NHWC", "dtype": "float32",
              "channels": "RGB", "range": [-1.0, 1.0], "resize": "letterbox"},
    "outputs": {"boxes": {"shape": ["batch", 2254, 12], "meaning": "..."}, "scores": {"shape": ["batch", 2254, 1]}},
    "anchors": {"num_layers": 5, "strides": [8, 16, 32, 32, 32]},
    "source": {"package": "mediapipe==0.10.21", "license": "Apache-2.0"},
    "converter": {"name": "crossview models.tflite", "version": "1", "opset": 17},
}


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_rtmpose_card(tmp_path):
    card = load_model_card(_write(tmp_path / "rtmpose-m.yaml", RTMPOSE))
    assert card.family == "rtmpose" and card.file == "rtmpose-m.onnx"
    assert card.onnx_path == tmp_path / "rtmpose-m.onnx"
    assert (card.input_width, card.input_height, card.num_keypoints) == (192, 256, 17)
    assert card.input_spec().shape == (None, 3, 256, 192)
    assert [s.name for s in card.output_specs()] == ["simcc_x", "simcc_y"]
    image = np.zeros((1, 256, 192, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    x = card.normalize(image)
    assert x.shape == (1, 3, 256, 192) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [-123.675 / 58.395, -116.28 / 57.12, (255 - 103.53) / 57.375], rtol=1e-6)


def test_blazepose_card_as_model_store_writes_it(tmp_path):
    card = load_model_card(_write(tmp_path / "pose_detection.yaml", BLAZEPOSE_DETECTOR))
    assert card.input_name == "input_1" and card.layout == "NHWC" and card.joint_set is None
    assert card.mean == (127.5,) * 3 and card.std == (127.5,) * 3  # range [-1, 1]
    assert card.extra["anchors"]["num_layers"] == 5
    x = card.normalize(np.array([[[[0, 128, 255]]]], np.uint8))
    np.testing.assert_allclose(x[0, 0, 0], [1.0, 0.5 / 127.5, -1.0])  # BGR -> RGB
    with pytest.raises(CrossviewError, match="names no keypoints.joint_set"):
        card.to_h36m17(np.zeros((17, 2)), np.ones(17))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(extra_key=1), r"unknown key 'extra_key'"),
        (lambda d: d["input"].update(mena=[0, 0, 0]), r"unknown key 'input.mena'"),
        (lambda d: d["keypoints"].update(layout="x"), r"unknown key 'keypoints.layout'"),
        (lambda d: d.update(schema_version=2), r"key 'schema_version'.*has 2"),
        (lambda d: d.pop("schema_version"), r"key 'schema_version'"),
        (lambda d: d.update(family="openpose"), r"key 'family': unknown family 'openpose'"),
        (lambda d: d["input"].update(layout="NHWC"), r"key 'input.shape'.*is the layout wrong"),
        (lambda d: d["input"].update(channels="RGBA"), r"key 'input.channels'"),
        (lambda d: d["input"].update(range=[0, 1]), r"either 'range' or 'mean'"),
        (lambda d: d["input"].pop("std"), r"normalisation is missing"),
        (lambda d: d["input"].update(mean=[1, 2]), r"key 'input.mean': must be 3 numbers"),
        (lambda d: d["input"].update(shape=[1, 3, -256, 192]), r"key 'input.shape'"),
        (lambda d: d["keypoints"].update(joint_set="mpii"), r"unknown joint set 'mpii'"),
        (lambda d: d["keypoints"].update(count=26), r"key 'keypoints.count'"),
        (lambda d: d["outputs"]["simcc_x"].pop("shape"), r"key 'outputs.simcc_x.shape' is missing"),
    ],
)
def test_bad_cards_name_file_and_key(tmp_path, edit, message):
    data = yaml.safe_load(yaml.safe_dump(RTMPOSE))
    edit(data)
    path = _write(tmp_path / "bad.yaml", data)
    with pytest.raises(CrossviewError, match=message) as info:
        load_model_card(path)
    assert str(path) in str(info.value)


def test_unreadable_cards(tmp_path):
    with pytest.raises(CrossviewError, match="cannot read"):
        load_model_card(tmp_path / "none.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(CrossviewError, match="not valid YAML"):
        load_model_card(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(CrossviewError, match="must be a mapping"):
        load_model_card(tmp_path / "list.yaml")
    (tmp_path / "python.yaml").write_text("schema_version: !!python/object:os.system 1\n")
    with pytest.raises(CrossviewError, match="not valid YAML"):
        load_model_card(tmp_path / "python.yaml")  # safe_load refuses Python tags


def test_joint_sets_map_to_h36m17(tmp_path):
    """HALPE-26 and BODY-25 reorder to COCO-17 and then map exactly as COCO-17 does."""
    rng = np.random.default_rng(0)
    coco = rng.uniform(0, 500, size=(2, 17, 2))
    coco_conf = rng.uniform(0.2, 1, size=(2, 17))
    expected = to_h36m17(coco, coco_conf, "coco17")
    halpe = np.concatenate([coco, rng.uniform(0, 500, size=(2, 9, 2))], axis=1)
    halpe_conf = np.concatenate([coco_conf, np.ones((2, 9))], axis=1)
    body25 = np.zeros((2, 25, 2))
    body25_conf = np.zeros((2, 25))
    body25[:, list(BODY25_TO_COCO17)] = coco
    body25_conf[:, list(BODY25_TO_COCO17)] = coco_conf
    for joint_set, kp, conf in (("halpe26", halpe, halpe_conf), ("body25", body25, body25_conf), ("coco17", coco, coco_conf)):
        data = dict(RTMPOSE, keypoints={"joint_set": joint_set})
        card = load_model_card(_write(tmp_path / f"{joint_set}.yaml", data))
        points, confidence = card.to_h36m17(kp, conf)
        np.testing.assert_allclose(points, expected[0])
        np.testing.assert_allclose(confidence, expected[1])
    with pytest.raises(CrossviewError, match="keypoints"):
        card.to_h36m17(np.zeros((2, 26, 2)), np.zeros((2, 26)))


def test_discover_models(tmp_path):
    for name in ("a_good", "b_nocard", "c_badcard", "d_mismatch"):
        (tmp_path / f"{name}.onnx").write_bytes(b"")
    _write(tmp_path / "a_good.yaml", RTMPOSE)
    _write(tmp_path / "c_badcard.yaml", dict(RTMPOSE, typo=1))
    _write(tmp_path / "d_mismatch.yaml", dict(RTMPOSE, file="other.onnx"))
    _write(tmp_path / "a_good.source.yaml", {"wheel": "x"})  # not a card: ignored
    found = discover_models(tmp_path)
    assert [f.onnx_path.name for f in found] == ["a_good.onnx", "b_nocard.onnx", "c_badcard.onnx", "d_mismatch.onnx"]
    assert found[0].usable and found[0].card.family == "rtmpose"
    assert not found[1].usable and "no model card" in found[1].problem
    assert not found[2].usable and "unknown key 'typo'" in found[2].problem
    assert not found[3].usable and "other.onnx" in found[3].problem
    with pytest.raises(CrossviewError, match="no such models folder"):
        discover_models(tmp_path / "nope")
