"""A report to file of one case: PDF (matplotlib's PDF backend) or self-contained HTML (base64 PNGs).

Contents: the case id and dates (no other identifier: file names, not folders), the model/checkpoint
and whether the labels were corrected by hand when the caller knows them, the key images
(:mod:`.figures`: the RANO slice with its calipers; axial, coronal and sagittal planes through the
tumour with the labels and a legend, radiological orientation), the measurement and volume tables,
and what the report leaves to the reader.

Why matplotlib's PDF backend: matplotlib already draws every image of the report and is a dependency
of the project; its ``PdfPages`` writes vector text and tables with embedded images, with no extra
package (reportlab) nor a system library stack (weasyprint's Pango/Cairo).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..case import Case
from ..errors import CaseError, OutputExistsError
from .compare import READER_TO_JUDGE, Comparison
from .figures import rano_figure, three_planes_figure
from .measurement import CaseMeasurement, measure_labels
from .rano import RegionMeasurement

#: Lesions per figure in the report's tables.
REPORT_ROWS = 8
#: What the report does not do, said on it.
NO_COMPARISON = ("No earlier time point was given (--baseline): no change of SPD or volumes, no RANO response "
                 "category.")
LIMITS = (
    ("The measurements are computed from the label map and are a suggestion for the reader to verify; the "
     "non-measurement RANO criteria (T2/FLAIR, new lesions, steroid dose, clinical state) are the reader's to judge."),
)


@dataclass
class Report:
    """What a report shows.

    Attributes
    ----------
    summary
        ``(field, value)`` rows: case, dates, labels, scheme, model, corrections, plane, spacing.
    measurement
        The :class:`CaseMeasurement` of the labels.
    figures
        Title -> matplotlib figure (the RANO slice, the three planes).
    """

    case_id: str
    summary: list[tuple[str, str]]
    measurement: CaseMeasurement
    figures: dict[str, Figure] = field(default_factory=dict)
    comparison: Comparison | None = None

    @property
    def notes(self) -> list[str]:
        """The notes printed at the end: the measurement's, the comparison's (or its absence), the limits."""
        comp = [NO_COMPARISON] if self.comparison is None else []
        return [*self.measurement.notes, *comp, *LIMITS]


def build_report(case: str | os.PathLike, *, labels: str | os.PathLike | None = None, scheme: str | None = None,
                 model: str | None = None, corrected: bool | None = None, date: dt.date | None = None,
                 baseline: str | os.PathLike | None = None, baseline_labels: str | os.PathLike | None = None
                 ) -> Report:
    """Read a case and its labels (the case's own ``seg`` file when ``labels`` is None) and measure them.

    With ``baseline`` (an earlier case, its own labels or ``baseline_labels``), the report holds the
    comparison of the case against it (:func:`.compare.compare`, the case as the follow-up).

    Raises
    ------
    CaseError
        Unreadable case, labels missing or off the case's grid, an unknown scheme, empty labels.
    """
    from ..io import read_case

    c = read_case(case, seg=labels, scheme=scheme)
    if c.ground_truth is None:
        raise CaseError("the case has no label map: give one with --labels", case)
    rep = report_for_case(c, c.ground_truth, source=c.gt_path, scheme=c.gt_scheme.name if c.gt_scheme else None,
                          model=model, corrected=corrected, date=date)
    if baseline is not None:
        from .compare import compare

        rep.comparison = compare(baseline, c, labels=[baseline_labels, None])
    return rep


def report_for_case(case: Case, internal: np.ndarray, *, source: str | os.PathLike | None = None,
                    scheme: str | None = None, model: str | None = None, corrected: bool | None = None,
                    date: dt.date | None = None) -> Report:
    """The report of an internal-class label map lying on ``case``'s grid (a case in memory, e.g. napari's).

    Raises
    ------
    CaseError
        Labels that do not fit the case's shape, or empty labels.
    """
    if tuple(np.shape(internal)) != tuple(case.shape):
        raise CaseError(f"labels of shape {np.shape(internal)} do not lie on case {case.case_id} {case.shape}")
    m = measure_labels(internal, case.geometry, case_id=case.case_id, source=source, scheme=scheme)
    image_name = "T1ce"
    image = case.images["t1ce"]
    sp = " x ".join(f"{s:g}" for s in m.spacing)
    summary = [
        ("Case", case.case_id),
        ("Report date", (date or dt.datetime.now(dt.UTC).date()).isoformat()),
        ("Scan date", "not recorded in the NIfTI files"),
        ("Labels", f"{Path(source).name if source else 'in memory'} ({scheme or 'internal classes'})"),
        ("Model / checkpoint", model or "not recorded"),
        ("Corrected by hand", {None: "not recorded", True: "yes", False: "no"}[corrected]),
        ("Plane", m.plane),
        ("Voxel spacing", f"{sp} mm (z, y, x)"),
    ]
    figs = {"RANO slice with calipers": rano_figure(image, internal, m, image_name=image_name),
            "Axial, coronal and sagittal planes through the tumour":
                three_planes_figure(image, internal, m.spacing, image_name=image_name)}
    return Report(case.case_id, summary, m, figs)


def lesion_rows(fig: RegionMeasurement) -> list[list[str]]:
    """Table rows of a figure's largest lesions (header first)."""
    rows = [["lesion", "slice", "long mm", "perp mm", "product mm²", "slices", "volume mL", "RANO"]]
    for les in fig.lesions[:REPORT_ROWS]:
        status = "target" if les.target else ("measurable" if les.measurable else "non-measurable")
        rows.append([str(les.id), str(les.slice), f"{les.long_mm:.1f}", f"{les.perp_mm:.1f}",
                     f"{les.product_mm2:.1f}", str(les.n_slices), f"{les.volume_ml:.2f}", status])
    return rows


def _spd_line(fig: RegionMeasurement) -> str:
    spd = fig.spd_mm2
    return f"SPD {'undefined' if spd is None else f'{spd:.1f} mm²'}: {fig.status}"


def volume_rows(m: CaseMeasurement) -> list[list[str]]:
    """The volume table (header first)."""
    return [list(m.volumes_ml), [f"{v:.2f}" for v in m.volumes_ml.values()]]


def _png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _check_out(out: Path, overwrite: bool, inputs: set[Path]) -> None:
    if out.resolve() in inputs:
        raise OutputExistsError(f"{out}: refusing to write the report over an input file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists: pass --overwrite to replace it")


def write_report(report: Report, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``report`` as PDF or HTML, by the suffix of ``out`` (``.pdf``, ``.html``/``.htm``)."""
    path = Path(out)
    inputs = {Path(report.measurement.source).resolve()} if report.measurement.source else set()
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise CaseError("the report must end in .pdf or .html", path)
    _check_out(path, overwrite, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        _write_pdf(report, path)
    else:
        path.write_text(render_html(report), encoding="utf-8")
    return path


def _table(ax, rows: list[list[str]], title: str, font: int = 8) -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=10, loc="left")
    if len(rows) < 2:
        ax.text(0, 0.5, "none", fontsize=font)
        return
    t = ax.table(cellText=rows[1:], colLabels=rows[0], loc="upper left", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(font)
    t.scale(1, 1.2)


def _image(ax, fig: Figure) -> None:
    import matplotlib.image as mpimg

    ax.imshow(mpimg.imread(io.BytesIO(_png(fig, 150)), format="png"))
    ax.set_axis_off()


def _write_pdf(report: Report, path: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    m = report.measurement
    titles = list(report.figures)
    with PdfPages(path, metadata={"Title": f"Tumour measurement report: {report.case_id}",
                                  "Creator": "napari-brats-seg"}) as pdf:
        page = Figure(figsize=(8.27, 11.69))
        page.text(0.06, 0.965, f"Brain tumour measurement report: {report.case_id}", fontsize=14, weight="bold")
        _table(page.add_axes((0.06, 0.76, 0.88, 0.18)), [["field", "value"], *map(list, report.summary)],
               "Case", font=7)
        _image(page.add_axes((0.2, 0.36, 0.6, 0.38)), report.figures[titles[0]])
        _table(page.add_axes((0.06, 0.06, 0.88, 0.26)), lesion_rows(m.et),
               "RANO: enhancing tumour. " + _spd_line(m.et))
        pdf.savefig(page)
        page = Figure(figsize=(8.27, 11.69))
        _image(page.add_axes((0.04, 0.62, 0.92, 0.34)), report.figures[titles[1]])
        _table(page.add_axes((0.06, 0.40, 0.88, 0.2)), lesion_rows(m.wt),
               "RANO-LGG style: whole tumour. " + _spd_line(m.wt))
        _table(page.add_axes((0.06, 0.28, 0.88, 0.08)), volume_rows(m), "Volumes (mL)")
        page.text(0.06, 0.22, "\n".join(_wrap(n, 110) for n in report.notes), fontsize=8, va="top")
        pdf.savefig(page)
        if report.comparison is not None:
            _comparison_page(pdf, report.comparison)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (images inlined as base64 PNG)."""
    m = report.measurement
    parts = [f"<h1>Brain tumour measurement report: {html.escape(report.case_id)}</h1>",
             _html_table([["field", "value"], *map(list, report.summary)])]
    for title, fig in report.figures.items():
        data = base64.b64encode(_png(fig)).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    for fig_m, title in ((m.et, "RANO: enhancing tumour"), (m.wt, "RANO-LGG style: whole tumour")):
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(_spd_line(fig_m))}</p>",
                  _html_table(lesion_rows(fig_m))]
    parts += ["<h2>Volumes (mL)</h2>", _html_table(volume_rows(m))]
    if report.comparison is not None:
        parts += _comparison_html(report.comparison)
    parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in report.notes] + ["</ul>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #999;padding:2px 8px;text-align:center}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Report "
            f"{html.escape(report.case_id)}</title><style>{style}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def comparison_rows(comp: Comparison) -> list[list[str]]:
    """One row per time point: SPD, its change vs baseline and nadir, ET/TC/WT volumes, the suggestion."""
    rows = [["time point", "SPD mm²", "vs baseline", "vs nadir", "ET mL", "TC mL", "WT mL", "new", "RANO"]]
    for i, (p, m) in enumerate(zip(comp.points, comp.measurements, strict=True)):
        spd = "none measurable" if m.et.spd_mm2 is None else f"{m.et.spd_mm2:.1f}"
        vol = [f"{m.volumes_ml[k]:.2f}" for k in ("ET", "TC", "WT")]
        if i == 0:
            rows.append([f"{p.name} (baseline)", spd, "", "", *vol, "", ""])
            continue
        f = comp.followups[i - 1]
        pct = [("n/a" if v is None else f"{v:+.1f} %") for v in (f.spd["change_vs_baseline_pct"],
                                                                  f.spd["change_vs_nadir_pct"])]
        new = sum(g.status == "new" for g in f.lesions)
        rows.append([p.name, spd, *pct, *vol, str(new), f.category.suggestion])
    return rows


def _comparison_lines(comp: Comparison) -> list[str]:
    lines = []
    for f in comp.followups:
        lines.append(f"{comp.points[f.index].name}: RANO suggestion {f.category.suggestion}: "
                     + "; ".join(f.category.reasons))
    lines += [f"WARNING: {w}" for w in comp.warnings] + comp.notes
    lines += ["For the reader to judge (not computed): " + r for r in READER_TO_JUDGE]
    return lines


def _comparison_page(pdf, comp: Comparison) -> None:
    page = Figure(figsize=(8.27, 11.69))
    page.text(0.06, 0.965, f"Comparison with the baseline {comp.points[0].name}", fontsize=13, weight="bold")
    _table(page.add_axes((0.06, 0.78, 0.88, 0.16)), comparison_rows(comp), "SPD, volumes and RANO category", font=7)
    page.text(0.06, 0.74, "\n".join(_wrap(n, 110) for n in _comparison_lines(comp)), fontsize=7.5, va="top")
    pdf.savefig(page)


def _comparison_html(comp: Comparison) -> list[str]:
    parts = [f"<h2>Comparison with the baseline {html.escape(comp.points[0].name)}</h2>",
             _html_table(comparison_rows(comp)), "<ul>"]
    parts += [f"<li>{html.escape(n)}</li>" for n in _comparison_lines(comp)]
    return [*parts, "</ul>"]
