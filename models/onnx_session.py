"""ONNX Runtime sessions that say which device they run on, and check the model they load.

One entry point, :func:`create_session`, used for every model the app runs::

    model = create_session("pose_landmark_full.onnx", device="auto",
                           inputs=[TensorSpec(None, (None, 256, 256, 3))],
                           outputs=[TensorSpec("landmarks", (None, 195))])
    (landmarks,) = model.run(crops)          # crops (B, 256, 256, 3) float32
    model.provider                           # "CUDAExecutionProvider" or "CPUExecutionProvider"

Device choice, made once when the session is created (never at import time):

- ``"cpu"``: the CPU provider.
- ``"cuda"``: CUDA, strictly. If the CUDA provider is missing from this onnxruntime build, fails to
  initialise (ONNX Runtime then quietly drops it and runs on the CPU) or fails the self-test, a
  :class:`~calibration.errors.CrossviewError` says so.
- ``"tensorrt"``: TensorRT (engines cached in ``.trt_cache`` beside the model), strictly, like
  ``"cuda"``. The first run builds the engine, which takes minutes.
- ``"auto"``: the GPU when it works, else the CPU — but never silently: falling back logs a
  warning that says why and how to fix it, and sets :attr:`OnnxModel.gpu_fallback` so the app can
  show it. TensorRT is tried first only when its library (``libnvinfer``) can be found.

Every session runs a self-test: one inference on a zero input. A CUDA provider that loads but
cannot run (driver or cuDNN mismatch) is caught there rather than on the first real frame.

Checking the model: ``inputs`` and ``outputs`` list what the caller (or a model card) expects.
A spec with a name must match a tensor of that name; a spec without a name takes the first
tensor of a matching shape not already taken. Sizes that are ``None`` in a spec, or symbolic in
the model (a dynamic batch), match anything. A mismatch raises a CrossviewError naming the file
and showing expected against actual tensors, with a hint when the sizes are right but in another
order (NCHW against NHWC).
"""

from __future__ import annotations

import ctypes.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (CUDA, TENSORRT)

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """An expected model input or output.

    Attributes:
        name: the tensor's name, or None to find it by shape.
        shape: one entry per dimension: an int size, or None for any size (a dynamic batch).
    """

    name: str | None
    shape: tuple[int | None, ...]

    def __post_init__(self) -> None:
        shape = tuple(None if d is None else int(d) for d in self.shape)
        if any(d is not None and d < 0 for d in shape):
            raise ValueError(f"TensorSpec {self.name!r}: negative size in {shape}")
        object.__setattr__(self, "shape", shape)

    def matches(self, shape: Sequence) -> bool:
        """Whether a model tensor of ``shape`` (ints, strings or None for symbolic sizes) fits."""
        if len(shape) != len(self.shape):
            return False
        return all(e is None or not isinstance(a, int) or a < 0 or a == e for e, a in zip(self.shape, shape))

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name or '<any name>'} ({dims})"


def _describe(name: str, shape: Sequence) -> str:
    dims = ", ".join(str(d) if isinstance(d, int) and d >= 0 else (str(d) if d else "?") for d in shape)
    return f"{name} ({dims})"


class OnnxModel:
    """An ONNX Runtime session, the provider it really runs on, and its resolved tensors.

    Attributes:
        path: the ONNX file.
        device: the device asked for (``"auto"``, ``"cpu"``, ``"cuda"``, ``"tensorrt"``).
        provider: the execution provider that runs the model, e.g. ``"CUDAExecutionProvider"``.
        gpu_fallback: True when a GPU was asked for (``"auto"``) but the model runs on the CPU.
        fallback_reason: why, in words ('' when there was no fall-back).
        input_names: model input names, in the order :meth:`run` takes arrays.
        output_names: model output names, in the order :meth:`run` returns arrays (the expected
            outputs' order when ``outputs`` was given, else the model's own).
        input_shapes: each input's shape as the model declares it (None for symbolic sizes).
        output_shapes: likewise for :attr:`output_names`.
        self_test_ms: the self-test inference time (first run, includes warm-up).
    """

    def __init__(
        self,
        path: Path,
        session,
        device: str,
        input_names: tuple[str, ...],
        output_names: tuple[str, ...],
        gpu_fallback: bool,
        fallback_reason: str,
    ) -> None:
        self.path = path
        self.session = session
        self.device = device
        self.provider = session.get_providers()[0]
        self.gpu_fallback = gpu_fallback
        self.fallback_reason = fallback_reason
        self.input_names = input_names
        self.output_names = output_names
        inputs = {t.name: t for t in session.get_inputs()}
        outputs = {t.name: t for t in session.get_outputs()}
        self.input_shapes = tuple(_clean_shape(inputs[n].shape) for n in input_names)
        self.output_shapes = tuple(_clean_shape(outputs[n].shape) for n in output_names)
        self._input_types = tuple(_NUMPY_TYPES.get(inputs[n].type, np.float32) for n in input_names)
        self.self_test_ms = float("nan")

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def fixed_batch(self) -> int | None:
        """The first input's batch size when the model fixes it (e.g. 1), else None (dynamic)."""
        return self.input_shapes[0][0] if self.input_shapes[0] else None

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run the model.

        Args:
            arrays: one array per input, in :attr:`input_names` order, converted to the input's
                dtype (float32 for the pose models).

        Returns:
            One array per :attr:`output_names` entry, in that order.
        """
        if len(arrays) != len(self.input_names):
            raise CrossviewError(
                f"{self.path.name}: {len(arrays)} input array(s) given, the model takes {len(self.input_names)}"
            )
        feeds = {
            name: np.ascontiguousarray(a, dtype=dtype)
            for name, a, dtype in zip(self.input_names, arrays, self._input_types)
        }
        return self.session.run(list(self.output_names), feeds)

    def run_batched(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run ``batch (B, ...)``, the first input only: one call, or B calls when the model was
        exported with a fixed batch of 1 (the caller's API stays batched either way).

        Returns:
            One ``(B, ...)`` array per :attr:`output_names` entry.
        """
        if self.fixed_batch in (None, len(batch)):
            return self.run(batch)
        if self.fixed_batch != 1:
            raise CrossviewError(
                f"{self.path.name}: the model has a fixed batch of {self.fixed_batch}; export it with batch 1 or dynamic"
            )
        parts = [self.run(batch[i:i + 1]) for i in range(len(batch))]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.output_names))]

    def self_test(self) -> None:
        """One inference on zeros (symbolic sizes set to 1); records :attr:`self_test_ms`."""
        arrays = [
            np.zeros(tuple(1 if d is None else d for d in shape), dtype=dtype)
            for shape, dtype in zip(self.input_shapes, self._input_types)
        ]
        start = time.perf_counter()
        self.run(*arrays)
        self.self_test_ms = (time.perf_counter() - start) * 1e3

    def describe(self) -> str:
        text = f"{self.path.name} on {self.provider}"
        return f"{text} (GPU unavailable: {self.fallback_reason})" if self.gpu_fallback else text

    def __repr__(self) -> str:
        return f"OnnxModel({self.describe()})"


def _clean_shape(shape: Sequence) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "InvalidProtobuf", "RuntimeException", "EPFail", "InvalidGraph")
    return tuple(getattr(state, n) for n in names if hasattr(state, n)) + (RuntimeError, OSError)


def _tensorrt_library_present() -> bool:
    return ctypes.util.find_library("nvinfer") is not None


def _provider_list(device: str, path: Path, available: Sequence[str]) -> list:
    trt_options = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(path.parent / ".trt_cache"),
    }
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [CUDA, CPU]
    if device == "tensorrt":
        return [(TENSORRT, trt_options), CUDA, CPU]
    # auto
    chosen: list = []
    if not _nvidia_device_present():
        # Trying CUDA without a GPU only makes ONNX Runtime print a page of library errors.
        return [CPU]
    if TENSORRT in available and _tensorrt_library_present():
        chosen.append((TENSORRT, trt_options))
    if CUDA in available:
        chosen.append(CUDA)
    return chosen + [CPU]


def _nvidia_device_present() -> bool:
    """False only where we can tell there is no NVIDIA GPU (Linux without the driver's device nodes)."""
    import sys

    if not sys.platform.startswith("linux"):
        return True
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()


def _open(path: Path, providers: list, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; the provider outcome is reported by this module
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    # ONNX Runtime's pool threads busy-wait between operators by default. On a CPU shared with
    # capture, decoding and the GUI that time is taken from them: BlazePose's landmark model
    # (2 views, 2 threads) took 200 ms and 100 ms of CPU per call with spinning on a loaded 2-core
    # machine, 91 ms and 45-52 ms without (app/bench/pipeline.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except _ort_errors() as exc:
        raise CrossviewError(
            f"{path}: ONNX Runtime cannot load this file ({exc}). Is it an ONNX model? "
            "Re-download or re-export it."
        ) from None


def _resolve(path: Path, kind: str, actual: list, expected: Sequence[TensorSpec] | None) -> tuple[str, ...]:
    """Names of the model tensors matching ``expected`` (all model tensors when None)."""
    if expected is None:
        return tuple(t.name for t in actual)
    shapes = {t.name: list(t.shape) for t in actual}
    listing = ", ".join(_describe(t.name, t.shape) for t in actual)
    taken: list[str] = []
    for spec in expected:
        if spec.name is not None:
            if spec.name not in shapes:
                raise CrossviewError(
                    f"{path}: expected {kind} {spec.describe()}, but the model has no {kind} named "
                    f"{spec.name!r}; its {kind}s are: {listing}"
                )
            candidates = [spec.name] if spec.matches(shapes[spec.name]) else []
        else:
            candidates = [n for n in shapes if n not in taken and spec.matches(shapes[n])]
        if not candidates:
            hint = ""
            pool = [spec.name] if spec.name is not None else [n for n in shapes if n not in taken]
            for name in pool:
                got = [d if isinstance(d, int) and d >= 0 else None for d in shapes[name]]
                want = list(spec.shape)
                if len(got) == len(want) == 4 and sorted(map(str, got)) == sorted(map(str, want)):
                    hint = (
                        f" The sizes of {name!r} are right but in another order: a layout mismatch "
                        "(NCHW against NHWC)? Fix the model card's 'layout' or export the model in the "
                        "expected layout."
                    )
            raise CrossviewError(
                f"{path}: expected {kind} {spec.describe()}; the model's {kind}s are: {listing}.{hint}"
            )
        taken.append(candidates[0])
    return tuple(taken)


def create_session(
    path: str | Path,
    device: str = "auto",
    *,
    inputs: Sequence[TensorSpec] | None = None,
    outputs: Sequence[TensorSpec] | None = None,
    threads: int | None = None,
) -> OnnxModel:
    """Open ``path`` on ``device``, check its tensors and run the self-test.

    Args:
        path: the ONNX file.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"tensorrt"`` (see the module docstring).
        inputs: the expected inputs, in the order :meth:`OnnxModel.run` will take them; None for
            the model's own inputs, unchecked.
        outputs: the expected outputs, in the order :meth:`OnnxModel.run` returns them; None for
            all the model's outputs, unchecked.
        threads: CPU threads for one inference (ONNX Runtime's default when None).

    Raises:
        CrossviewError: unknown device; missing or unreadable file; tensors that do not match
            ``inputs``/``outputs``; ``device="cuda"``/``"tensorrt"`` that cannot be honoured.
    """
    path = Path(path)
    if device not in DEVICES:
        raise CrossviewError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if not path.is_file():
        raise CrossviewError(f"{path}: no such model file")
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = _provider_list(device, path, available)
    strict_gpu = {"cuda": CUDA, "tensorrt": TENSORRT}.get(device)
    if strict_gpu is not None and strict_gpu not in available:
        raise CrossviewError(
            f"{path.name}: device {device!r} asked for, but this onnxruntime build has no {strict_gpu} "
            f"(it offers {', '.join(available)}). Install onnxruntime-gpu (and uninstall plain onnxruntime), "
            "or choose device 'auto' or 'cpu'."
        )
    session = _open(path, wanted, threads)
    input_names = _resolve(path, "input", session.get_inputs(), inputs)
    output_names = _resolve(path, "output", session.get_outputs(), outputs)
    active = session.get_providers()[0]

    gpu_wanted = any((w if isinstance(w, str) else w[0]) in GPU_PROVIDERS for w in wanted)
    reason = ""
    if strict_gpu is not None and active != strict_gpu:
        raise CrossviewError(
            f"{path.name}: device {device!r} asked for, but {strict_gpu} failed to initialise and ONNX Runtime "
            f"fell back to {active}. Check the NVIDIA driver and the CUDA/cuDNN libraries that onnxruntime-gpu "
            "needs, or choose device 'auto' or 'cpu'."
        )
    if gpu_wanted and active not in GPU_PROVIDERS:
        reason = "the CUDA provider failed to initialise (no GPU, or a driver/CUDA/cuDNN mismatch)"
    model = OnnxModel(path, session, device, input_names, output_names, False, "")
    try:
        model.self_test()
    except _ort_errors() as exc:
        if model.on_gpu and strict_gpu is None:
            reason = f"the self-test failed on {active}: {exc}"
            model = OnnxModel(path, _open(path, [CPU], threads), device, input_names, output_names, False, "")
            model.self_test()
        elif model.on_gpu:
            raise CrossviewError(f"{path.name}: the self-test failed on {active}: {exc}") from None
        else:
            raise CrossviewError(f"{path}: the model fails on a zero input ({exc}); the file is broken") from None
    if device == "auto" and not gpu_wanted:
        if CUDA in available and not _nvidia_device_present():
            reason = "no NVIDIA GPU found on this machine (no driver device /dev/nvidiactl)"
        else:
            reason = f"this onnxruntime build has no GPU provider ({', '.join(available)}); install onnxruntime-gpu"
    if reason:
        model.gpu_fallback = True
        model.fallback_reason = reason
        logger.warning(
            "GPU NOT USED for %s: %s. Running on the CPU, which is much slower.", path.name, reason
        )
    logger.info("%s runs on %s (self-test %.1f ms)", path.name, model.provider, model.self_test_ms)
    return model
