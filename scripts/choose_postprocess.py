#!/usr/bin/env python
"""Choose a recipe's connected-component post-processing on its cross-validation, as nnU-Net does.

For every finished fold of the recipe (``STATE/NAME-f<k>.safetensors`` and the held-out CSV that
``brats-seg evaluate --heldout --csv`` wrote beside it, ``STATE/NAME-f<k>.heldout.csv``), the fold
model segments each of its held-out cases (its provenance's ``val_cases``) once; the labels are scored
as they are and with only the largest 26-connected tumour component kept (``keep_largest``,
:mod:`napari_brats_seg.core.postprocess`). The script prints a Markdown table per case and the mean
over all held-out cases, and chooses nnU-Net's way: ``keep_largest`` when the mean Dice over WT, TC
and ET of all held-out cases is higher with it (a tie keeps every component).

With ``--into FINAL.safetensors`` the choice is recorded in that checkpoint's provenance,
``postprocess`` (``{"keep_largest": true}`` or ``false``, what ``predict`` and ``brats-seg segment``
apply unless told otherwise) and ``postprocess_cv`` (the figures it was chosen on), through
``scripts/update_provenance.py``'s checked rewrite; only when every fold is done.

    PYTHONPATH=src python scripts/choose_postprocess.py STATE [--name unet3d-v2] [--folds 4]
        [--data DIR ...] [--into FINAL.safetensors]

The held-out cases are looked for under ``--data`` (default: the folders the fold's provenance
records as its training data).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from record_cv import fold_scores

from napari_brats_seg.core.labels import REGIONS

#: The two ways scored: every component, and only the largest.
WAYS = ("all components", "largest only")
#: A held-out Dice that differs from the fold's CSV by more than this is pointed out.
CSV_TOLERANCE = 0.02

Scores = dict[str, dict[str, dict[str, float]]]  # case -> way -> region -> Dice


def finished_folds(state: Path, name: str, folds: int) -> dict[int, Path]:
    """``{fold: checkpoint}`` of the folds whose checkpoint and held-out CSV both exist."""
    out = {}
    for k in range(folds):
        ckpt = state / f"{name}-f{k}.safetensors"
        if ckpt.is_file() and (state / f"{name}-f{k}.heldout.csv").is_file():
            out[k] = ckpt
    return out


def score_fold(ckpt: Path, data: Sequence[Path] | None, device: str = "auto", runtime: str = "auto",
               say: Callable[[str], None] = print) -> Scores:
    """Segment a fold model's held-out cases once; their Dice with every component and the largest only.

    Raises
    ------
    SystemExit
        When the checkpoint lists no held-out cases, or one of them is not found under the data.
    """
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import find_cases, read_case, strip_nifti_suffix
    from napari_brats_seg.core.metrics import compute_metrics
    from napari_brats_seg.core.models.registry import load_model
    from napari_brats_seg.core.postprocess import clean_labels

    model = load_model(str(ckpt), device="cpu")
    held = list(model.spec.provenance.get("val_cases") or [])
    if not held:
        raise SystemExit(f"{ckpt}: its provenance lists no held-out (validation) cases")
    roots = [Path(d) for d in (data or model.spec.provenance.get("data") or [])]
    found = {}
    for src in find_cases([str(r) for r in roots]):
        for cid in {Path(src).name, strip_nifti_suffix(src)} & set(held):
            found[cid] = src
    missing = [c for c in held if c not in found]
    if missing:
        raise SystemExit(f"{ckpt}: held-out case(s) {', '.join(missing)} not found under "
                         f"{', '.join(map(str, roots)) or 'no data folder'} (pass --data)")
    out: Scores = {}
    for cid in held:
        case = read_case(found[cid])
        if case.ground_truth is None:
            raise SystemExit(f"{found[cid]}: no ground truth to score against")
        seg = predict(case, model, device=device, runtime=runtime, postprocess={"keep_largest": False})
        largest = clean_labels(seg.labels, {**seg.info["postprocess"]["options"], "keep_largest": True})
        out[cid] = {}
        for way, labels in zip(WAYS, (seg.labels, largest)):
            m = compute_metrics(labels, case.ground_truth, case.spacing)
            out[cid][way] = {r: float(m[r]["dice"]) for r in REGIONS}
        say(f"{ckpt.name} {cid}: " + "  ".join(f"{r} {out[cid][WAYS[0]][r]:.3f} -> {out[cid][WAYS[1]][r]:.3f}"
                                              for r in REGIONS))
    return out


def means(scores: dict[int, Scores]) -> dict[str, dict[str, float]]:
    """Way -> region -> mean Dice of all held-out cases, plus ``"mean"`` (over WT, TC and ET)."""
    out: dict[str, dict[str, float]] = {}
    cases = [c for fold in scores.values() for c in fold.values()]
    for way in WAYS:
        out[way] = {r: statistics.mean(c[way][r] for c in cases) for r in REGIONS}
        out[way]["mean"] = statistics.mean(out[way][r] for r in REGIONS)
    return out


def table(scores: dict[int, Scores]) -> str:
    """Markdown: one row per held-out case (Dice as is -> largest component only), then the means."""
    head = " | ".join(f"{r} all | {r} largest" for r in REGIONS)
    lines = [f"| fold | case | {head} |", "|---|---|" + "---:|" * (2 * len(REGIONS))]
    for k, fold in sorted(scores.items()):
        for cid, c in sorted(fold.items()):
            lines.append(f"| {k} | {cid} | " + " | ".join(f"{c[WAYS[0]][r]:.3f} | {c[WAYS[1]][r]:.3f}"
                                                     for r in REGIONS) + " |")
    m = means(scores)
    n = sum(len(f) for f in scores.values())
    lines.append(f"| **mean** | {n} held-out cases | " + " | ".join(
        f"**{m[WAYS[0]][r]:.3f}** | **{m[WAYS[1]][r]:.3f}**" for r in REGIONS) + " |")
    return "\n".join(lines)


def choose(scores: dict[int, Scores]) -> bool:
    """nnU-Net's rule: keep the largest component when it raises the mean Dice over WT, TC and ET."""
    m = means(scores)
    return m[WAYS[1]]["mean"] > m[WAYS[0]]["mean"]


def csv_mismatches(state: Path, name: str, scores: dict[int, Scores]) -> list[str]:
    """Cases whose Dice (every component) differs from the fold's held-out CSV by more than the tolerance."""
    recorded = fold_scores(state, name, max(scores) + 1)
    out = []
    for k, fold in sorted(scores.items()):
        for cid, c in sorted(fold.items()):
            old = recorded.get(k, {}).get(cid)
            if old and any(abs(old[r] - c[WAYS[0]][r]) > CSV_TOLERANCE for r in REGIONS):
                out.append(f"fold {k} {cid}: Dice " + "/".join(f"{c[WAYS[0]][r]:.3f}" for r in REGIONS)
                           + " here, " + "/".join(f"{old[r]:.3f}" for r in REGIONS) + " in its CSV")
    return out


def record(into: Path, scores: dict[int, Scores], chosen: bool) -> str:
    """Record the choice and its figures in ``into``'s provenance (the checked rewrite)."""
    from update_provenance import rewrite

    from napari_brats_seg.core.models.checkpoint import read_spec

    prov = read_spec(into).provenance
    m = means(scores)
    evidence: dict[str, Any] = {
        "chosen": chosen, "folds": sorted(scores), "cases": sum(len(f) for f in scores.values()),
        "dice_all_components": {k: round(v, 4) for k, v in m[WAYS[0]].items()},
        "dice_largest_only": {k: round(v, 4) for k, v in m[WAYS[1]].items()},
        "how": "nnU-Net's rule on the recipe's cross-validation (scripts/choose_postprocess.py): the largest "
               "26-connected tumour component is kept when it raises the mean Dice over WT, TC and ET of all "
               "held-out cases of the fold models",
    }
    post = {**(prov.get("postprocess") or {}), "keep_largest": chosen}
    return rewrite(into, {"postprocess": post, "postprocess_cv": {"keep_largest": evidence}})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state", type=Path, help="the recipe's state folder (fold checkpoints and held-out CSVs)")
    ap.add_argument("--name", default="unet3d-v2")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--data", type=Path, nargs="+", help="folders of the cases (default: each fold's own record)")
    ap.add_argument("--into", type=Path, help="checkpoint whose provenance records the choice")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runtime", default="auto", help="as brats-seg evaluate --runtime")
    args = ap.parse_args()
    folds = finished_folds(args.state, args.name, args.folds)
    if not folds:
        print(f"no finished fold (NAME-f<k>.safetensors with its .heldout.csv) of {args.name} in {args.state}",
              file=sys.stderr)
        return 1
    scores = {k: score_fold(ckpt, args.data, args.device, args.runtime,
                            say=lambda s: print(s, file=sys.stderr)) for k, ckpt in folds.items()}
    print(table(scores))
    m = means(scores)
    chosen = choose(scores)
    print(f"\nmean Dice over WT/TC/ET: {m[WAYS[0]]['mean']:.4f} with every component, "
          f"{m[WAYS[1]]['mean']:.4f} with the largest only -> keep_largest: {str(chosen).lower()}")
    for line in csv_mismatches(args.state, args.name, scores):
        print(f"note: {line} (another runtime or version?)", file=sys.stderr)
    if args.into is None:
        return 0
    if len(folds) < args.folds:
        print(f"only folds {sorted(folds)} of {args.folds} are done: nothing recorded", file=sys.stderr)
        return 1
    print(f"{args.into}: {record(args.into, scores, chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
