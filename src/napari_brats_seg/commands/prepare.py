"""``brats-seg prepare STUDY_OR_FILES -o CASE_DIR``: raw scans -> a co-registered, 1 mm, skull-stripped case."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` sub-command."""
    p = sub.add_parser("prepare", help="prepare a DICOM study or four raw NIfTI files for the models")
    p.add_argument("study", nargs="?", help="DICOM study folder (omit when --t1/--t1ce/--t2/--flair are files)")
    p.add_argument("-o", "--output", required=True, help="new case folder (BraTS 2018-2021 layout)")
    for role in ("t1", "t1ce", "t2", "flair"):
        p.add_argument(f"--{role}", metavar="SERIES_OR_FILE",
                       help=f"the {role.upper()}: a series number/UID of the study, or a NIfTI file")
    p.add_argument("--id", dest="case_id", help="case id for the file names (default: the output folder's name)")
    p.add_argument("--skull-strip", default="auto", choices=("auto", "hd-bet", "classical", "none"),
                   help="brain masking (auto: HD-BET when installed, else classical)")
    p.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size of the case, mm (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the case and print its QC summary."""
    from ..core.clinical.prepare import prepare

    roles = {r: getattr(args, r) for r in ("t1", "t1ce", "t2", "flair")}

    def progress(done: int, total: int, msg: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {msg}", file=sys.stderr, flush=True)

    rec = prepare(args.study, args.output, roles=roles, case_id=args.case_id, skull_strip=args.skull_strip,
                  spacing=args.spacing, on_progress=progress)
    g = rec["grid"]
    print(f"case {rec['case_id']} written to {args.output}: {'x'.join(map(str, g['shape']))} voxels of "
          f"{g['spacing_mm']:g} mm, LPS")
    for role, seq in rec["sequences"].items():
        src = f"series {seq['series_number']} ({seq['description']})" if "series_number" in seq else seq["file"]
        qc = rec["qc"]["registration"].get(role)
        reg = (f"registered: MI {qc['metric_before']:.3f} -> {qc['metric_after']:.3f}, {qc['rotation_deg']:.2f} deg"
               if qc else "fixed image")
        print(f"  {role:<6} {src:<40} {reg}")
    print(f"  brain mask: {rec['skull_strip']['method']}; brain volume {rec['qc']['brain_volume_ml']:.0f} mL")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in rec["timings_s"].items()))
    return 0
