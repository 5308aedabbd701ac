"""The desktop app's settings: models, execution provider, thresholds and the One-Euro filter.

Stored as YAML (``schema_version: 1``) in ``$CROSSVIEW_CONFIG_DIR/gui.yaml``, else
``$XDG_CONFIG_HOME/crossview/gui.yaml``, else ``~/.config/crossview/gui.yaml``. Read with
``yaml.safe_load``; unknown keys and wrong types are errors naming the file and the key. The
values reach the :class:`app.pipeline.Pipeline` through :func:`build_pipeline`, the one place that
turns settings into a pipeline (live capture and playback of unprocessed takes both use it).
No Qt here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from calibration.errors import CrossviewError, InputFileError
from calibration.rig import Rig
from calibration.triangulation import DEFAULT_MAX_REPROJECTION_ERROR_PX
from models.filters import DEFAULT_BETA, DEFAULT_D_CUTOFF_HZ, DEFAULT_MIN_CUTOFF_HZ
from models.keypoint_io import atomic_write_bytes

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PROVIDERS = ("auto", "cpu", "cuda")
SETTINGS_FILE_NAME = "gui.yaml"


@dataclass(frozen=True, slots=True)
class GuiSettings:
    """What the user chose in the settings dialog.

    Attributes:
        detector: 2D model: ``"blazepose"`` or the path of a model card ``.yaml``.
        refiner: 3D refiner spec (``"none"``, ``"default"`` or a path), see ``models.refiner``.
        lifter: single-view lifter spec (``"none"``, ``"default"`` or a path), see ``models.lifter``.
        provider: where the models run: ``auto``, ``cpu`` or ``cuda``.
        min_confidence: 2D keypoints below this confidence are treated as not seen, in [0, 1].
        max_reprojection_error_px: robust triangulation drops a view whose reprojection error
            stays above this (px) while more than two views remain.
        filter_enabled: smooth the 3D joints over time with the One-Euro filter.
        min_cutoff_hz: One-Euro minimum cut-off frequency (lower: smoother at rest), Hz.
        beta: One-Euro speed coefficient (higher: less lag in fast motion).
        d_cutoff_hz: One-Euro cut-off of the speed estimate, Hz.
    """

    detector: str = "blazepose"
    refiner: str = "default"
    lifter: str = "default"
    provider: str = "auto"
    min_confidence: float = 0.3
    max_reprojection_error_px: float = DEFAULT_MAX_REPROJECTION_ERROR_PX
    filter_enabled: bool = True
    min_cutoff_hz: float = DEFAULT_MIN_CUTOFF_HZ
    beta: float = DEFAULT_BETA
    d_cutoff_hz: float = DEFAULT_D_CUTOFF_HZ

    def __post_init__(self) -> None:
        for name in ("detector", "refiner", "lifter"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise CrossviewError(f"settings: {name} must be a model name or path, got {getattr(self, name)!r}")
        if self.provider not in PROVIDERS:
            raise CrossviewError(f"settings: provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise CrossviewError(f"settings: min_confidence must be in [0, 1], got {self.min_confidence}")
        for name in ("min_cutoff_hz", "d_cutoff_hz", "max_reprojection_error_px"):
            if not getattr(self, name) > 0:
                raise CrossviewError(f"settings: {name} must be positive, got {getattr(self, name)}")
        if not self.beta >= 0:
            raise CrossviewError(f"settings: beta must be >= 0, got {self.beta}")

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "settings") -> "GuiSettings":
        """Build settings from a mapping as :meth:`to_dict` writes it.

        Raises:
            InputFileError: naming ``source`` and the key, for an unknown key, a wrong type or a
                schema version this app does not read.
        """
        if not isinstance(data, dict):
            raise InputFileError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InputFileError(f"{source}: schema_version {version!r} is not supported (this app reads "
                                 f"{SCHEMA_VERSION}); delete the file to start from the defaults")
        kinds = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in kinds:
                raise InputFileError(f"{source}: unknown key {key!r} (known: {', '.join(kinds)})")
            kind = kinds[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise InputFileError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except CrossviewError as exc:
            raise InputFileError(f"{source}: {exc}") from None


def settings_file() -> Path:
    """Where the settings live (see the module docstring)."""
    override = os.environ.get("CROSSVIEW_CONFIG_DIR")
    if override:
        return Path(override).expanduser() / SETTINGS_FILE_NAME
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "crossview" / SETTINGS_FILE_NAME


def load_settings(path: str | Path | None = None) -> GuiSettings:
    """Read the settings file; the defaults when it does not exist.

    Raises:
        InputFileError: the file is not valid YAML or holds unknown keys or wrong types.
    """
    path = Path(path) if path is not None else settings_file()
    if not path.is_file():
        return GuiSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputFileError(f"{path}: cannot read the settings ({exc}); fix or delete the file") from None
    return GuiSettings.from_dict(data or {}, source=str(path))


def save_settings(settings: GuiSettings, path: str | Path | None = None) -> Path:
    """Write ``settings`` atomically; returns the path written."""
    path = Path(path) if path is not None else settings_file()
    text = "# Crossview desktop app settings (written by the app; edit with care)\n"
    text += yaml.safe_dump(settings.to_dict(), sort_keys=False)
    atomic_write_bytes(path, text.encode("utf-8"))
    logger.info("settings saved to %s", path)
    return path


class ConfidenceGate:
    """A 2D detector whose keypoints below ``min_confidence`` count as not seen (NaN, confidence
    0), so the 3D stages ignore them. Wraps any :mod:`app.detection` source."""

    def __init__(self, detector, min_confidence: float) -> None:
        self.detector = detector
        self.min_confidence = float(min_confidence)
        self.joint_set = detector.joint_set
        self.provider = detector.provider

    def reset(self) -> None:
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def __call__(self, frames, rig):
        from app.detection import FrameKeypoints

        result = self.detector(frames, rig)
        low = result.confidence < self.min_confidence  # (C, J)
        keypoints = np.where(low[..., None], np.nan, result.keypoints)  # (C, J, 2) px
        confidence = np.where(low, 0.0, result.confidence)  # (C, J)
        return FrameKeypoints(keypoints, confidence, result.found, result.milliseconds)


def build_pipeline(rig: Rig, settings: GuiSettings):
    """The :class:`app.pipeline.Pipeline` for ``rig`` with the user's models, provider, confidence
    threshold and filter. Loads the models (seconds): call it off the GUI thread.

    Raises:
        CrossviewError: a model cannot be loaded (the message names it and what to do).
    """
    from app.detection import open_detector
    from app.pipeline import Pipeline, load_model
    from models.filters import OneEuroFilter

    detector = ConfidenceGate(open_detector(settings.detector, settings.provider), settings.min_confidence)
    smoother = None
    if settings.filter_enabled:
        smoother = OneEuroFilter(settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
    return Pipeline(rig, detector, refiner=load_model("refiner", settings.refiner),
                    lifter=load_model("lifter", settings.lifter), smoother=smoother, robust=True,
                    max_reprojection_error_px=settings.max_reprojection_error_px)
