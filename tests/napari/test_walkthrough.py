"""The scripted walkthrough (``scripts/walkthrough.py``) on a crop of a real BraTS 2018 case: Load,
Segment with the Segment widget's default model, Correct (brush, remove islands), Undo, Score, Save,
with the autosave recovery file and the written NIfTI checked at every step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _walkthrough():
    spec = importlib.util.spec_from_file_location("walkthrough", ROOT / "scripts" / "walkthrough.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_walkthrough_on_a_real_crop(make_napari_viewer, real_case_dir: Path, tmp_path: Path,
                                    one_torch_thread) -> None:
    import nibabel as nib

    wt = _walkthrough()
    case = wt.crop_case(real_case_dir, tmp_path / "crop", 64)
    assert nib.load(str(next(case.glob("*_flair.nii.gz")))).shape == (64, 64, 64)
    viewer = make_napari_viewer()
    lines: list[str] = []
    walk = wt.Walk(viewer, wt.dock(viewer), tmp_path, log=lines.append)
    summary = walk.run(case)
    assert summary["steps"] == ["load", "segment", "edit", "undo", "score", "save"]
    assert summary["saved"].exists() and 0.0 <= summary["dice"]["WT"] <= 1.0
    assert any(line.startswith("    model: ") for line in lines)
