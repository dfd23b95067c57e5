"""Two time points compared: pairs made from real cases with known changes and known rigid motion."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import CaseError
from napari_brats_seg.core.io import read_case

pytest.importorskip("SimpleITK", reason="registration needs SimpleITK (the [clinical] extra)")
from napari_brats_seg.core.clinical.register import RigidResult, resample
from napari_brats_seg.core.measure.compare import compare
from napari_brats_seg.core.measure.timepoint import TimePoint

MODS = ("t1", "t1ce", "t2", "flair", "seg")
CROP = 112


def crop_case(src: Path, out_root: Path, size: int = CROP) -> Path:
    """A ``size``^3 crop of a real case around its tumour, written as an uncompressed BraTS case."""
    seg = nib.load(str(src / f"{src.name}_seg.nii.gz"))
    c = np.round(ndimage.center_of_mass(np.asarray(seg.dataobj) > 0)).astype(int)
    lo = [int(np.clip(ci - size // 2, 0, s - size)) for ci, s in zip(c, seg.shape, strict=True)]
    size_z = min(size, seg.shape[2])
    box = (slice(lo[0], lo[0] + size), slice(lo[1], lo[1] + size), slice(max(0, lo[2]), max(0, lo[2]) + size_z))
    out = out_root / src.name
    out.mkdir(parents=True, exist_ok=True)
    for m in MODS:
        img = nib.load(str(src / f"{src.name}_{m}.nii.gz"))
        nib.save(img.slicer[box], str(out / f"{src.name}_{m}.nii"))
    return out


@pytest.fixture(scope="module")
def crops(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crops")
    return {n: crop_case(brats2018_dir / n, root) for n in ("Brats18_TCIA02_135_1", "Brats18_CBICA_AQN_1")}


@pytest.fixture(scope="module")
def base(crops: dict[str, Path]) -> TimePoint:
    return TimePoint.from_case(read_case(crops["Brats18_TCIA02_135_1"]))


def rigid(tp: TimePoint, deg: float, shift_mm: tuple[float, float, float]) -> RigidResult:
    """A rotation of ``deg`` about the superior axis through the grid's centre, then a shift (LPS mm)."""
    c = (tp.grid_affine @ np.array([*(np.array(tp.grid_shape) - 1) / 2, 1.0]))[:3] * np.array([-1, -1, 1])
    a = math.radians(deg)
    r = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, c - r @ c + np.asarray(shift_mm)
    return RigidResult(m, 0.0, 0.0, 0)


def follow_up(tp: TimePoint, labels: np.ndarray, motion: RigidResult | None, name: str = "followup") -> TimePoint:
    """A follow-up of ``tp``: new labels, images and labels moved together by ``motion``."""
    image = tp.image
    if motion is not None:
        img = resample(tp.image_nifti(), tp.grid_affine, tp.grid_shape, motion)
        lab_img = nib.Nifti1Image(labels.transpose(2, 1, 0).astype(np.float32), tp.grid_affine)
        moved = resample(lab_img, tp.grid_affine, tp.grid_shape, motion, nearest=True)
        image = np.asarray(img.dataobj).transpose(2, 1, 0).copy()
        labels = np.asarray(moved.dataobj).transpose(2, 1, 0).astype(np.uint8)
    brain = float(np.count_nonzero(image)) * float(np.prod(tp.geometry.spacing)) / 1000
    return TimePoint(name, labels, tp.geometry, image, tp.image_name, brain)


def erode_et(labels: np.ndarray, mm: float, spacing) -> np.ndarray:
    """Enhancing tumour within ``mm`` of its outside turned to edema (its outer contour shrinks by ``mm``)."""
    et = labels == lab.ENHANCING
    out = labels.copy()
    out[et & (ndimage.distance_transform_edt(et, sampling=spacing) <= mm)] = lab.EDEMA
    return out


def dilate_et(labels: np.ndarray, mm: float, spacing) -> np.ndarray:
    """Enhancing tumour grown by ``mm`` (into any class)."""
    out = labels.copy()
    out[ndimage.distance_transform_edt(labels != lab.ENHANCING, sampling=spacing) <= mm] = lab.ENHANCING
    return out


def far_point(tp: TimePoint, margin_mm: float = 12.0) -> tuple[int, int, int]:
    """A brain voxel far from the tumour and from the crop's edges (for a new lesion)."""
    brain = tp.image != 0
    brain[[0, -1], :, :] = brain[:, [0, -1], :] = brain[:, :, [0, -1]] = False
    d_edge = ndimage.distance_transform_edt(brain, sampling=tp.geometry.spacing)
    d_tumour = ndimage.distance_transform_edt(tp.labels == 0, sampling=tp.geometry.spacing)
    score = np.minimum(d_edge, d_tumour)
    assert score.max() > margin_mm, "no room for a new lesion in the crop"
    return tuple(int(v) for v in np.unravel_index(np.argmax(score), score.shape))


def with_new_lesion(labels: np.ndarray, centre, radius_mm: float, spacing) -> np.ndarray:
    """A ball of enhancing tumour added at ``centre``."""
    grid = np.indices(labels.shape, dtype=np.float32)
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    out = labels.copy()
    out[r2 <= radius_mm ** 2] = lab.ENHANCING
    return out


MOTION = (5.0, (4.0, 0.0, 0.0))  # 5 degrees about the superior axis, 4 mm along L


@pytest.mark.parametrize(("change", "mm", "expected"), [
    ("identity", 0.0, "SD"), ("erode", 1.0, "SD"), ("erode", 4.0, "PR"), ("dilate", 3.0, "PD")])
def test_known_change_under_known_motion(base: TimePoint, change: str, mm: float, expected: str) -> None:
    sp = base.geometry.spacing
    labels = {"identity": base.labels, "erode": erode_et(base.labels, mm, sp) if mm else None,
              "dilate": dilate_et(base.labels, mm, sp) if mm else None}[change]
    fu = follow_up(base, labels, rigid(base, *MOTION))
    res = compare(base, fu)
    f = res.followups[0]
    assert f.category.suggestion == expected, (f.spd, f.category)
    assert f.category.reasons
    # the registration found the motion back (the inverse of the one applied: fixed -> moving)
    assert abs(f.registration.result.rotation_deg - MOTION[0]) < 0.5
    assert res.warnings == []
    # SPD of the follow-up is the one measured on its own grid
    assert f.spd["current_mm2"] == (None if res.measurements[1].et.spd_mm2 is None
                                    else round(res.measurements[1].et.spd_mm2, 1))
    if change == "identity":
        assert abs(f.spd["change_vs_baseline_pct"]) < 3
        assert {g.status for g in f.lesions} == {"matched"}
        assert all(abs(v["change_pct"] or 0) < 3 for v in f.volumes.values())
    if change == "dilate":
        assert f.spd["change_vs_nadir_pct"] >= 25
        assert f.volumes["ET"]["change_ml"] > 0


def test_new_measurable_lesion_is_pd(base: TimePoint) -> None:
    sp = base.geometry.spacing
    labels = with_new_lesion(base.labels, far_point(base), 7.0, sp)
    res = compare(base, follow_up(base, labels, rigid(base, *MOTION)))
    f = res.followups[0]
    assert f.spd["change_vs_nadir_pct"] < 25  # PD comes from the new lesion alone
    assert f.category.suggestion == "PD"
    assert "new measurable" in f.category.reasons[0]
    new = [g for g in f.lesions if g.status == "new"]
    assert len(new) == 1 and new[0].measurable_after and new[0].product_after > 150


def test_enhancing_tumour_removed_is_cr(base: TimePoint) -> None:
    labels = base.labels.copy()
    labels[labels == lab.ENHANCING] = lab.EDEMA
    res = compare(base, follow_up(base, labels, rigid(base, *MOTION)))
    f = res.followups[0]
    assert f.category.suggestion == "CR"
    assert all(g.status == "vanished" for g in f.lesions) and f.lesions
    assert f.volumes["ET"]["current_ml"] == 0


def test_three_time_points_nadir(base: TimePoint) -> None:
    sp = base.geometry.spacing
    shrunk = follow_up(base, erode_et(base.labels, 4.0, sp), None, "t1")
    regrown = follow_up(base, base.labels, rigid(base, *MOTION), "t2")
    res = compare(base, shrunk, regrown)
    f1, f2 = res.followups
    assert f1.category.suggestion == "PR"
    assert f2.spd["nadir_index"] == 1 and f2.spd["nadir_mm2"] == f1.spd["current_mm2"]
    assert f2.category.suggestion == "PD"  # back to baseline size: far above the nadir
    assert abs(f2.spd["change_vs_baseline_pct"]) < 3


def test_empty_labels_said_plainly(base: TimePoint) -> None:
    fu = follow_up(base, np.zeros_like(base.labels), None)
    with pytest.raises(CaseError, match="follow-up 1.*empty"):
        compare(base, fu)


def test_no_enhancing_tumour_at_baseline(base: TimePoint) -> None:
    labels = base.labels.copy()
    labels[labels == lab.ENHANCING] = lab.NECROTIC
    b0 = TimePoint("no-et", labels, base.geometry, base.image, base.image_name, base.brain_ml)
    res = compare(b0, follow_up(b0, labels, None))
    f = res.followups[0]
    assert f.category.suggestion == "not assessable"
    assert "no measurable disease" in f.category.reasons[0]
    assert any("no enhancing tumour at baseline" in n for n in res.notes)


def test_different_patients_warned(base: TimePoint, crops: dict[str, Path]) -> None:
    other = TimePoint.from_case(read_case(crops["Brats18_CBICA_AQN_1"]))
    res = compare(base, other)
    assert any("different patients" in w for w in res.warnings), res.warnings
    assert res.to_dict()["followups"][0]["registration"]["warnings"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "compare", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_json_and_table_on_two_real_cases(crops: dict[str, Path]) -> None:
    a, b = crops["Brats18_TCIA02_135_1"], crops["Brats18_CBICA_AQN_1"]
    r = _cli(str(a), str(b), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["baseline"] == "Brats18_TCIA02_135_1" and len(res["followups"]) == 1
    fu = res["followups"][0]
    assert fu["category"]["suggestion"] in {"CR", "PR", "SD", "PD"}
    assert set(fu["volumes"]) == {"NCR", "ED", "ET", "TC", "WT"}
    assert any("different patients" in w for w in res["warnings"])
    assert len(res["reader_to_judge"]) >= 4
    t = _cli(str(a), str(b))
    assert t.returncode == 0, t.stderr
    assert "RANO (suggestion)" in t.stdout and "WARNING" in t.stdout and "steroids" in t.stdout


def test_cli_labels_alone(crops: dict[str, Path], tmp_path: Path) -> None:
    a = crops["Brats18_TCIA02_135_1"]
    seg = a / "Brats18_TCIA02_135_1_seg.nii"
    img = nib.load(str(seg))
    data = np.asarray(img.dataobj).copy()
    data[data == 4] = 2  # the enhancing tumour gone: CR
    later = tmp_path / "later_seg.nii"
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(later))
    r = _cli(str(seg), str(later), "--json", "--scheme", "brats2021")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["followups"][0]["registration"]["method"] == "none"
    assert any("not registered" in n for n in res["notes"])
    assert res["followups"][0]["category"]["suggestion"] == "CR"
    other = crops["Brats18_CBICA_AQN_1"] / "Brats18_CBICA_AQN_1_seg.nii"
    bad = _cli(str(seg), str(other))
    assert bad.returncode == 2
    assert "labels alone on a grid other than" in bad.stderr and "Traceback" not in bad.stderr
    one = _cli(str(seg))
    assert one.returncode == 2 and "at least two time points" in one.stderr


def write_follow_up(base_dir: Path, out_root: Path, name: str, labels: np.ndarray, motion: RigidResult) -> Path:
    """A follow-up case on disk: every sequence and the (changed) labels moved by ``motion``."""
    src_name = base_dir.name
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    for m in MODS:
        img = nib.load(str(base_dir / f"{src_name}_{m}.nii"))
        if m == "seg":
            geo = read_case(base_dir).geometry
            img = nib.Nifti1Image(np.array([0, 1, 2, 4, 4], np.int16)[geo.from_internal(labels)], img.affine)
        r = resample(img, img.affine, img.shape, motion, nearest=m == "seg")
        nib.save(nib.Nifti1Image(np.asarray(r.dataobj).astype(np.int16), img.affine), str(out / f"{name}_{m}.nii"))
    return out


def test_report_with_baseline(base: TimePoint, crops: dict[str, Path], tmp_path: Path) -> None:
    from napari_brats_seg.core.measure.report import NO_COMPARISON, build_report, render_html, write_report

    fu_dir = write_follow_up(crops["Brats18_TCIA02_135_1"], tmp_path, "Brats18_TCIA02_135_2",
                             erode_et(base.labels, 4.0, base.geometry.spacing), rigid(base, *MOTION))
    rep = build_report(fu_dir, baseline=crops["Brats18_TCIA02_135_1"])
    assert rep.comparison is not None and rep.comparison.followups[0].category.suggestion == "PR"
    assert NO_COMPARISON not in rep.notes
    page = render_html(rep)
    assert "Comparison with the baseline Brats18_TCIA02_135_1" in page
    assert "RANO suggestion PR" in page and "For the reader to judge" in page and "steroids" in page
    out = write_report(rep, tmp_path / "report.pdf")
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) missing: scripts/setup.sh installs it")
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "Comparison with the baseline" in text and "PR" in text
    plain = build_report(fu_dir)
    assert plain.comparison is None and NO_COMPARISON in plain.notes
