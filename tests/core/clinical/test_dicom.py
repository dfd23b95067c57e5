"""DICOM studies: series discovery, exact volume geometry, sequence roles, bad input (real study)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the [clinical] extra (pydicom) is not installed")

from napari_brats_seg.core.clinical import dicom, roles, volume  # noqa: E402
from napari_brats_seg.core.errors import CaseError  # noqa: E402

SERIES = {101: "Survey__head_only", 401: "T2W_TSE_TRA", 502: "VT1W_3D_FFE_ TRA", 701: "T2W_FLAIR_TRA",
          901: "T1W_SE-TRA_FS", 1101: "sT1W_FS 3D_ISO_COR", 1201: "T1W_SE-TRA_FS", 1301: "T2W_FLAIR_TRA"}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def study(dicom_study_dir: Path) -> dicom.Study:
    return dicom.discover(dicom_study_dir)


def _copy_series(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_all_eight_series_listed_and_the_localizer_set_aside(study: dicom.Study) -> None:
    assert {s.number: s.description for s in study.series} == SERIES
    by = {s.number: s for s in study.series}
    assert by[101].flags == ["localizer"] and by[101].plane_text() == "mixed orientations"
    assert [s.number for s in study.image_series()] == [401, 502, 701, 901, 1101, 1201, 1301]
    assert by[1201].plane_text() == "axial"
    assert by[701].plane_text() == "oblique (axial, 3.5 deg)"
    assert by[1101].plane_text().startswith("oblique (coronal")
    d = by[401].describe()
    assert (d["rows"], d["columns"], d["slices"], d["files"]) == (512, 512, 26, 26)
    assert d["slice_thickness_mm"] == 5.0 and d["slice_spacing_mm"] == pytest.approx(6.0) and d["gap_mm"] == 1.0
    assert (d["tr_ms"], d["te_ms"]) == (pytest.approx(5227.456, abs=1e-3), 100.0)
    assert by[701].describe()["ti_ms"] == 2000.0
    assert "PatientName" not in json.dumps([s.describe() for s in study.series])


@pytest.mark.parametrize("number", [401, 502, 701, 1101, 1201])
def test_each_volume_has_the_geometry_of_its_dicom_tags(study: dicom.Study, number: int) -> None:
    series = study.find(number)
    img = volume.read_series(series)
    datasets = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in series.files]
    iop = np.array(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
    first, last = (np.array(ds.ImagePositionPatient, float) for ds in (datasets[0], datasets[-1]))
    n = len(datasets)
    assert img.shape == (int(datasets[0].Columns), int(datasets[0].Rows), n)
    # the first and last slices' first pixels lie where ImagePositionPatient says (RAS = LPS with x, y negated)
    assert np.allclose(nib.affines.apply_affine(img.affine, [0, 0, 0]), LPS_TO_RAS @ first, atol=1e-4)
    assert np.allclose(nib.affines.apply_affine(img.affine, [0, 0, n - 1]), LPS_TO_RAS @ last, atol=1e-4)
    # orientation cosines and pixel spacing
    dr, dc = map(float, datasets[0].PixelSpacing)
    cols = img.affine[:3, :3]
    assert np.allclose(cols[:, 0] / dc, LPS_TO_RAS @ iop[:3], atol=1e-6)
    assert np.allclose(cols[:, 1] / dr, LPS_TO_RAS @ iop[3:], atol=1e-6)
    assert np.allclose(np.linalg.norm(cols, axis=0)[:2], [dc, dr], atol=1e-6)
    # pixels: the middle slice of the volume is the middle file's pixel array, transposed to (col, row)
    mid = datasets[n // 2]
    ds = pydicom.dcmread(str(mid.filename))
    expect = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    assert np.array_equal(np.asarray(img.dataobj)[:, :, n // 2], expect.T)


def test_volumes_agree_with_simpleitk(study: dicom.Study) -> None:
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (the [clinical] extra) is not installed")
    for number in (701, 1101):
        series = study.find(number)
        ours = volume.read_series(series)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series.files[0].parent)))
        ref = reader.Execute()
        direction = np.array(ref.GetDirection()).reshape(3, 3)
        affine = np.eye(4)
        affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(ref.GetSpacing())
        affine[:3, 3] = LPS_TO_RAS @ np.array(ref.GetOrigin())
        ref_arr = sitk.GetArrayFromImage(ref).transpose(2, 1, 0)  # (slice, row, col) -> (col, row, slice)
        # SimpleITK may order the slices the other way: compare in world space through the affines
        if not np.allclose(affine, ours.affine, atol=1e-3):
            flip = np.eye(4)
            flip[2, 2], flip[2, 3] = -1, ref_arr.shape[2] - 1
            affine, ref_arr = affine @ flip, ref_arr[:, :, ::-1]
        assert np.allclose(affine, ours.affine, atol=1e-3), number
        assert np.allclose(ref_arr, np.asarray(ours.dataobj), rtol=1e-6, atol=1e-3), number  # GDCM: float64


def test_roles_follow_the_headers_and_ask_where_they_cannot_tell(study: dicom.Study) -> None:
    guess = roles.guess_roles(study)
    r = guess.roles
    assert (r["t2"].series.number, r["t2"].confidence) == (401, "high")
    assert (r["flair"].series.number, r["flair"].confidence) == (701, "high")
    assert [a.number for a in r["flair"].alternatives] == [1301]
    # no contrast-agent tag anywhere: the post-contrast T1 is a guess to confirm, with its reason
    assert r["t1ce"].series.number == 1101 and r["t1ce"].confidence == "low"
    assert "contrast" in r["t1ce"].reason and "t1ce" in guess.needs_confirmation
    assert r["t1"].series.number == 502
    chosen = roles.assign_roles(study, {"t1": "901"})
    assert chosen.roles["t1"].series.number == 901 and chosen.roles["t1"].confidence == "user"
    with pytest.raises(CaseError, match="localizer"):
        roles.assign_roles(study, {"t1ce": 101})
    with pytest.raises(CaseError, match="no series with number or UID '77'"):
        roles.assign_roles(study, {"t2": 77})
    with pytest.raises(CaseError, match="more than one role"):
        roles.assign_roles(study, {"t1": 1101, "t1ce": 1101})


def test_enhanced_multiframe_reads_like_the_single_frame_series(study: dicom.Study, tmp_path: Path) -> None:
    hd = pytest.importorskip("highdicom", reason="highdicom (the [clinical] extra) is not installed")
    series = study.find(701)
    datasets = [pydicom.dcmread(str(p)) for p in series.files]
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(
        datasets, series_instance_uid=hd.UID(), series_number=7001, sop_instance_uid=hd.UID(), instance_number=1)
    (tmp_path / "mf").mkdir()
    mf.save_as(str(tmp_path / "mf" / "enhanced.dcm"))
    found = dicom.discover(tmp_path / "mf")
    assert len(found.series) == 1 and len(found.series[0].files) == 1 and len(found.series[0].frames) == 26
    a, b = volume.read_series(found.series[0]), volume.read_series(series)
    assert np.allclose(a.affine, b.affine, atol=1e-4)
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))


def test_bad_studies_give_clear_errors(dicom_study_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match="no DICOM image series found \\(no files\\)"):
        dicom.discover(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not a scan")
    (tmp_path / "text" / "image.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(CaseError, match="2 file\\(s\\) that are not DICOM"):
        dicom.discover(tmp_path / "text")
    # a series with one file deleted: the gap is named
    flair = _copy_series(dicom_study_dir / "T2W_FLAIR_TRA - 701", tmp_path / "gap" / "flair")
    files = sorted(flair.iterdir(), key=lambda p: float(pydicom.dcmread(str(p), stop_before_pixels=True)
                                                          .ImagePositionPatient[2]))
    files[10].unlink()
    series = dicom.discover(tmp_path / "gap").series[0]
    with pytest.raises(CaseError, match="1 slice\\(s\\) missing between .* \\(25 slices found\\)"):
        volume.read_series(series)
    # two studies in one folder
    other = _copy_series(dicom_study_dir / "T1W_SE-TRA_FS - 901", tmp_path / "mixed" / "b")
    _copy_series(dicom_study_dir / "T2W_TSE_TRA - 401", tmp_path / "mixed" / "a")
    for p in other.iterdir():
        ds = pydicom.dcmread(str(p))
        ds.StudyInstanceUID = "1.2.3.4.5.6.7.8"
        ds.save_as(str(p))
    with pytest.raises(CaseError, match="the folder holds 2 studies"):
        dicom.discover(tmp_path / "mixed")
    # a compressed transfer syntax no installed decoder reads: named, not a traceback
    comp = _copy_series(dicom_study_dir / "T2W_FLAIR_TRA - 1301", tmp_path / "comp" / "s")
    for p in list(comp.iterdir())[:1]:
        ds = pydicom.dcmread(str(p))
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless: no decoder installed
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
        ds.save_as(str(p), enforce_file_format=True)
    with pytest.raises(CaseError, match="cannot decode the pixels \\(transfer syntax JPEG 2000"):
        volume.read_series(dicom.discover(tmp_path / "comp").series[0])


def test_cli_lists_the_study(dicom_study_dir: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "dicom", str(dicom_study_dir), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert [s["number"] for s in out["series"]] == sorted(SERIES)
    assert out["roles"]["t2"]["series"] == 401 and "t1ce" in out["needs_confirmation"]
    text = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "dicom", str(dicom_study_dir),
                           "--t1ce", "1101"], capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "chosen by the user" in text.stdout and "localizer" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "dicom", str(dicom_study_dir),
                          "--flair", "101"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "localizer" in bad.stderr
