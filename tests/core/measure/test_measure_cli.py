"""``brats-seg measure``: the table, the JSON (shape, world frame), and bad input said plainly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "measure", *args],
                          capture_output=True, text=True, timeout=120)


def test_json_shape_and_world_frame(real_case_dir: Path) -> None:
    seg = real_case_dir / f"{real_case_dir.name}_seg.nii.gz"
    proc = _cli(str(seg), "--case", str(real_case_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert set(res) >= {"lesions", "spd_mm2", "volumes_ml", "whole_tumour", "plane", "status"}
    assert set(res["volumes_ml"]) == {"NCR", "ED", "ET", "TC", "WT"}
    assert res["case_id"] == real_case_dir.name and "axial" in res["plane"]
    les = res["lesions"][0]
    assert set(les) >= {"id", "slice", "long_mm", "perp_mm", "product_mm2", "measurable", "endpoints_mm"}
    assert les["measurable"] and les["target"] and res["spd_mm2"] == pytest.approx(
        sum(x["product_mm2"] for x in res["lesions"] if x["target"]), abs=0.5)
    img = nib.load(str(seg))
    data = np.asarray(img.dataobj)
    for key, length in (("long", les["long_mm"]), ("perp", les["perp_mm"])):
        ends = np.array(les["endpoints_mm"][key])
        # The ends are RAS+ mm as nibabel reports world coordinates of the labels file ...
        assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(length, abs=0.01)
        for vox in les["endpoints_voxel"][key]:
            # ... the end pixels are enhancing tumour (4 in this BraTS 2018 file) on the reported slice,
            assert data[tuple(vox)] == 4
            world = nib.affines.apply_affine(img.affine, vox)
            # ... and each caliper end lies within one voxel of its end pixel's world position.
        assert min(np.linalg.norm(ends - world, axis=1)) <= 1.0
    assert abs(ends[0][2] - nib.affines.apply_affine(img.affine, les["endpoints_voxel"]["long"][0])[2]) < 1e-6
    vol = res["volumes_ml"]
    assert vol["TC"] == pytest.approx(vol["NCR"] + vol["ET"], abs=0.01)
    assert vol["ET"] == pytest.approx(np.count_nonzero(data == 4) / 1000, abs=0.001)


def test_table(real_case_dir: Path, capsys: pytest.CaptureFixture) -> None:
    seg = real_case_dir / f"{real_case_dir.name}_seg.nii.gz"
    assert main(["measure", str(seg)]) == 0
    out = capsys.readouterr().out
    assert "RANO: enhancing tumour" in out and "RANO-LGG style" in out and "SPD:" in out
    assert "target" in out and "volumes mL  NCR" in out and "patient's axial plane" in out


def _save(tmp_path: Path, data: np.ndarray, name: str) -> Path:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.diag([-1.0, -1.0, 1.0, 1.0])), str(path))
    return path


def test_bad_input_is_said_plainly(tmp_path: Path) -> None:
    empty = _save(tmp_path, np.zeros((20, 20, 10)), "empty_seg.nii.gz")
    proc = _cli(str(empty))
    assert proc.returncode == 2 and "empty" in proc.stderr and "empty_seg.nii.gz" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr

    foreign = np.zeros((20, 20, 10))
    foreign[5:10, 5:10, 3:6] = 7
    proc = _cli(str(_save(tmp_path, foreign, "foreign_seg.nii.gz")))
    assert proc.returncode == 2 and "fit no known scheme" in proc.stderr and proc.stdout == ""

    edema = np.zeros((40, 40, 10))
    edema[5:30, 8:25, 2:7] = 2
    proc = _cli(str(_save(tmp_path, edema, "lgg_seg.nii.gz")), "--scheme", "brats2021", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["lesions"] == [] and res["spd_mm2"] is None and "no enhancing tumour" in res["status"]
    wt = res["whole_tumour"]["lesions"][0]  # a 25 x 17 voxel block: its longest diameter is the diagonal
    assert wt["long_mm"] == pytest.approx(np.hypot(24, 16) + 1, abs=0.01) and res["whole_tumour"]["spd_mm2"] > 0

    proc = _cli(str(_save(tmp_path, edema, "lgg2_seg.nii.gz")), "--scheme", "brats2021")
    assert "no enhancing tumour" in proc.stdout and "SPD: undefined" not in proc.stdout.split("RANO-LGG")[1]

    proc = _cli(str(tmp_path / "missing_seg.nii.gz"))
    assert proc.returncode == 2 and "file not found" in proc.stderr


def test_world_frame_follows_the_file_orientation(real_crop_dir: Path, tmp_path: Path) -> None:
    """The same labels stored RAS instead of LPS: same diameters, same world ends, the file's own voxels."""
    from napari_brats_seg.core.measure import measure_file

    seg = next(real_crop_dir.glob("*_seg.nii.gz"))
    ras_img = nib.as_closest_canonical(nib.load(str(seg)))
    assert nib.aff2axcodes(ras_img.affine) == ("R", "A", "S")
    ras = tmp_path / "ras_seg.nii.gz"
    nib.save(ras_img, str(ras))
    a, b = measure_file(seg).to_dict(), measure_file(ras).to_dict()
    la, lb = a["lesions"][0], b["lesions"][0]
    assert (la["long_mm"], la["perp_mm"], la["slice"]) == (lb["long_mm"], lb["perp_mm"], lb["slice"])
    assert np.allclose(la["endpoints_mm"]["long"], lb["endpoints_mm"]["long"], atol=1e-3)
    data = np.asarray(ras_img.dataobj)
    for vox in lb["endpoints_voxel"]["long"]:
        assert data[tuple(vox)] == 4
    assert lb["endpoints_voxel"]["long"] != la["endpoints_voxel"]["long"]


def test_oblique_plane_is_said(tmp_path: Path) -> None:
    from napari_brats_seg.core.measure import measure_file

    t = np.radians(12.0)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([-0.9, -0.9, 5.0])
    data = np.zeros((40, 40, 6), np.uint8)
    data[8:30, 10:28, 1:4] = 4
    path = tmp_path / "obl_seg.nii.gz"
    nib.save(nib.Nifti1Image(data, aff), str(path))
    res = measure_file(path).to_dict()
    assert "tilted 12.0 degrees" in res["plane"] and res["spacing_zyx_mm"] == [5.0, 0.9, 0.9]
    les = res["lesions"][0]
    ends = np.array(les["endpoints_mm"]["long"])
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(les["long_mm"], abs=0.01)
