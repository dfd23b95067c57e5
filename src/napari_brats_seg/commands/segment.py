"""``brats-seg segment CASE [CASE ...] -o OUT``: segment one case or a cohort.

One case and ``OUT`` ending in ``.nii``/``.nii.gz`` writes that file; otherwise ``OUT`` is a folder
that receives ``<case_id>_seg.nii.gz`` per case (plus ``<case_id>_prob_{WT,TC,ET}.nii.gz`` with
``--probabilities`` and ``<case_id>_uncertainty.nii.gz`` with ``--uncertainty``). Folders of cases
are expanded with :func:`~napari_brats_seg.core.io.find_cases`. A case whose output exists is
skipped unless ``--overwrite`` (so a re-run finishes an interrupted cohort); a case that fails is
reported and the others go on. Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank takes
every ``WORLD_SIZE``-th case starting at ``RANK``; no process group is needed.

Exit status: 0 when every case was written or skipped, 1 when any failed, 2 for bad input (no
model, no cases).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

#: What ``--model`` defaults to: the best installed model (``registry.default_model``).
DEFAULT_MODEL = "the best installed model (brats-seg models shows it)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment cases with a model and write label maps",
                       description="Segment one or more cases (or folders of cases) and write label maps "
                                   "in each case's own geometry.")
    p.add_argument("cases", nargs="+", metavar="CASE", help="case folder, MSD 4D file, or folder of cases")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output .nii.gz (one case) or folder (<case_id>_seg.nii.gz per case)")
    p.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                   help=f"shipped model name, checkpoint file, CaPTk DeepMedic folder or MONAI bundle folder "
                        f"(default: {DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="where to run (auto: CUDA, then MPS, then CPU)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 + channels-last on CPUs with native bf16 for validated 3D families")
    p.add_argument("--tta", action="store_true", help="average over flips (8 passes in 3D)")
    p.add_argument("--scheme", default="auto", choices=("auto", "brats2021", "brats2023", "msd"),
                   help="label values of the written files (brats2021: 1/2/4, brats2023: 1/2/3, msd: "
                        "1 edema/2 NCR/3 ET); auto: the convention of the case's own naming "
                        "(BraTS 2023+ names -> brats2023, MSD -> msd, else brats2021)")
    p.add_argument("--probabilities", action="store_true", help="also write WT/TC/ET probability maps")
    p.add_argument("--uncertainty", action="store_true", help="also write the TTA disagreement map (implies --tta)")
    p.add_argument("--et-min-voxels", type=int, default=0, metavar="N",
                   help="relabel enhancing tumour as necrotic when the case has fewer than N ET voxels")
    p.add_argument("--min-component-voxels", type=int, default=0, metavar="N",
                   help="remove tumour components smaller than N voxels")
    p.add_argument("--no-hierarchy", action="store_true",
                   help="merge region outputs by intersection instead of keeping ET in TC in WT by union")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--no-crop", dest="crop", action="store_false", default=None,
                      help="run on the whole volume instead of the brain's bounding box (slower; reproduces "
                           "pipelines that do not crop, for networks with GroupNorm/InstanceNorm; the default "
                           "for MONAI bundles)")
    crop.add_argument("--crop", dest="crop", action="store_true",
                      help="crop to the brain's bounding box even for a model that asks for the whole volume")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def rank_share(items: Sequence[Any], env: Any = None) -> tuple[list[Any], int, int]:
    """The items of this rank under ``torchrun``: ``items[RANK::WORLD_SIZE]``, with rank and world size."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        world, rank = 1, 0
    if world < 1 or not 0 <= rank < world:
        world, rank = 1, 0
    return list(items)[rank::world], rank, world


def _resolve_model(name: str | None) -> tuple[str | None, str | None]:
    """(model to load, None) or (None, why there is none); no name or ``default``: the best installed."""
    if name and name != "default":
        return name, None
    from ..core.models.registry import default_model

    best = default_model()
    if best is not None:
        return best, None
    return None, ("no model is shipped or installed in this installation; pass --model NAME, a checkpoint, a "
                  "DeepMedic folder or a MONAI bundle folder, or install one (brats-seg models get NAME)")


def _outputs(cases: list[Path], out: Path) -> tuple[list[Path], Path | None]:
    """Output path per case, and the folder (None when one case goes to one file)."""
    from ..core.io import is_nifti_name

    if is_nifti_name(out):
        if len(cases) != 1:
            from ..core.errors import CaseError

            raise CaseError(f"{len(cases)} cases need a folder for -o, not a file", out)
        return [out], None
    return [out / f"{_case_id(c)}_seg.nii.gz" for c in cases], out


def _case_id(path: Path) -> str:
    from ..core.io import find_case_files

    try:
        return find_case_files(path).case_id
    except Exception:  # noqa: BLE001 - an unreadable case fails later with its own message
        from ..core.io import strip_nifti_suffix

        return strip_nifti_suffix(path)


def _sidecar(seg_path: Path, suffix: str) -> Path:
    from ..core.io import strip_nifti_suffix

    stem = strip_nifti_suffix(seg_path)
    stem = stem[: -len("_seg")] if stem.endswith("_seg") else stem
    return seg_path.with_name(f"{stem}_{suffix}.nii.gz")


def output_scheme(requested: str, case: Any) -> str:
    """The label scheme to write: the one asked for, or (``auto``) the one of the case's layout."""
    if requested != "auto":
        return requested
    return case.layout if case.layout in ("brats2023", "msd") else "brats2021"


def write_map(data: Any, case: Any, path: Path, overwrite: bool) -> Path:
    """Write a float32 internal ``(z, y, x)`` map in the case's source geometry, atomically."""
    import nibabel as nib
    import numpy as np

    from ..core.io import save_image

    geo = case.geometry
    hdr = geo.header.copy()
    hdr.set_data_dtype(np.float32)
    img = nib.Nifti1Image(geo.from_internal(np.asarray(data, np.float32)), geo.affine, header=hdr)
    img.header.set_slope_inter(1.0, 0.0)
    return save_image(img, path, overwrite=overwrite, protected=case.input_paths)


class _Bar:
    """A plain-text progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO, prefix: str, enabled: bool) -> None:
        self.stream, self.prefix, self.enabled = stream, prefix, enabled
        self.tty = stream.isatty()
        self.last = -1

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if not self.enabled or total <= 0:
            return
        pct = int(100 * done / total)
        if not self.tty and pct // 25 == self.last // 25 and done != total:
            return
        self.last = pct
        fill = int(20 * done / total)
        line = f"{self.prefix} [{'#' * fill}{'.' * (20 - fill)}] {done}/{total}"
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last >= 0:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    from ..core.errors import BratsSegError
    from ..core.io import find_cases, read_case, write_labels

    err = sys.stderr
    model_name, why = _resolve_model(args.model)
    if model_name is None:
        print(f"brats-seg segment: error: {why}", file=err)
        return 2
    cases = find_cases(args.cases)
    if not cases:
        print("brats-seg segment: error: no cases found in " + ", ".join(args.cases), file=err)
        return 2
    outputs, folder = _outputs(cases, Path(args.output))
    pairs, rank, world = rank_share(list(zip(cases, outputs)))
    tag = f"[rank {rank}/{world}] " if world > 1 else ""
    tta = args.tta or args.uncertainty
    todo, skipped = [], []
    for case_path, out in pairs:
        extra = ([_sidecar(out, f"prob_{r}") for r in ("WT", "TC", "ET")] if args.probabilities else []) + \
                ([_sidecar(out, "uncertainty")] if args.uncertainty else [])
        if not args.overwrite and out.exists() and all(p.exists() for p in extra):
            skipped.append(out)
            print(f"{tag}skip  {case_path.name}: {out} exists (use --overwrite to replace)")
        else:
            todo.append((case_path, out, extra))
    written, failed = [], []
    if todo:
        from ..core.inference import predict
        from ..core.models.registry import load_model

        model = load_model(model_name, device="cpu")
        print(f"{tag}model {model.spec.name} ({model.spec.family}) from {model.source}; "
              f"{len(todo)} case(s) to segment, {len(skipped)} already done")
        post = {"et_min_voxels": args.et_min_voxels, "min_component_voxels": args.min_component_voxels,
                "keep_hierarchy": not args.no_hierarchy}
        for i, (case_path, out, _extra) in enumerate(todo, 1):
            bar = _Bar(err, f"{tag}{i}/{len(todo)} {case_path.name}", not args.quiet)
            t0 = time.perf_counter()
            try:
                case = read_case(case_path)
                seg = predict(case, model, device=args.device, tta=tta, probabilities=args.probabilities,
                              postprocess=post, on_progress=bar, precision=args.precision,
                              crop=args.crop)
                bar.close()
                write_labels(seg.labels, case, out, scheme=output_scheme(args.scheme, case),
                             overwrite=args.overwrite)
                if args.probabilities and seg.probabilities:
                    for r, p in seg.probabilities.items():
                        write_map(p, case, _sidecar(out, f"prob_{r}"), args.overwrite)
                if args.uncertainty and seg.uncertainty is not None:
                    write_map(seg.uncertainty, case, _sidecar(out, "uncertainty"), args.overwrite)
            except (BratsSegError, OSError, KeyError) as exc:
                bar.close()
                failed.append(case_path)
                print(f"{tag}FAIL  {case_path.name}: {exc}")
                continue
            written.append(out)
            vol = case.voxel_volume_ml
            counts = {c: int((seg.labels == c).sum()) for c in (1, 2, 3)}
            wt = sum(counts.values()) * vol
            info = seg.info
            notes = "; ".join(info.get("fallbacks", []) + info.get("warnings", []))
            print(f"{tag}ok    {case_path.name} -> {out}  WT {wt:.1f} mL, TC {(counts[1] + counts[3]) * vol:.1f} mL, "
                  f"ET {counts[3] * vol:.1f} mL  [{time.perf_counter() - t0:.1f} s, {info['device']}, "
                  f"{info['dtype']}, {info['mode']}{', TTA x' + str(info['tta']) if tta else ''}]"
                  + (f"  ({notes})" if notes else ""))
    print(f"{tag}done: {len(written)} written, {len(skipped)} skipped (already done), {len(failed)} failed"
          + (f" -> {folder}" if folder is not None else ""))
    return 1 if failed else 0
