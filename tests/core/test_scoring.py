"""core.scoring.score_files on small synthetic cases: what ``brats-seg score`` prints, without the CLI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.core.errors import CaseError
from napari_brats_seg.core.scoring import label_file, score_files
from napari_brats_seg.core.synth import write_cases


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_cases(root, 1, seed=5, shape=(32, 32, 32))
    return next(p for p in root.iterdir() if p.is_dir())


def test_a_case_scores_perfectly_against_itself(case_dir: Path) -> None:
    seg, layout = label_file(case_dir)
    assert seg.name.endswith("seg.nii.gz") and layout is not None
    res = score_files(seg, case_dir)
    assert {res[r]["dice"] for r in ("WT", "TC", "ET")} == {1.0}
    assert res["inputs"]["gt"]["file"] == res["inputs"]["pred"]["file"] == str(seg)
    assert res["inputs"]["shape_zyx"] == [32, 32, 32] and res["inputs"]["lesion_dilation"] == 3


def test_undecidable_schemes_get_the_callers_hint(case_dir: Path, tmp_path: Path) -> None:
    seg, _ = label_file(case_dir)
    img = nib.load(str(seg))
    ambiguous = np.zeros(img.shape, np.uint8)
    ambiguous[8:16, 8:16, 8:16] = 1
    ambiguous[16:20, 8:16, 8:16] = 2  # values {0, 1, 2}: several schemes allow them
    path = tmp_path / "guess.nii.gz"
    nib.save(nib.Nifti1Image(ambiguous, img.affine), str(path))
    with pytest.raises(CaseError, match="give scheme_gt"):
        score_files(path, path)
    with pytest.raises(CaseError, match="--scheme-gt"):
        score_files(path, path, scheme_hint="; choose it with --scheme-{}")
    res = score_files(path, path, scheme_pred="msd", scheme_gt="msd")
    assert res["inputs"]["gt"]["scheme_from"] == "given" and res["WT"]["dice"] == 1.0
    with pytest.raises(CaseError, match="no such file"):
        score_files(tmp_path / "missing.nii.gz", path)
