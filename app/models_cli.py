"""``crossview models fetch|list|path``: obtain and inspect the detector models.

``fetch`` downloads the mediapipe wheel once (or reads one given with ``--wheel``), converts its
BlazePose models to ONNX and caches them (see :mod:`models.model_store`); ``list`` shows each
model's state; ``path`` prints the model folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``models`` subcommand to an ``add_subparsers()`` object; returns its parser."""
    parser = subparsers.add_parser("models", help="download and convert the BlazePose models, or show where they are")
    parser.add_argument("action", choices=("fetch", "list", "path"))
    parser.add_argument("--wheel", type=Path, help="for fetch: a mediapipe 0.10.21 wheel already on disk (offline)")
    parser.add_argument(
        "--dir", type=Path, help="model folder (default: $CROSSVIEW_MODEL_DIR or ~/.local/share/crossview/models)"
    )
    parser.set_defaults(func=cmd_models)
    return parser


def cmd_models(args: argparse.Namespace) -> int:
    """Run ``crossview models ACTION``; ``args`` has ``action``, ``wheel`` and ``dir`` (Paths or None)."""
    from models.model_store import BLAZEPOSE_MODELS, ensure_blazepose_models, model_dir, model_status

    folder = args.dir.expanduser() if args.dir is not None else model_dir()
    if args.action == "path":
        print(folder)
        return 0
    if args.action == "fetch":
        paths = ensure_blazepose_models(progress=print, wheel=args.wheel, folder=folder)
        for name, path in paths.items():
            print(f"{name}: {path}")
        return 0
    if args.wheel is not None:
        print("note: --wheel is only used by fetch")
    print(f"model folder: {folder}")
    for spec in BLAZEPOSE_MODELS:
        print(f"  {spec.name:<20} {model_status(spec, folder)}")
    return 0
