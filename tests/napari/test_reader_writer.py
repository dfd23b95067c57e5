"""Manifest, reader and writer: real BraTS files round-trip through viewer.open and layers.save."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_brats_seg._napari.layers import source_of
from napari_brats_seg._napari.reader import napari_get_reader

PLUGIN = "napari-brats-seg"


def test_manifest_validates_and_imports() -> None:
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest(PLUGIN)
    mf.validate_imports()  # every python_name resolves
    assert {w.display_name for w in mf.contributions.widgets} == {"Load", "Segment", "Correct", "Score",
                                                                  "Save", "3D", "Measure", "Workflow",
                                                                  "Views", "Legend", "Compare"}
    # npe2 through this interpreter: CI does not activate the venv, so "npe2" is not on PATH
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", PLUGIN], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_reader_declines_foreign_paths_without_raising(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.nii.gz").write_bytes(b"garbage")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "empty")) is None
    assert napari_get_reader(str(junk)) is None
    assert napari_get_reader(str(tmp_path / "missing")) is None
    assert napari_get_reader([str(tmp_path / "notes.txt")]) is None
    # A .nii.gz name is ours; reading a broken one raises the project's CaseError, not a crash.
    assert napari_get_reader(str(bad)) is not None


def test_reader_path_imports_no_torch() -> None:
    code = ("import sys\nfrom napari_brats_seg._napari.reader import napari_get_reader, read\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_real_case_opens_and_gt_round_trips(make_napari_viewer, real_case_dir: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(real_case_dir), plugin=PLUGIN)
    images = [ly for ly in layers if isinstance(ly, Image)]
    labels = [ly for ly in layers if isinstance(ly, Labels)]
    assert [source_of(ly).modality for ly in images] == ["t1", "t2", "t1ce", "flair"]
    assert images[0].name.startswith("T1 [Brats18_2013_11_1")
    assert images[0].data.shape == (155, 240, 240)
    np.testing.assert_allclose(images[0].scale, (1.0, 1.0, 1.0))
    lo, hi = images[-1].contrast_limits
    assert 0 <= lo < hi
    (gt,) = labels
    assert source_of(gt).scheme == "brats2021"
    assert set(np.unique(gt.data)) <= {0, 1, 2, 3} and 3 in np.unique(gt.data)
    assert gt.colormap.map(np.array([3]))[0, :3].tolist() == pytest.approx([1.0, 0.9, 0.1])
    assert list(gt.features["name"][:4]) == ["background", "necrotic core", "edema", "enhancing tumour"]

    out = tmp_path / "gt_copy.nii.gz"
    viewer.layers.selection = {gt}
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert [Path(p) for p in written] == [out]
    src, dst = nib.load(str(real_case_dir / "Brats18_2013_11_1_seg.nii.gz")), nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(dst.dataobj), np.asanyarray(src.dataobj))
    np.testing.assert_array_equal(dst.affine, src.affine)
    # The writer never writes over an input of the case.
    from napari_brats_seg._napari.writer import write_labels_layer
    from napari_brats_seg.core.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        write_labels_layer(str(real_case_dir / "Brats18_2013_11_1_seg.nii.gz"), gt.data,
                           {"metadata": gt.metadata})


def test_single_seg_file_of_other_layout_round_trips(make_napari_viewer, tmp_path: Path) -> None:
    """A BraTS 2023-named RAS segmentation opened alone comes back identical (values 1/2/3, affine)."""
    from napari_brats_seg.core.synth import write_cases

    case = write_cases(tmp_path / "c", 1, seed=2, layout="brats2023", shape=(40, 48, 32), orientation="RAS")[0]
    seg = next(case.glob("*-seg.nii.gz"))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(seg), plugin=PLUGIN)
    assert isinstance(layer, Labels) and source_of(layer).scheme == "brats2023"
    out = tmp_path / "again.nii.gz"
    viewer.layers.selection = {layer}
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    a, b = nib.load(str(seg)), nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(b.dataobj), np.asanyarray(a.dataobj))
    np.testing.assert_allclose(b.affine, a.affine)
    assert nib.aff2axcodes(b.affine) == ("R", "A", "S")


def test_layer_drawn_from_scratch_is_written_lps(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    data = np.zeros((6, 7, 8), np.uint8)
    data[2, 3, 4] = 3
    layer = viewer.add_labels(data, scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    viewer.layers.selection = {layer}
    out = tmp_path / "drawn.nii"
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    img = nib.load(str(out))
    assert img.shape == (8, 7, 6) and nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert np.asanyarray(img.dataobj)[4, 3, 2] == 4  # enhancing stored as 4 (brats2021)
    assert img.header.get_zooms() == (1.0, 1.0, 2.0)


def test_msd_4d_case_opens_and_labels_round_trip(make_napari_viewer, tmp_path: Path) -> None:
    """An MSD Task01 4D image opens as four sequences; its labels save back in the msd scheme."""
    from napari_brats_seg.core.synth import write_cases

    image = write_cases(tmp_path / "msd", 1, seed=1, layout="msd", shape=(40, 48, 32))[0]
    viewer = make_napari_viewer()
    layers = viewer.open(str(image), plugin=PLUGIN)
    assert sorted(source_of(ly).modality for ly in layers if isinstance(ly, Image)) == ["flair", "t1", "t1ce", "t2"]
    (gt,) = [ly for ly in layers if isinstance(ly, Labels)]
    assert source_of(gt).scheme == "msd"
    out = tmp_path / "msd_labels.nii.gz"
    viewer.layers.selection = {gt}
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    src = nib.load(str(source_of(gt).gt_path))
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(out)).dataobj), np.asanyarray(src.dataobj))
