"""Where the code comes from, and what importing it drags in."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core
import tui

ROOT = Path(__file__).resolve().parent.parent


def test_core_and_tui_come_from_this_repo() -> None:
    assert Path(core.__file__).resolve().parent == ROOT / "core"
    assert Path(tui.__file__).resolve().parent == ROOT / "tui"


def test_importing_every_core_module_loads_no_ui_and_no_kubernetes() -> None:
    names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core."))
    assert "core.engine" in names and "core.plan" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'rich', 'tui'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported UI modules: {result.stdout}"


def test_core_sources_never_import_tui() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "core").rglob("*.py")
        if any(line.lstrip().startswith(("import tui", "from tui")) for line in p.read_text().splitlines())
    ]
    assert offenders == []


def test_the_cli_starts_without_kubernetes_or_prometheus_client() -> None:
    code = (
        "import sys\nimport tui.cli\ntui.cli.build_parser()\n"
        "import core.session, core.engine\n"
        "heavy = [m for m in ('kubernetes', 'prometheus_api_client', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
