"""``brats-seg segment CASE [CASE ...] -o OUT``: segment one case or a cohort.

One case and ``OUT`` ending in ``.nii``/``.nii.gz`` writes that file; otherwise ``OUT`` is a folder
that receives ``<case_id>_seg.nii.gz`` per case (plus ``<case_id>_prob_{WT,TC,ET}.nii.gz`` with
``--probabilities`` and ``<case_id>_uncertainty.nii.gz`` with ``--uncertainty``). Folders of cases
are expanded with :func:`~napari_brats_seg.core.io.find_cases`. Cases with the same id write into
sub-folders named by their relative paths (:mod:`~napari_brats_seg.core.cohort`).

A case's outputs are written as a set, all or none (:class:`~napari_brats_seg.core.outputs.OutputSet`),
each recording the case and its input files; a case is skipped as done only when its whole set is
this tool's output for it, unless ``--overwrite`` (so a re-run finishes an interrupted cohort, and
temporary files of a killed run are removed). An input file is never written over. Each case that
fails is one line naming it and the reason, and the others go on; an unexpected error is reported as
a bug (``--debug`` prints its traceback). Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank
takes every ``WORLD_SIZE``-th case starting at ``RANK``; no process group is needed.

Exit status: 0 when every case was written, skipped or left untouched, 1 when any failed, 2 for bad
input (no model, no cases, an output folder that cannot be written, ids that cannot be told apart).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

#: ``--runtime`` values (``core.runtimes``; named here so the parser imports no torch).
RUNTIME_CHOICES = ("auto", "torch", "onnxruntime", "openvino")
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
    p.add_argument("--runtime", default="auto", choices=RUNTIME_CHOICES,
                   help="what runs the network on the CPU (auto: the fastest measured to agree with torch on "
                        "this kind of CPU; onnxruntime and openvino come with napari-brats-seg[fast])")
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
    largest = p.add_mutually_exclusive_group()
    largest.add_argument("--keep-largest", dest="keep_largest", action="store_true", default=None,
                         help="keep only the largest connected tumour component (default: as the model's "
                              "checkpoint records, chosen on cross-validation; else no)")
    largest.add_argument("--no-keep-largest", dest="keep_largest", action="store_false",
                         help="keep every tumour component, whatever the model's checkpoint records")
    p.add_argument("--no-hierarchy", action="store_true",
                   help="merge region outputs by intersection instead of keeping ET in TC in WT by union")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--no-crop", dest="crop", action="store_false", default=None,
                      help="run on the whole volume instead of the brain's bounding box (slower; reproduces "
                           "pipelines that do not crop, for networks with GroupNorm/InstanceNorm; the default "
                           "for MONAI bundles)")
    crop.add_argument("--crop", dest="crop", action="store_true",
                      help="crop to the brain's bounding box even for a model that asks for the whole volume")
    p.add_argument("--native", metavar="FILE",
                   help="prepared case (brats-seg prepare) only: also write the labels on the source T1ce grid")
    p.add_argument("--dicom-seg", metavar="FILE",
                   help="prepared DICOM case only: also write a DICOM-SEG referencing the source T1ce series")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
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


def output_scheme(requested: str, case: Any) -> str:
    """The label scheme to write: the one asked for, or (``auto``) the one of the case's layout."""
    if requested != "auto":
        return requested
    from ..core.case import default_scheme

    return default_scheme(case.layout)


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


def safe_streams() -> None:
    """Never fail on printing a file name the terminal's encoding cannot show (``LC_ALL=C``)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or exotic stream: leave it
                reconfigure(errors="backslashreplace")


def _why_failed(exc: BaseException, debug: bool) -> str:
    """One line for a failed case: the project's message, or a bug report for the unexpected."""
    from ..core.errors import BratsSegError

    if isinstance(exc, BratsSegError | OSError):
        return " ".join(str(exc).split()) or exc.__class__.__name__
    if isinstance(exc, MemoryError):
        return "out of memory (the case is too large for this machine's memory)"
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    text = " ".join(str(exc).split())
    return (f"internal error {exc.__class__.__name__}{': ' + text if text else ''}; this is a bug of brats-seg, "
            "please report it" + ("" if debug else " (run again with --debug for the traceback)"))


def _segment_one(job: Any, model: Any, args: argparse.Namespace, bar: _Bar, protected: set[Path]
                 ) -> tuple[Any, Any]:
    """Read, segment and write one case's output set (all files or none); returns (case, result)."""
    import dataclasses

    from ..core.inference import predict
    from ..core.io import read_case
    from ..core.outputs import OutputSet

    post = {"et_min_voxels": args.et_min_voxels, "min_component_voxels": args.min_component_voxels,
            "keep_hierarchy": not args.no_hierarchy}
    if args.keep_largest is not None:  # else the checkpoint's recorded choice (core.postprocess.merge_options)
        post["keep_largest"] = args.keep_largest
    case = read_case(dataclasses.replace(job.files, seg=None))  # the ground truth plays no part here
    seg = predict(case, model, device=args.device, tta=args.tta or args.uncertainty,
                  probabilities=args.probabilities, postprocess=post, on_progress=bar,
                  precision=args.precision, crop=args.crop, runtime=args.runtime)
    bar.close()
    outputs = OutputSet(job.case_id, job.identity(), str(job.source), protected)
    try:
        outputs.add_segmentation(seg, case, output_scheme(args.scheme, case), job.out, job.extras)
        if args.native or args.dicom_seg:  # before the set's commit: a failure here leaves the case to do
            _export_to_source(job, case, seg, model, args)
        outputs.commit()
    finally:
        outputs.discard()
    return case, seg


def _export_to_source(job: Any, case: Any, seg: Any, model: Any, args: argparse.Namespace) -> None:
    """--native / --dicom-seg: the labels back onto the source series of a prepared case."""
    import nibabel as nib

    from ..core.clinical.export import export_prepared
    from ..core.models.registry import weights_id

    internal = nib.Nifti1Image(case.geometry.from_internal(seg.labels), case.geometry.affine)
    scheme = output_scheme(args.scheme, case)
    export_prepared(job.source if Path(job.source).is_dir() else Path(job.source).parent, internal,
                    native=args.native, dicom_seg=args.dicom_seg, model_name=model.spec.name,
                    model_hash=weights_id(model), native_scheme=scheme)


def runtime_problem(runtime: str) -> str | None:
    """Why ``--runtime`` cannot be used (not installed), or None; checked before any case is read."""
    from ..core.errors import InferenceError
    from ..core.runtimes import require

    try:
        require(runtime)
    except InferenceError as exc:
        return str(exc)
    return None


def _largest_note(info: dict[str, Any]) -> list[str]:
    """``["largest tumour component kept (...)"]`` when ``keep_largest`` was applied, else ``[]``."""
    post = info.get("postprocess") or {}
    if not (post.get("options") or {}).get("keep_largest"):
        return []
    why = "the model's choice" if "keep_largest" in post.get("from_model", []) else "asked for"
    removed = post.get("removed_voxels", 0)
    return [f"largest tumour component kept ({why}); the clean-ups removed {removed} tumour voxels"]


def _report_ok(tag: str, job: Any, case: Any, seg: Any, seconds: float, tta: bool) -> str:
    vol = case.voxel_volume_ml
    counts = {c: int((seg.labels == c).sum()) for c in (1, 2, 3)}
    wt = sum(counts.values()) * vol
    info = seg.info
    notes = "; ".join(info.get("fallbacks", []) + info.get("warnings", []) + _largest_note(info))
    return (f"{tag}ok    {job.label} -> {job.out}  WT {wt:.1f} mL, TC {(counts[1] + counts[3]) * vol:.1f} mL, "
            f"ET {counts[3] * vol:.1f} mL  [{seconds:.1f} s, {info['device']}, "
            f"{info.get('runtime', 'torch').split()[0]} {info['dtype']}, {info['mode']}"
            f"{', TTA x' + str(info['tta']) if tta else ''}]"
            + (f"  ({notes})" if notes else ""))


def run(args: argparse.Namespace) -> int:
    from ..core.cohort import decide, plan_cohort
    from ..core.io import find_cases, is_nifti_name
    from ..core.outputs import check_writable, clean_stale_parts

    safe_streams()
    err = sys.stderr
    model_name, why = _resolve_model(args.model)
    if model_name is None:
        print(f"brats-seg segment: error: {why}", file=err)
        return 2
    why = runtime_problem(args.runtime)
    if why:
        print(f"brats-seg segment: error: {why}", file=err)
        return 2
    cases = find_cases(args.cases)
    if not cases:
        print("brats-seg segment: error: no cases found in " + ", ".join(args.cases), file=err)
        return 2
    roles = ([f"prob_{r}" for r in ("WT", "TC", "ET")] if args.probabilities else []) + \
            (["uncertainty"] if args.uncertainty else [])
    if (args.native or args.dicom_seg) and len(cases) != 1:
        print("brats-seg segment: error: --native and --dicom-seg take one prepared case", file=err)
        return 2
    for extra in (args.native, args.dicom_seg):
        if extra and Path(extra).exists() and not args.overwrite:
            print(f"brats-seg segment: error: {extra} exists (use --overwrite to replace it)", file=err)
            return 2
    jobs, notes = plan_cohort(cases, Path(args.output), roles)  # colliding ids: before any work
    folder = None if is_nifti_name(args.output) else Path(args.output)
    protected = set().union(*(j.inputs for j in jobs))
    mine, rank, world = rank_share(jobs)
    tag = f"[rank {rank}/{world}] " if world > 1 else ""
    for line in notes:
        print(tag + line)
    stale = clean_stale_parts(p for j in mine for p in j.paths)
    if stale:
        print(f"{tag}note  removed {len(stale)} temporary file(s) left by an interrupted run")
    todo, skipped, kept, failed, written = [], [], [], [], []
    for job in mine:
        try:
            status, why = decide(job, protected, args.overwrite)
        except Exception as exc:  # noqa: BLE001 - one case's trouble never stops the cohort
            status, why = "fail", _why_failed(exc, args.debug)
        if status == "todo":
            todo.append(job)
            continue
        {"skip": skipped, "keep": kept, "fail": failed}[status].append(job)
        print(f"{tag}{ {'skip': 'skip', 'keep': 'keep', 'fail': 'FAIL'}[status]}  {job.label}: {why}")
    if todo:
        for d in sorted({j.out.parent for j in todo}):
            check_writable(d)  # an unwritable folder is found before any compute (exit 2)
        from ..core.models.registry import load_model

        model = load_model(model_name, device="cpu")
        print(f"{tag}model {model.spec.name} ({model.spec.family}) from {model.source}; "
              f"{len(todo)} case(s) to segment, {len(skipped)} already done")
        for i, job in enumerate(todo, 1):
            bar = _Bar(err, f"{tag}{i}/{len(todo)} {job.label}", not args.quiet)
            t0 = time.perf_counter()
            try:
                case, seg = _segment_one(job, model, args, bar, protected)
                written.append(job)
                print(_report_ok(tag, job, case, seg, time.perf_counter() - t0, args.tta or args.uncertainty))
            except Exception as exc:  # noqa: BLE001 - one case's trouble never stops the cohort
                bar.close()
                failed.append(job)
                print(f"{tag}FAIL  {job.label}: {_why_failed(exc, args.debug)}")
    print(f"{tag}done: {len(written)} written, {len(skipped)} skipped (already done), {len(failed)} failed"
          + (f", {len(kept)} left untouched (not written by brats-seg for this case)" if kept else "")
          + (f" -> {folder}" if folder is not None else ""))
    return 1 if failed else 0
