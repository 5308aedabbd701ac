"""Benchmarks: ``crossview bench NAME`` runs one, stores its table in the results file and
refreshes the matching table in the README.

Every benchmark module exposes ``run(quick: bool = False) -> dict`` returning::

    {"name": str, "title": str, "columns": [str, ...], "rows": [[cell, ...], ...], "notes": str}

The results file (``assets/results/benchmarks.json``) is the one place for measured figures. The
README holds a copy of each table between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``
markers; :func:`render_readme` rewrites those blocks from the results file, so the README never
states a number that no run produced.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import logging
import os
import platform
import re
from pathlib import Path

from calibration.files.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = REPO_ROOT / "assets" / "results" / "benchmarks.json"
README = REPO_ROOT / "README.md"

#: Benchmark name -> module under ``app.bench`` that implements it.
BENCHMARKS = {
    "triangulation": "app.bench.triangulation",
    "triangulation-accuracy": "app.bench.triangulation_accuracy",
    "detector": "app.bench.detector",
    "real-recording": "app.bench.real_recording",
    "calibration": "app.bench.calibration_real",
    "pipeline": "app.bench.pipeline",
    "refiner": "app.bench.refiner",
    "end-to-end": "app.bench.end_to_end",
}


def machine_description() -> dict:
    """Where the figures were measured: CPU model, core count, Python and NumPy versions."""
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "system": f"{platform.system()} {platform.release()}",
    }


def run_benchmark(name: str, *, quick: bool = False) -> dict:
    """Run benchmark ``name`` and return its result dict with ``machine`` and ``date`` added."""
    if name not in BENCHMARKS:
        from calibration.errors import CrossviewError

        raise CrossviewError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    module = importlib.import_module(BENCHMARKS[name])
    result = dict(module.run(quick=quick))
    result["machine"] = machine_description()
    result["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["quick"] = quick
    return result


def load_results(path: Path = RESULTS_FILE) -> dict:
    """All stored results, keyed by benchmark name (empty when the file does not exist)."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _atomic_write_text(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def store_result(result: dict, path: Path = RESULTS_FILE) -> None:
    """Put ``result`` into the results file under its name (atomically)."""
    results = load_results(path)
    results[result["name"]] = result
    _atomic_write_text(path, json.dumps(results, indent=2, sort_keys=True) + "\n")


def _format_cell(value) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(result: dict) -> str:
    """The result as a Markdown table with a one-line provenance note under it."""
    lines = [
        "| " + " | ".join(result["columns"]) + " |",
        "|" + "|".join("---" for _ in result["columns"]) + "|",
    ]
    lines += ["| " + " | ".join(_format_cell(v) for v in row) + " |" for row in result["rows"]]
    machine = result.get("machine", {})
    provenance = f"_{result.get('date', '?')}, {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores)"
    if result.get("quick"):
        provenance += ", quick run"
    provenance += "._"
    if result.get("notes"):
        provenance += f" {result['notes']}"
    return "\n".join(lines) + "\n\n" + provenance


def render_readme(readme: Path = README, results_path: Path = RESULTS_FILE) -> list[str]:
    """Rewrite every ``<!-- results:NAME -->`` block of the README from the results file.

    Returns:
        The names of the blocks that were rewritten.
    """
    if not readme.exists():
        return []
    results = load_results(results_path)
    text = readme.read_text()
    updated: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in results:
            return match.group(0)
        updated.append(name)
        return f"<!-- results:{name} -->\n{markdown_table(results[name])}\n<!-- /results:{name} -->"

    new_text = re.sub(r"<!-- results:([\w-]+) -->.*?<!-- /results:\1 -->", replace, text, flags=re.S)
    if new_text != text:
        _atomic_write_text(readme, new_text)
    return updated
