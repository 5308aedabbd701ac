"""Benchmark plumbing: results are stored in one file and the README tables are rebuilt from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.bench import RESULTS_FILE, load_results, markdown_table, render_readme, run_benchmark, store_result
from calibration.errors import CrossviewError
from models.synthetic.mocap import default_cmu_path


def test_readme_tables_match_the_results_file() -> None:
    """Every README results block is exactly the table rendered from the stored results."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    results = load_results()
    assert results, f"{RESULTS_FILE} is empty"
    for name, result in results.items():
        block = f"<!-- results:{name} -->\n{markdown_table(result)}\n<!-- /results:{name} -->"
        assert block in readme, f"README table {name!r} is not the one in {RESULTS_FILE.name}; run crossview bench {name}"


def test_store_and_render_round_trip(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:demo -->\nold\n<!-- /results:demo -->\nend\n")
    store_result({"name": "demo", "title": "t", "columns": ["a", "b"], "rows": [[1, 2.5]], "notes": "n"}, results)
    assert json.loads(results.read_text())["demo"]["rows"] == [[1, 2.5]]
    assert render_readme(readme, results) == ["demo"]
    text = readme.read_text()
    assert "| 1 | 2.50 |" in text and "old" not in text and text.endswith("end\n")


def test_quick_triangulation_benchmark_runs() -> None:
    result = run_benchmark("triangulation", quick=True)
    assert result["columns"] and len(result["rows"]) >= 4
    assert all(row[3] > 0 for row in result["rows"])  # points per second


@pytest.mark.skipif(not default_cmu_path().is_file(), reason="needs ../shared/data/cmu_mocap (the CMU data)")
def test_quick_accuracy_benchmark_shows_robust_helps_with_four_views() -> None:
    """Robust triangulation beats plain DLT with 4 views on medium noise (measured 26.6 -> 23.0 mm)."""
    result = run_benchmark("triangulation-accuracy", quick=True)
    rows = {row[1]: row for row in result["rows"]}
    assert rows[4][4] < rows[4][3]


def test_unknown_benchmark_is_a_clear_error() -> None:
    with pytest.raises(CrossviewError, match="unknown benchmark"):
        run_benchmark("nope")


def test_end_to_end_benchmark_scores_the_real_detector_on_rendered_frames() -> None:
    """Six frame sets of the routine rendered by 2 cameras, through BlazePose and triangulation:
    the person is found in every view and the MPJPE against the rendered motion stays < 80 mm
    (measured 37.4 mm)."""
    import numpy as np

    from app.bench.end_to_end import STRIDE, render, run_pipeline
    from app.detection import open_detector
    from app.pipeline import Pipeline
    from app.sample import sample_rig
    from models.metrics import mpjpe
    from calibration.errors import CrossviewError
    from models.model_store import ensure_blazepose_models
    from models.synthetic.mocap import to_detector_convention
    from models.synthetic.motion import demo_routine

    try:
        ensure_blazepose_models()
    except CrossviewError as exc:
        import pytest

        pytest.skip(f"BlazePose models unavailable: {exc}")
    motion = demo_routine(duration_s=8.0, fps=30.0, seed=7)[::STRIDE][40:46]
    rig = sample_rig(2)
    poses, found = run_pipeline(Pipeline(rig, open_detector("blazepose", "cpu")), render(rig, motion))
    assert found.all() and poses.shape == (6, 17, 3)
    assert mpjpe(poses, to_detector_convention(motion)) < 80.0
    assert np.isfinite(poses).all()
