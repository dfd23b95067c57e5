"""``brats-seg report CASE [--labels L] [--baseline CASE2] -o report.pdf|report.html``: a report to file."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="write a PDF or HTML report: RANO slice with calipers, three planes, tables",
                       description="Measure a case's labels (RANO, RANO-LGG style, volumes) and write a report: "
                                   "case id and dates, model if given, the RANO slice with its calipers, axial/"
                                   "coronal/sagittal planes through the tumour with a legend (radiological "
                                   "orientation), the measurement and volume tables. PDF or self-contained HTML, "
                                   "by the output's suffix.")
    p.add_argument("case", help="case folder, MSD 4D file, or one BraTS-named file of the case")
    p.add_argument("--labels", help="label map to report (default: the case's own seg file)")
    p.add_argument("--scheme", choices=("brats2021", "brats2023", "msd"),
                   help="label scheme of the labels (detected from values and naming if not given)")
    p.add_argument("--baseline", help="an earlier case of the patient: the report adds the comparison against it "
                                      "(registration, SPD and volume change, RANO category suggested)")
    p.add_argument("--baseline-labels", help="the baseline's label map (default: its own seg file)")
    p.add_argument("--model", help="the model that made the labels (a name, checkpoint or folder: the report names it "
                                   "with the hash of its weights; any other text is written as given)")
    p.add_argument("--corrected", choices=("yes", "no"), help="whether the labels were corrected by hand")
    p.add_argument("-o", "--output", required=True, help="report.pdf or report.html")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build and write the report; bad input raises a ``BratsSegError`` (exit 2)."""
    from ..core.measure.report import build_report, write_report

    corrected = None if args.corrected is None else args.corrected == "yes"
    model = args.model
    if model:
        import contextlib

        from ..core.errors import ModelError
        from ..core.models.registry import model_identity

        with contextlib.suppress(ModelError):  # free text (e.g. a model run elsewhere): written as given
            model = model_identity(model)
    rep = build_report(args.case, labels=args.labels, scheme=args.scheme, model=model, corrected=corrected,
                       baseline=args.baseline, baseline_labels=args.baseline_labels)
    out = write_report(rep, args.output, overwrite=args.overwrite)
    print(f"wrote {out} ({rep.case_id}: {rep.measurement.et.status})")
    if rep.comparison is not None:
        for f in rep.comparison.followups:
            print(f"compared with {rep.comparison.points[0].name}: RANO suggestion {f.category.suggestion}")
        for w in rep.comparison.warnings:
            print(f"warning: {w}")
    return 0
