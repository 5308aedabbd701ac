"""The ``crossview`` command: one console script with subcommands.

Errors the user can fix (:class:`calibration.errors.CrossviewError`) are printed as one clear
message with exit status 2, never as a traceback; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from calibration.errors import CrossviewError

logger = logging.getLogger("crossview")


# ------------------------------------------------------------------------------------------------
# Subcommands
def _cmd_process(args: argparse.Namespace) -> int:
    from app.process import process, process_take, process_videos

    options = dict(refiner=args.refiner, lifter=args.lifter, robust=not args.plain_dlt, smooth=args.filter,
                   min_cutoff_hz=args.filter_min_cutoff, beta=args.filter_beta)
    take = args.input if args.input is not None and args.input.is_dir() and (args.input / "videos").is_dir() else None
    if args.videos is not None or take is not None:
        video_options = dict(options, calibration_units=args.calibration_units, device=args.device, model=args.model)
        if take is not None and args.videos is None:
            result, out_dir, stats = process_take(take, out_dir=args.out, calibration_path=args.calibration,
                                                  **video_options)
            videos_dir = take / "videos"
        else:
            if args.calibration is None or args.out is None:
                raise CrossviewError("crossview process --videos DIR needs --calibration FILE and --out DIR")
            result, out_dir, stats = process_videos(args.videos, calibration_path=args.calibration, out_dir=args.out,
                                                    **video_options)
            videos_dir = args.videos
        rates = ", ".join(f"{name} {100 * rate:.1f} %" for name, rate in stats["detection_rate"].items())
        print(f"{args.model} ({stats['provider']}): person found in {rates} of {stats['frames']} frames; "
              f"{stats['detector_ms_median']:.1f} ms per frame set (median)")
        stages = stats["stage_ms"]
        ran = [s for s in ("detect", "triangulate", "refine", "lift", "filter") if stages[s]["p95"] > 0]
        print("latency per frame set, median (p95): " + ", ".join(
            f"{s} {stages[s]['median']:.1f} ({stages[s]['p95']:.1f}) ms" for s in ran)
            + f"; {1000.0 / stages['total']['median']:.1f} frame sets/s")
        if stats["missing_cameras"]:
            print(f"warning: no video for camera(s) {', '.join(stats['missing_cameras'])} of the calibration; "
                  f"processed {', '.join(result.camera_names)}")
        if stats["problem"]:
            print(f"warning: {stats['problem']}")
        print(f"wrote {out_dir / 'poses2d.npz'}")
        _print_summary(result, out_dir)
        for folder in {Path(out_dir), Path(videos_dir).parent}:
            if (folder / "ground_truth.npz").is_file():
                _print_accuracy(result.points, folder / "ground_truth.npz")
                break
        return 0
    if args.input is None:
        raise CrossviewError("crossview process needs INPUT (a take folder or keypoints) or --videos DIR")
    result, out_dir = process(args.input, calibration_path=args.calibration, out_dir=args.out,
                              calibration_units=args.calibration_units, **options)
    _print_summary(result, out_dir)
    truth = Path(args.input) / "ground_truth.npz" if Path(args.input).is_dir() else None
    if truth is not None and truth.is_file():
        _print_accuracy(result.points, truth)
    return 0


def _print_summary(result, out_dir: Path) -> None:
    summary = result.summary()
    print(f"wrote {out_dir / 'poses3d.npz'} and {out_dir / 'poses3d.csv'}")
    print(
        f"{summary['frames']} frames, {len(result.camera_names)} cameras ({', '.join(result.camera_names)}); "
        f"{summary['joints_triangulated_pct']:.1f} % of joints triangulated from "
        f"{summary['views_used_mean']:.2f} views on average"
    )
    print(
        f"reprojection error: median {summary['reprojection_error_median_px']:.2f} px, "
        f"p95 {summary['reprojection_error_p95_px']:.2f} px"
    )
    if summary["methods_pct"]:
        print("3D from: " + ", ".join(f"{name} {pct:.1f} %" for name, pct in sorted(summary["methods_pct"].items())))


def _print_accuracy(points, truth_path: Path) -> None:
    import numpy as np

    from models.metrics import evaluate

    with np.load(truth_path) as data:
        truth = data["points"]
    if truth.shape != points.shape:
        print(f"ground truth {truth_path} has shape {truth.shape}, poses {points.shape}: not compared")
        return
    scores = evaluate(points, truth)
    print(
        f"against the sample's ground truth: MPJPE {scores['absolute_mpjpe_mm']:.1f} mm "
        f"(root-relative {scores['mpjpe_mm']:.1f} mm, P-MPJPE {scores['p_mpjpe_mm']:.1f} mm, "
        f"PCK@{scores['pck_threshold_mm']:.0f}mm {scores['pck_percent']:.1f} %)"
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from app.bench import BENCHMARKS, markdown_table, render_readme, run_benchmark, store_result

    names = sorted(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        result = run_benchmark(name, quick=args.quick)
        print(f"## {result['title']}\n")
        print(markdown_table(result))
        print()
        if not args.no_save:
            store_result(result)
    if not args.no_save:
        updated = render_readme()
        from app.bench import RESULTS_FILE

        print(f"results stored in {RESULTS_FILE}; README tables refreshed: {', '.join(updated) or 'none'}")
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    import numpy as np

    from calibration import read_rig, save_rig

    rig_file = read_rig(args.file, units=args.units)
    rig = rig_file.rig
    if args.action == "show":
        print(rig_file.describe())
        for cam in rig:
            c = cam.center
            print(
                f"  {cam.name}: {cam.width}x{cam.height} px, f = ({cam.K[0, 0]:.1f}, {cam.K[1, 1]:.1f}) px, "
                f"{cam.model}, centre = ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm"
            )
        if len(rig) > 1:
            d = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1)
            print(f"  camera spacing: {d[np.triu_indices(len(rig), 1)].min():.0f} - {d.max():.0f} mm")
        return 0
    if args.output is None:
        raise CrossviewError("calibration convert needs an output file: crossview calibration convert IN OUT")
    save_rig(rig, args.output)
    print(f"wrote {args.output} ({len(rig)} cameras)")
    return 0


def _torch_module(name: str):
    """Import a training module, or say which extra installs torch."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise CrossviewError(
                "training needs PyTorch: pip install torch==2.13.0 (CPU) or a CUDA build, then pip install -e '.[train]'"
            ) from None
        raise


def _cmd_train(args: argparse.Namespace) -> int:
    if args.what in ("evaluate", "export") and args.rest and _torch_module("training.lifter").is_lifter_run(args.rest[0]):
        # A lifter run (its config.json says "kind": "lifter") has its own evaluation and export.
        module = _torch_module({"evaluate": "training.lifter_evaluate", "export": "training.lifter"}[args.what])
        (module.main if args.what == "evaluate" else module.main_export)(args.rest)
        return 0
    module = {"refiner": "training.train_refiner", "lifter": "training.lifter_train", "evaluate": "training.evaluate",
              "export": "training.export"}[args.what]
    _torch_module(module).main(args.rest)
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from app.gui.main import run_gui

    return run_gui(args.take)


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.gui.demo import ensure_sample_take, sample_is_complete, sample_take_dir
    from app.gui.main import check_display, run_gui

    check_display()  # before minutes of rendering, not after
    folder = args.folder or sample_take_dir()
    if not sample_is_complete(folder):
        from tqdm import tqdm

        print(f"making the sample take in {folder} (rendering three videos, about a minute and a half)")
        bar = tqdm(desc="rendering", unit="frame")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        ensure_sample_take(folder, progress)
        bar.close()
    return run_gui(folder, demo=True)


def _cmd_sample(args: argparse.Namespace) -> int:
    from app.sample import make_sample

    progress = None
    if args.videos:
        from tqdm import tqdm

        bar = tqdm(desc="rendering", unit="frame")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

    folder = make_sample(
        args.out, seed=args.seed, num_cameras=args.cameras, duration_s=args.duration, videos=args.videos, progress=progress
    )
    videos = ", videos/" if args.videos else ""
    print(f"wrote the sample to {folder}: calibration.yaml, poses2d.npz, ground_truth.npz{videos}")
    if args.videos:
        print(f"next: crossview process --videos {folder}/videos --calibration {folder}/calibration.yaml --out {folder}")
    else:
        print(f"next: crossview process {folder}")
    return 0


# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossview",
        description="Markerless 3D human motion capture with ordinary cameras.",
    )
    parser.add_argument("--debug", action="store_true", help="log debug messages and show tracebacks")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "process",
        help="videos or 2D keypoints + calibration -> 3D poses (poses2d.npz, poses3d.npz, poses3d.csv)",
        description=(
            "Detect, triangulate, refine and filter into 3D. INPUT is a take folder (a calibration and videos/<camera>.mp4: "
            "BlazePose runs on the videos; or a calibration and poses2d.npz), "
            "a poses2d.npz file, a folder of OpenPose JSON folders (<camera>_json/), a folder of "
            "DeepLabCut-style CSV files (<camera>.csv) or a FreeMoCap mediapipe 2D .npy file. Cameras are "
            "matched to the calibration by name."
        ),
    )
    p.add_argument("input", type=Path, nargs="?", help="take folder, poses2d.npz, OpenPose/CSV folder or FreeMoCap .npy")
    p.add_argument("--videos", type=Path, help="folder of synchronised videos named after the cameras: run BlazePose on them first")
    p.add_argument("--model", default="blazepose", help="2D model for --videos: blazepose (default) or a model card .yaml (RTMPose, RTMO, YOLO-pose ONNX)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"), help="where the detector runs (default auto)")
    p.add_argument("--calibration", type=Path, help="calibration file (native YAML, anipose TOML, caliscope TOML, Qualisys .qca.txt)")
    p.add_argument("--calibration-units", choices=("mm", "cm", "m"), help="units of an anipose TOML (default: inferred from camera spacing)")
    p.add_argument("--out", type=Path, help="output folder (default: the input folder)")
    p.add_argument("--refiner", help="cross-view 3D refiner: default (assets/models/refiner.onnx), none, or an exported .onnx "
                   "(when not given: default if installed, else none)")
    p.add_argument("--lifter", help="single-view lifter for frames fewer than two cameras see: default "
                   "(assets/models/lifter.onnx), none, or an .onnx (when not given: default if installed, else none)")
    p.add_argument("--filter", action=argparse.BooleanOptionalAction, default=True,
                   help="One-Euro temporal filter on the 3D joints (default on)")
    p.add_argument("--filter-min-cutoff", type=float, metavar="HZ", help="filter cutoff at rest, Hz (default 1.0)")
    p.add_argument("--filter-beta", type=float, metavar="B", help="filter cutoff increase per mm/s of speed (default 0.01)")
    p.add_argument("--plain-dlt", action="store_true", help="plain confidence-weighted DLT instead of robust triangulation")
    p.set_defaults(func=_cmd_process)

    p = sub.add_parser("gui", help="open the desktop app (the default when no command is given), optionally on a take")
    p.add_argument("take", type=Path, nargs="?", help="take folder (calibration, videos/, poses2d.npz, poses3d.npz)")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("demo", help="open the desktop app on the bundled sample take (made first if missing), "
                                    "played through the real detector, with the MPJPE against its ground truth")
    p.add_argument("--folder", type=Path, help="sample take folder (default: ~/.local/share/crossview/sample-take)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("sample", help="write the bundled synthetic sample take (2D keypoints, calibration, 3D truth)")
    p.add_argument("out", type=Path, nargs="?", default=Path("sample-take"), help="folder to write (default: sample-take)")
    p.add_argument("--cameras", type=int, default=3, help="number of virtual cameras (default 3)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of motion at 30 fps (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--videos", action="store_true", help="also render videos/<camera>.mp4 of a shaded mannequin (BlazePose detects it; ~0.1 s per frame and camera)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "train",
        help="train the CV-UGCN refiner (refiner) or the single-view lifter (lifter) without 3D labels, "
             "evaluate a run (evaluate) or export it to ONNX (export)",
        description="crossview train refiner|lifter|evaluate|export [ARGS]; ARGS go to the training module "
                    "(--help lists them).",
    )
    p.add_argument("what", choices=("refiner", "lifter", "evaluate", "export"))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the training module")
    p.set_defaults(func=_cmd_train)

    from app.bench import BENCHMARKS

    p = sub.add_parser("bench", help="run a benchmark; store its figures in assets/results and refresh the README")
    p.add_argument("name", choices=sorted(BENCHMARKS) + ["all"])
    p.add_argument("--quick", action="store_true", help="a short run (rough figures)")
    p.add_argument("--no-save", action="store_true", help="print only; do not touch the results file or README")
    p.set_defaults(func=_cmd_bench)

    from app.calibrate_cli import add_parser as add_calibrate_parser
    from app.export_cli import add_parser as add_export_parser
    from app.record_cli import add_parser as add_record_parser
    from app.models_cli import add_models_parser

    add_models_parser(sub)
    add_calibrate_parser(sub)
    add_export_parser(sub)
    add_record_parser(sub)

    p = sub.add_parser("calibration", help="show or convert a calibration file")
    p.add_argument("action", choices=("show", "convert"))
    p.add_argument("file", type=Path)
    p.add_argument("output", type=Path, nargs="?", help="for convert: .yaml (native) or .toml (anipose)")
    p.add_argument("--units", choices=("mm", "cm", "m"), help="units of an anipose TOML (default: inferred)")
    p.set_defaults(func=_cmd_calibration)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.version:
        from importlib.metadata import version

        print(f"crossview {version('crossview')}")
        return 0
    if args.command is None:  # plain "crossview" opens the desktop app
        args.func, args.take = _cmd_gui, None
    try:
        return int(args.func(args) or 0)
    except CrossviewError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a vanished file
        if args.debug:
            raise
        target = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {target}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
