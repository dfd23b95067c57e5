"""``brats-seg score`` on real files: the CaPTk reference prediction, perturbed ground truths written in
several schemes and orientations, and the errors for bad input."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.cli import main
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.io import read_labels, write_labels
from napari_brats_seg.core.metrics import HD95_MAX_MM, METRIC_KEYS, compute_metrics

CASE = "Brats18_2013_11_1"


def _score(capsys, *args) -> tuple[int, str, str]:
    rc = main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def gt_file(brats2018_dir):
    return brats2018_dir / CASE / f"{CASE}_seg.nii.gz"


@pytest.fixture(scope="module")
def gt(gt_file):
    arr, scheme, geo = read_labels(gt_file)
    return arr, geo


def test_captk_reference_prediction_matches_its_readme(capsys, deepmedic_dir, real_case_dir):
    pred = deepmedic_dir / "reference_predictions" / f"{CASE}_deepmedic.nii.gz"
    rc, out, _ = _score(capsys, pred, real_case_dir, "--json")
    assert rc == 0
    res = json.loads(out)
    assert {"WT", "TC", "ET", "lesionwise"} <= set(res)
    for region, dice in (("WT", 0.934), ("TC", 0.836), ("ET", 0.384)):
        assert set(res[region]) == set(METRIC_KEYS)
        assert res[region]["dice"] == pytest.approx(dice, abs=1e-3)
        assert 0 <= res["lesionwise"][region]["dice"] <= 1
    assert res["inputs"]["gt"]["scheme"] == res["inputs"]["pred"]["scheme"] == "brats2021"
    # The prediction has stray enhancing components: lesion-wise ET is below the plain ET Dice.
    assert res["lesionwise"]["ET"]["n_fp"] >= 1
    assert res["lesionwise"]["ET"]["dice"] < res["ET"]["dice"]


def test_shifted_ground_truth_table_json_and_csv(capsys, tmp_path, gt, gt_file):
    arr, geo = gt
    shifted = np.roll(arr, (1, 3, -2), axis=(0, 1, 2))
    pred = write_labels(shifted, geo, tmp_path / "pred.nii.gz", scheme="brats2021")
    expected = compute_metrics(shifted, arr, geo.spacing)

    rc, out, _ = _score(capsys, pred, gt_file, "--json")
    assert rc == 0
    res = json.loads(out)
    for region in lab.REGIONS:
        for key in METRIC_KEYS:
            assert res[region][key] == pytest.approx(expected[region][key]), (region, key)
    assert 0.5 < res["WT"]["dice"] < 1.0

    out_csv = tmp_path / "scores.csv"
    rc, out, _ = _score(capsys, pred, gt_file, "--csv", out_csv)
    assert rc == 0
    assert "WT (whole tumour)" in out and "lesion-wise" in out
    assert f"{expected['WT']['dice']:.3f}" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["name"] for r in rows] == ["WT", "TC", "ET", "NCR", "ED", "ET"]
    assert float(rows[0]["dice"]) == pytest.approx(expected["WT"]["dice"])


def test_schemes_given_detected_or_assumed(capsys, tmp_path, gt, gt_file):
    arr, geo = gt
    eroded = arr.copy()
    eroded[:, :, ::7] = 0  # a perturbation that keeps every class
    msd = write_labels(eroded, geo, tmp_path / "pred_msd.nii.gz", scheme="msd")
    # {0,1,2,3} fits brats2023 and msd, and not the GT's brats2021: the user must choose.
    rc, _, err = _score(capsys, msd, gt_file)
    assert rc == 2 and "--scheme-pred" in err and err.count("\n") == 1
    rc, out, _ = _score(capsys, msd, gt_file, "--scheme-pred", "msd", "--json")
    assert rc == 0
    res = json.loads(out)
    assert res["inputs"]["pred"] == {"file": str(msd), "scheme": "msd", "scheme_from": "given"}
    expected = compute_metrics(eroded, arr, geo.spacing)
    assert res["TC"]["dice"] == pytest.approx(expected["TC"]["dice"])

    # Values {0, 1, 2} (no enhancing tumour) fit three schemes: the GT's brats2021 is assumed.
    no_et = np.where(arr == lab.ENHANCING, lab.NECROTIC, arr).astype(np.uint8)
    p = write_labels(no_et, geo, tmp_path / "pred_noet.nii.gz", scheme="brats2021")
    rc, out, _ = _score(capsys, p, gt_file, "--json")
    res = json.loads(out)
    assert rc == 0 and res["inputs"]["pred"]["scheme_from"] == "assumed from the other map"
    assert res["ET"]["dice"] == 0.0 and res["ET"]["hd95"] == HD95_MAX_MM
    assert res["TC"]["dice"] == 1.0


def test_reoriented_file_on_the_same_grid_scores_perfect(capsys, tmp_path, gt_file):
    img = nib.load(str(gt_file))
    ras = nib.as_closest_canonical(img)
    assert nib.aff2axcodes(ras.affine) != nib.aff2axcodes(img.affine)
    path = tmp_path / "gt_ras.nii.gz"
    nib.save(ras, str(path))
    rc, out, _ = _score(capsys, path, gt_file, "--json")
    res = json.loads(out)
    assert rc == 0
    assert all(res[r]["dice"] == 1.0 and res[r]["hd95"] == 0.0 for r in lab.REGIONS)


def test_different_grids_are_refused(capsys, tmp_path, gt_file):
    img = nib.load(str(gt_file))
    data = np.asarray(img.dataobj)
    cropped = tmp_path / "cropped.nii.gz"
    nib.save(nib.Nifti1Image(data[:200], img.affine, img.header), str(cropped))
    rc, _, err = _score(capsys, cropped, gt_file)
    assert rc == 2 and "different grid" in err and "shape" in err
    moved = tmp_path / "moved.nii.gz"
    aff = img.affine.copy()
    aff[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(data, aff, img.header), str(moved))
    rc, _, err = _score(capsys, moved, gt_file)
    assert rc == 2 and "affines differ by up to 5 mm" in err


def test_case_folder_without_ground_truth(capsys, gt_file, brats2023_case_dir):
    rc, _, err = _score(capsys, gt_file, brats2023_case_dir)
    assert rc == 2 and "no ground-truth file" in err
    rc, _, err = _score(capsys, gt_file, brats2023_case_dir.parent / "nope")
    assert rc == 2 and "no such file" in err
