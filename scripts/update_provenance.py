#!/usr/bin/env python
"""Record the shipped checkpoints' Dice figures and licence in their provenance (idempotent).

Rewrites ``src/napari_brats_seg/weights/<name>.safetensors`` through the project's checkpoint API
(``load_checkpoint`` + ``save_checkpoint``): the spec's ``provenance`` gets ``dice`` (the record that
``brats-seg models`` shows and the default choice ranks by, see ``registry.best_model``) and
``licence``; every other field and every tensor stay as they are (checked after writing). A file
whose provenance already holds these values (and that records its weights hash) is not rewritten, so
running it again changes nothing.

    PYTHONPATH=src python scripts/update_provenance.py [--check]

The figures are the README's ("Shipped default models", "Cross-validation"); the held-out ones are
those measured on real cases never given to the project (issue #14).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "napari_brats_seg" / "weights"

LICENCE = ("napari-brats-seg (BSD-3-Clause); trained on BraTS 2018 training cases, whose data terms ask for "
           "research use and citing Menze et al. IEEE TMI 2015 and Bakas et al. Sci Data 2017")

CV_HOW = ("4-fold cross-validation of the same recipe (scripts/cross_validate.sh): each of the 12 cases held out "
          "once, last-epoch fold models, brats-seg evaluate --heldout; the shipped checkpoint is fold 0's model")
FOLD0 = "the 3 fold-0 validation cases (Brats18_TCIA02_135_1, Brats18_CBICA_AME_1, Brats18_2013_11_1)"

DICE = {
    "unet3d-default": {
        "cross_validated": {"WT": 0.769, "TC": 0.633, "ET": 0.512, "folds": 4, "cases": 12,
                            "evaluated_on": "12 shared BraTS 2018 cases", "how": CV_HOW},
        "held_out": {"WT": 0.658, "TC": 0.543, "ET": 0.521,
                     "evaluated_on": "real BraTS cases never given to the project (issue #14)"},
        "validation": {"WT": 0.705, "TC": 0.599, "ET": 0.520, "evaluated_on": FOLD0,
                       "how": "brats-seg evaluate --heldout; the checkpoint is the epoch that scored best on "
                              "these same cases, so optimistic"},
    },
    "cascade-default": {
        "cross_validated": {"WT": 0.538, "TC": 0.447, "ET": 0.417, "folds": 4, "cases": 12,
                            "evaluated_on": "12 shared BraTS 2018 cases", "how": CV_HOW},
        "validation": {"WT": 0.374, "TC": 0.267, "ET": 0.412, "evaluated_on": FOLD0,
                       "how": "brats-seg evaluate --heldout (last epoch)"},
    },
}


def _tensors(path: Path) -> dict[str, bytes]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}  # noqa: SIM118


def update(path: Path, dice: dict, check_only: bool) -> str:
    """Rewrite one checkpoint's provenance with ``dice`` and the licence; returns what was done."""
    return rewrite(path, {"dice": dice, "licence": LICENCE}, check_only)


def rewrite(path: Path, changes: dict, check_only: bool = False) -> str:
    """Set the provenance keys ``changes`` of one checkpoint, checked; returns what was done.

    Every other field and every tensor stay as they are (checked after writing); a file that holds
    these values already (and records its weights hash) is not rewritten.
    """
    from safetensors import safe_open

    from napari_brats_seg.core.models.checkpoint import HASH_KEY, load_checkpoint, read_spec, save_checkpoint

    spec = read_spec(path)
    prov = dict(spec.provenance)
    wanted = {**prov, **changes}
    with safe_open(str(path), framework="pt") as fh:
        hashed = HASH_KEY in (fh.metadata() or {})
    if prov == wanted and hashed:  # a file saved before the weights hash existed is rewritten once
        return "up to date"
    if check_only:
        return "needs updating"
    before = _tensors(path)
    loaded = load_checkpoint(path)
    save_checkpoint(path, loaded.network, replace(loaded.spec, provenance=wanted))
    path.chmod(0o644)  # save_checkpoint writes through a private temporary file
    if _tensors(path) != before:
        raise SystemExit(f"{path}: the tensors changed on rewriting; restore it from git")
    if read_spec(path).provenance != wanted:
        raise SystemExit(f"{path}: the provenance did not round-trip")
    return "updated"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if any file needs updating")
    args = parser.parse_args()
    stale = False
    for name, dice in DICE.items():
        path = WEIGHTS / f"{name}.safetensors"
        if not path.is_file():
            print(f"{name}: not shipped ({path} missing), skipped")
            continue
        what = update(path, dice, args.check)
        stale |= what == "needs updating"
        print(f"{name}: {what}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
