"""The core stays napari-, Qt- and (on the reader path) torch-free."""

import subprocess
import sys

import pytest

HEAVY = ("napari", "qtpy", "PyQt6", "PySide6", "magicgui", "superqt")


@pytest.mark.parametrize("module", [
    "napari_brats_seg",
    "napari_brats_seg.core.io",
    "napari_brats_seg.core.labels",
    "napari_brats_seg.core.case",
    "napari_brats_seg.cli",
])
def test_core_imports_no_gui_and_no_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {HEAVY + ('torch',)!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
