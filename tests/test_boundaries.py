"""The layering rules hold: the core imports without Qt and torch, and the README agrees with CI."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CORE_PACKAGES = ("calibration", "models")


def _modules(package: str) -> list[str]:
    root = REPO / package
    names = [package]
    for info in pkgutil.walk_packages([str(root)], prefix=f"{package}."):
        names.append(info.name)
    return names


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_imports_without_qt_and_torch(package: str) -> None:
    """Every module of calibration/ and models/ imports with PyQt6, pyqtgraph and torch blocked."""
    modules = _modules(package)
    # A meta-path finder refuses the blocked packages (rather than sys.modules[name] = None, which
    # confuses libraries such as SciPy that probe sys.modules for torch).
    code = (
        "import sys, importlib, importlib.abc\n"
        "BLOCKED = ('PyQt6', 'PyQt5', 'PySide6', 'pyqtgraph', 'torch')\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is blocked in the core')\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in BLOCKED]\n"
        "assert not leaked, leaked\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _imports(path: Path, names: str) -> bool:
    return re.search(rf"^\s*(import|from)\s+({names})\b", path.read_text(), re.M) is not None


def test_layering_in_sources() -> None:
    """No import of Qt outside app/gui/, no import of torch outside training/ (lazy imports too)."""
    qt = "PyQt6|PyQt5|PySide6|pyqtgraph"
    offenders = []
    for package in ("calibration", "models", "app", "training"):
        for path in (REPO / package).rglob("*.py"):
            rel = path.relative_to(REPO)
            if package != "training" and _imports(path, "torch"):
                offenders.append(f"{rel}: torch")
            if "gui" not in rel.parts and _imports(path, qt):
                offenders.append(f"{rel}: Qt")
    assert offenders == []


def _readme_command(kind: str) -> str:
    """The README's set-up command whose line is marked with ``<!-- command:KIND -->``."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- command:{kind} -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    assert match, f"README has no command marked <!-- command:{kind} -->"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run executes exactly the README's test command."""
    command = _readme_command("test")
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci, f"{command!r} not in .ci/run"


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert len(re.findall(r"<!-- command:\w+ -->", text)) == 2
    assert _readme_command("main").startswith("bash .ci/install.sh") or "pip install" in _readme_command("main")
