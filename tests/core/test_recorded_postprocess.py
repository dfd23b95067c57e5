"""A checkpoint's recorded post-processing (``provenance["postprocess"]``): checked at load, applied by
``predict`` and ``brats-seg segment`` unless the caller sets the option, and said on the per-case line."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _tiny_unet import speckled_unet3d
from scipy import ndimage

from napari_brats_seg.cli import main
from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models.checkpoint import load_checkpoint, read_spec, save_checkpoint
from napari_brats_seg.core.synth import write_cases

SHAPE = (32, 32, 24)


def _checkpoint(path: Path, recorded: object | None) -> Path:
    model = speckled_unet3d()
    if recorded is not None:
        model.spec.provenance = {"postprocess": recorded}
    return save_checkpoint(path, model.network, model.spec)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cases(tmp_path_factory.mktemp("synth"), 1, seed=5, shape=SHAPE)[0]


def _components(path: Path) -> int:
    return ndimage.label(np.asarray(nib.load(str(path)).dataobj) > 0, np.ones((3, 3, 3), bool))[1]



def test_segment_applies_the_recorded_choice_unless_told_otherwise(case, tmp_path, capsys):
    chosen = _checkpoint(tmp_path / "chosen.safetensors", {"keep_largest": True})
    plain = _checkpoint(tmp_path / "plain.safetensors", None)
    runs = {"default": (chosen, ()), "off": (chosen, ("--no-keep-largest",)), "asked": (plain, ("--keep-largest",)),
            "plain": (plain, ())}
    lines = {}
    for name, (ckpt, extra) in runs.items():
        out = tmp_path / f"{name}.nii.gz"
        assert main(["segment", str(case), "-o", str(out), "--model", str(ckpt), "--quiet", *extra]) == 0
        lines[name] = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ok    "))
    assert "largest tumour component kept (the model's choice); the clean-ups removed" in lines["default"]
    assert "largest tumour component kept (asked for)" in lines["asked"]
    assert "largest" not in lines["off"] and "largest" not in lines["plain"]
    assert _components(tmp_path / "default.nii.gz") == 1 == _components(tmp_path / "asked.nii.gz")
    assert _components(tmp_path / "off.nii.gz") > 1 and _components(tmp_path / "plain.nii.gz") > 1
    kept = np.asarray(nib.load(str(tmp_path / "default.nii.gz")).dataobj)
    every = np.asarray(nib.load(str(tmp_path / "off.nii.gz")).dataobj)
    np.testing.assert_array_equal(kept[kept > 0], every[kept > 0])  # the kept component's classes unchanged


@pytest.mark.parametrize(("recorded", "match"), [
    ({"keep_largest": "yes"}, "keep_largest must be true or false"),
    ({"keep_biggest": True}, "unknown postprocess option 'keep_biggest'"),
    ({"min_component_voxels": -3}, ">= 0"),
    ("keep_largest", "must be a mapping"),
])
def test_a_bad_recorded_choice_is_refused_at_load_naming_the_file(case, tmp_path, capsys, recorded, match):
    bad = _checkpoint(tmp_path / "bad.safetensors", recorded)
    for read in (read_spec, load_checkpoint):
        with pytest.raises(ModelError, match=match) as info:
            read(bad)
        assert str(bad) in str(info.value) and "post-processing its provenance records" in str(info.value)
    assert main(["segment", str(case), "-o", str(tmp_path / "o.nii.gz"), "--model", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and match.split()[0] in err and "Traceback" not in err
