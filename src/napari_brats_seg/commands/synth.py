"""``brats-seg synth OUT --cases N --seed S``: write synthetic BraTS-like cases with ground truth."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command."""
    p = sub.add_parser(
        "synth", help="write synthetic BraTS-like cases with ground truth",
        description="Write N synthetic BraTS-like cases (four sequences and a ground truth), "
                    "deterministic for a seed, in a BraTS or MSD layout.")
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--cases", "-n", type=int, default=1, help="number of cases (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    p.add_argument("--layout", choices=("brats2021", "brats2023", "msd"), default="brats2021",
                   help="file naming and label scheme (default brats2021)")
    p.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), default=(96, 96, 64),
                   help="volume size in voxels, file order (default 96 96 64)")
    p.add_argument("--orientation", choices=("LPS", "RAS", "oblique"), default="LPS",
                   help="voxel orientation of the files (default LPS, as BraTS stores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the cases and list what was written; bad arguments raise ``CaseError`` (exit 2)."""
    from ..core.errors import CaseError
    from ..core.synth import write_cases

    if args.cases < 1:
        raise CaseError(f"--cases must be at least 1 (got {args.cases})")
    start = time.perf_counter()
    paths = write_cases(args.out, args.cases, args.seed, layout=args.layout, shape=tuple(args.shape),
                        orientation=args.orientation, overwrite=args.overwrite)
    for p in paths:
        print(p)
    print(f"wrote {len(paths)} {args.layout} case(s), {'x'.join(map(str, args.shape))} voxels, "
          f"{args.orientation}, seed {args.seed}, in {time.perf_counter() - start:.1f} s")
    return 0
