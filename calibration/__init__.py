"""Cameras, rigs, calibration files, boards, solvers and triangulation (numpy/OpenCV; no Qt, no torch)."""

from calibration.boards import Board, load_board
from calibration.camera import Camera, look_at
from calibration.errors import CalibrationError, CrossviewError
from calibration.files import load_rig, read_rig, save_rig
from calibration.rig import Rig

__all__ = [
    "Board",
    "load_board","Camera", "Rig", "look_at", "load_rig", "read_rig", "save_rig", "CalibrationError", "CrossviewError"]
