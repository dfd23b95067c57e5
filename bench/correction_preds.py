"""Model predictions for ``bench_correction.py``, cached as ``.nii.gz`` under ``bench/out/``.

Usage (to fill the cache alone)::

    python bench/correction_preds.py ../shared/data/brats2018/Brats18_* [--model unet3d-default]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_brats_seg.core.case import Case
from napari_brats_seg.core.io import read_case, read_labels, write_labels

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench/out/correction_preds"
DEFAULT_MODEL = "unet3d-default"


def cache_path(case_id: str, model: str, out: Path = OUT) -> Path:
    """Where the prediction of ``model`` (a name or a path) on ``case_id`` is cached."""
    return out / Path(model).name.replace(".", "_") / f"{case_id}.nii.gz"


def prob_path(case_id: str, model: str, out: Path = OUT) -> Path:
    """Where the whole-tumour probability of ``model`` on ``case_id`` is cached (8-bit, ``.npz``)."""
    return cache_path(case_id, model, out).with_name(f"{case_id}_wt_probability.npz")


def _predict(case: Case, model: str, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` on ``case``, cache its labels and 8-bit WT probability, return both."""
    from napari_brats_seg.core.edit.confidence import quantise
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.models.registry import load_model

    t0 = time.perf_counter()
    seg = predict(case, load_model(model, device="cpu"), device="cpu", probabilities=True)
    path = cache_path(case.case_id, model, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_labels(seg.labels, case, path, overwrite=True)
    assert seg.probabilities is not None
    p = quantise(seg.probabilities["WT"])
    np.savez_compressed(prob_path(case.case_id, model, out), p=p)
    print(f"  predicted {case.case_id} with {model} in {time.perf_counter() - t0:.1f} s -> {path}", flush=True)
    return np.asarray(seg.labels, dtype=np.uint8), p


def prediction(case: Case, model: str = DEFAULT_MODEL, out: Path = OUT) -> np.ndarray:
    """The labels ``model`` predicts for ``case`` (read from the cache, else computed and cached)."""
    path = cache_path(case.case_id, model, out)
    if path.exists():
        labels, _, _ = read_labels(path, geometry=case.geometry)
        return np.asarray(labels, dtype=np.uint8)
    return _predict(case, model, out)[0]


def wt_probability(case: Case, model: str = DEFAULT_MODEL, out: Path = OUT) -> np.ndarray:
    """The model's whole-tumour probability on ``case``, 8-bit (0-255 for 0-1), from the run that made
    :func:`prediction`'s labels (both are computed again when this one is not cached)."""
    path = prob_path(case.case_id, model, out)
    if path.exists():
        with np.load(path) as f:
            return np.asarray(f["p"])
    return _predict(case, model, out)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", type=Path)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    for c in args.cases:
        wt_probability(read_case(c), args.model)


if __name__ == "__main__":
    main()
