"""``brats-seg info`` and ``brats-seg synth``: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.cli import main
from napari_brats_seg.core import io


def _json(capsys: pytest.CaptureFixture) -> dict:
    return json.loads(capsys.readouterr().out)


def test_info_json_on_a_real_case(real_case_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(real_case_dir), "--json"]) == 0
    out = _json(capsys)
    assert out["case_id"] == real_case_dir.name and out["layout"] == "brats2021"
    assert set(out["images"]) == {"t1", "t1ce", "t2", "flair"}
    assert out["images"]["t1ce"].endswith("_t1ce.nii.gz") and out["seg"].endswith("_seg.nii.gz")
    g = out["geometry"]
    assert g["shape"] == [240, 240, 155] and g["spacing_mm"] == [1.0, 1.0, 1.0]
    assert g["orientation"] == "LPS" and g["oblique"] is False
    assert out["internal_shape_zyx"] == [155, 240, 240]
    gt = out["ground_truth"]
    assert gt["scheme"] == "brats2021"
    # region volumes from the file itself, 1 mm^3 voxels: WT = any label, TC = 1 or 4, ET = 4
    seg = np.asarray(nib.load(out["seg"]).dataobj)
    assert gt["volumes_ml"]["WT"] == pytest.approx(np.count_nonzero(seg) / 1000, abs=1e-3)
    assert gt["volumes_ml"]["TC"] == pytest.approx(np.isin(seg, (1, 4)).sum() / 1000, abs=1e-3)
    assert gt["volumes_ml"]["ET"] == pytest.approx((seg == 4).sum() / 1000, abs=1e-3)
    assert gt["class_volumes_ml"]["edema"] == pytest.approx((seg == 2).sum() / 1000, abs=1e-3)


def test_info_text_on_the_real_brats2023_case(brats2023_case_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(brats2023_case_dir)]) == 0
    text = capsys.readouterr().out
    assert "BraTS-GLI-00001-000  (layout brats2023)" in text
    assert "-t2f.nii.gz" in text and "orientation LPS" in text and "(240, 240, 155)" in text
    assert "labels" not in text  # no ground truth


def test_synth_then_info(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "synth"
    rc = main(["synth", str(out), "--cases", "2", "--seed", "4", "--layout", "msd", "--shape", "40", "36", "32",
               "--orientation", "oblique"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    images = sorted((out / "imagesTr").iterdir())
    assert lines[:2] == [str(p) for p in images] and len(images) == 2
    assert "wrote 2 msd case(s), 40x36x32 voxels, oblique, seed 4" in lines[2]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [p.name for p in images]
    assert main(["info", str(images[0]), "--json"]) == 0
    info = _json(capsys)
    assert info["layout"] == "msd" and info["geometry"]["oblique"] is True
    assert info["geometry"]["shape"] == [40, 36, 32] and info["ground_truth"]["scheme"] == "msd"
    assert info["ground_truth"]["volumes_ml"]["ET"] > 0
    # defaults: one brats2021 case of 96x96x64 in LPS
    assert main(["synth", str(tmp_path / "default")]) == 0
    case = io.read_case(tmp_path / "default" / "Synth0_000")
    assert case.geometry.shape == (96, 96, 64) and case.geometry.axcodes == ("L", "P", "S")


def _one_line_error(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    return err


def test_bad_input_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture, make_case) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 2
    _one_line_error(capsys, "brats-seg info: error:", "missing", "no such file or folder")
    folder = make_case()
    (folder / "Tiny_1_t2.nii.gz").write_bytes(b"garbage")
    assert main(["info", str(folder)]) == 2
    _one_line_error(capsys, "Tiny_1_t2.nii.gz", "not a NIfTI file")
    assert main(["synth", str(tmp_path / "s"), "--cases", "0"]) == 2
    _one_line_error(capsys, "--cases must be at least 1")
    assert main(["synth", str(tmp_path / "s"), "--shape", "8", "32", "32"]) == 2
    _one_line_error(capsys, "three sizes >= 16")
    assert not (tmp_path / "s").exists()
    assert main(["synth", str(tmp_path / "t"), "--shape", "32", "32", "24"]) == 0
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "t"), "--shape", "32", "32", "24"]) == 2
    _one_line_error(capsys, "file exists")
    assert main(["synth", str(tmp_path / "t"), "--shape", "32", "32", "24", "--overwrite"]) == 0
    with pytest.raises(SystemExit) as exc:  # argparse refuses an unknown layout
        main(["synth", str(tmp_path / "u"), "--layout", "nnunet"])
    assert exc.value.code == 2


def test_info_ambiguous_scheme_then_chosen(make_case, capsys: pytest.CaptureFixture) -> None:
    folder = make_case(seg_values=(0, 1, 2, 3))  # brats2021 names but values 0-3
    assert main(["info", str(folder)]) == 2
    _one_line_error(capsys, "Tiny_1_seg.nii.gz", "ambiguous", "choose the scheme")
    assert main(["info", str(folder), "--scheme", "msd", "--json"]) == 0
    gt = _json(capsys)["ground_truth"]
    assert gt["scheme"] == "msd" and "given" in gt["scheme_note"]


def test_installed_script(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("brats-seg"))  # this interpreter's own script, never PATH's
    run = subprocess.run([exe, "synth", str(tmp_path), "--cases", "1", "--seed", "9", "--layout", "brats2023",
                          "--shape", "32", "32", "24"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    case_dir = tmp_path / "BraTS-SYN-00009-000"
    assert (case_dir / "BraTS-SYN-00009-000-t2f.nii.gz").is_file()
    run = subprocess.run([exe, "info", str(case_dir), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ground_truth"]["scheme"] == "brats2023"
    run = subprocess.run([exe, "info", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().count("\n") == 0 and "no such file or folder" in run.stderr
