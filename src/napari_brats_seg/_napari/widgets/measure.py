"""Measure widget: RANO calipers of each lesion as an editable Shapes layer, with the table beside it.

*Measure* runs :func:`core.measure.measure_labels` on the chosen labels layer in the background, then
draws the two diameters of each listed lesion as lines of a Shapes layer (on the lesion's axial slice,
in the labels layer's millimetre placement) labelled with their lengths, and fills the table: lesion,
slice, long and perpendicular diameters, product, RANO status, and the SPD of the targets. Dragging a
caliper end (select the line, then its vertex, in the Shapes layer's direct-select mode) fires the
layer's ``data`` event: the lengths, products, measurability, targets and SPD are recomputed from the
lines as they now lie, and the edited rows are marked. *Report...* writes the PDF or HTML report
(:mod:`core.measure.report`) of the labels layer over its case's images (the case must be open).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from napari.layers import Labels, Shapes
from napari.utils.events import Event
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import BratsSegError
from ...core.measure import MAX_TARGETS, CaseMeasurement, measurability
from ..layers import case_from_layers, source_of
from ..session import Session
from ..worker import Task, start_task
from ._qt import LayerCombo

#: The table keeps room for this many rows however the dock is sized.
MIN_ROWS = 5
#: At most this many lesions (largest products) get calipers and a table row.
MAX_ROWS = 10
#: Table columns.
COLUMNS = ("Lesion", "Slice", "Long mm", "Perp mm", "Product mm²", "RANO", "Edited")
#: Caliper colours: long axis, perpendicular.
COLOURS = {"long": "cyan", "perp": "magenta"}


class MeasureWidget(QWidget):
    """Dock widget with the RANO table and the editable calipers.

    Public controls: ``labels_combo``, ``region_combo`` (``ET`` RANO, ``WT`` RANO-LGG style),
    ``measure_button``, ``table``, ``spd_label``, ``status``. After a measurement :attr:`result` holds
    the :class:`CaseMeasurement`, :attr:`calipers` the Shapes layer and :attr:`rows` the table as dicts.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: CaseMeasurement | None = None
        self.calipers: Shapes | None = None
        self.rows: list[dict[str, Any]] = []
        self.task: Task | None = None
        self.computed = 0
        self._pending = False
        self._keys: list[tuple[int, str]] = []  # per shape: (row index, "long" | "perp")
        self._spacing = np.ones(3)

        self.session = Session.for_viewer(napari_viewer)
        self._default: Any = None
        self.labels_combo = LayerCombo(napari_viewer, Labels, default=self.session.correct_target)
        self.region_combo = QComboBox()
        self.region_combo.addItems(["ET", "WT"])
        self.region_combo.setToolTip("ET: RANO (enhancing tumour); WT: RANO-LGG style (whole tumour)")
        self.measure_button = QPushButton("Measure")
        self.report_button = QPushButton("Report...")
        self.report_button.setToolTip("Write a PDF or HTML report of the case's images and these labels")
        self.reported = 0
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        # docked alone the table got the height of about one row: keep room for MIN_ROWS lesions
        rows_px = self.table.verticalHeader().defaultSectionSize() * MIN_ROWS
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + rows_px + 4)
        self.spd_label = QLabel("")
        self.spd_label.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        form.addRow("Figure", self.region_combo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.report_button)
        lay.addLayout(buttons)
        lay.addWidget(self.table)
        lay.addWidget(self.spd_label)
        lay.addWidget(self.status)
        self.measure_button.clicked.connect(self.measure)
        self.report_button.clicked.connect(self._pick_report)
        self.table.cellClicked.connect(self._go_to_row)
        self.session.defaults_changed.connect(self._apply_default)
        self._apply_default()

    def _apply_default(self) -> None:
        """Follow the newest prediction (else the reference) when it changes, as Correct and Save do."""
        default = self.session.correct_target()
        if default is not self._default:
            self._default = default
            if default is not None:
                self.labels_combo.set_layer(default)

    # -- measuring -----------------------------------------------------------------------------
    def measure(self) -> Task | None:
        """Measure the chosen labels layer in the background; the calipers are drawn when it is done."""
        layer = self.labels_combo.layer()
        if layer is None:
            self.status.setText("Choose a labels layer.")
            return None
        if self.task is not None:
            self._pending = True  # measured again when the running one is done
            return self.task
        data = np.array(layer.data, dtype=np.uint8, copy=True)
        spacing = tuple(float(s) for s in layer.scale)
        self._spacing = np.asarray(spacing)

        def work(on_progress: Any = None, cancel: Any = None) -> CaseMeasurement:
            from ...core.measure import measure_labels

            return measure_labels(data, spacing, case_id=layer.name, on_progress=on_progress, cancel=cancel)

        self.status.setText("Measuring...")
        self.measure_button.setEnabled(False)
        self.task = start_task(work, description="RANO measurement", wrap=BratsSegError)
        self.task.succeeded.connect(lambda res: self._show(res, layer))
        self.task.failed.connect(lambda exc: self.status.setText(f"Not measured: {exc}"))
        self.task.done.connect(self._done)
        return self.task

    def _done(self) -> None:
        self.task = None
        self.measure_button.setEnabled(True)
        if self._pending:
            self._pending = False
            self.measure()

    def _show(self, result: CaseMeasurement, labels: Labels) -> None:
        self.result = result
        fig = result.et if self.region_combo.currentText() == "ET" else result.wt
        self._thickness = float(fig.spacing[0])
        listed = [les for les in fig.lesions if les.long is not None][:MAX_ROWS]
        self.rows = [{"id": les.id, "slice": les.slice, "long_mm": les.long_mm, "perp_mm": les.perp_mm,
                      "n_slices": les.n_slices, "edited": False} for les in listed]
        lines, self._keys = [], []
        for r, les in enumerate(listed):
            for kind, chord in (("long", les.long), ("perp", les.perp)):
                if chord is not None:
                    lines.append(np.array([[les.slice, *chord.ends[0]], [les.slice, *chord.ends[1]]]))
                    self._keys.append((r, kind))
        self._draw(lines, labels, fig.label)
        self._update_rows()
        self.computed += 1
        self.status.setText(fig.status + (f"  ({result.plane})" if result.plane else ""))
        if listed:
            self._go_to_row(0)

    def _draw(self, lines: list[np.ndarray], labels: Labels, title: str) -> None:
        name = f"RANO calipers [{labels.name}]"
        if self.calipers is not None and self.calipers in self.viewer.layers:
            self.calipers.events.data.disconnect(self._on_edit)
            self.viewer.layers.remove(self.calipers)
        kinds = [k for _, k in self._keys]
        colours = {"edge_color": [COLOURS[k] for k in kinds]} if kinds else {}
        self.calipers = self.viewer.add_shapes(
            lines or None, ndim=3, shape_type="line", name=name, edge_width=1.0, scale=labels.scale,
            translate=labels.translate, units=labels.units, features=self._features(), **colours,
            text={"string": "{label}", "color": "white", "size": 9, "anchor": "upper_left"},
            metadata={"brats_seg_measure": title},
        )
        self.calipers.events.data.connect(self._on_edit)

    def _features(self) -> pd.DataFrame:
        labels, lengths = [], []
        for r, kind in self._keys:
            row = self.rows[r]
            lengths.append(row[f"{kind}_mm"])
            labels.append(f"L{row['id']} {kind} {row[f'{kind}_mm']:.1f} mm")
        return pd.DataFrame({"lesion": [self.rows[r]["id"] for r, _ in self._keys],
                             "kind": [k for _, k in self._keys], "length_mm": lengths, "label": labels})

    # -- edits -----------------------------------------------------------------------------------
    def caliper_lengths(self) -> list[float]:
        """Length (mm) of every caliper line as it now lies."""
        assert self.calipers is not None
        return [float(np.linalg.norm((np.asarray(d[-1]) - np.asarray(d[0])) * self._spacing))
                for d in self.calipers.data]

    def _on_edit(self, event: Event | None = None) -> None:
        action = str(getattr(event, "action", "changed"))
        if "changed" not in action.lower() or self.calipers is None:
            return
        if len(self.calipers.data) != len(self._keys):
            self.status.setText("Calipers were added or removed: measure again to pair them with lesions.")
            return
        for (r, kind), length in zip(self._keys, self.caliper_lengths()):
            if abs(length - self.rows[r][f"{kind}_mm"]) > 1e-6:
                self.rows[r][f"{kind}_mm"], self.rows[r]["edited"] = length, True
        self._update_rows()
        self.calipers.features = self._features()
        self.calipers.refresh_text()

    def _update_rows(self) -> None:
        for row in self.rows:
            row["product_mm2"] = row["long_mm"] * row["perp_mm"]
            row["measurable"], row["reason"] = measurability(row["long_mm"], row["perp_mm"], row["n_slices"],
                                                             self._thickness)
            row["target"] = False
        for row in sorted((r for r in self.rows if r["measurable"]), key=lambda r: -r["product_mm2"])[:MAX_TARGETS]:
            row["target"] = True
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            rano = "target" if row["target"] else ("measurable" if row["measurable"] else "non-measurable")
            cells = (str(row["id"]), str(row["slice"]), f"{row['long_mm']:.1f}", f"{row['perp_mm']:.1f}",
                     f"{row['product_mm2']:.1f}", rano, "yes" if row["edited"] else "")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(row["reason"])
                self.table.setItem(i, c, item)
        self.table.resizeColumnsToContents()
        targets = [r for r in self.rows if r["target"]]
        if targets:
            spd = sum(r["product_mm2"] for r in targets)
            self.spd_label.setText(f"SPD {spd:.1f} mm² ({len(targets)} target lesion{'s' * (len(targets) > 1)})")
        else:
            self.spd_label.setText("SPD undefined: no measurable lesion")

    @property
    def spd_mm2(self) -> float | None:
        """The SPD of the table as it now stands (None without a target lesion)."""
        t = [r["product_mm2"] for r in self.rows if r.get("target")]
        return float(sum(t)) if t else None

    def _go_to_row(self, row: int, _col: int = 0) -> None:
        if 0 <= row < len(self.rows) and self.calipers is not None:
            z = self.rows[row]["slice"]
            self.viewer.dims.set_point(0, float(self.calipers.translate[0] + z * self.calipers.scale[0]))

    # -- report ----------------------------------------------------------------------------------
    def write_report(self, path: str | Path, *, model: str | None = None) -> Task | None:
        """Write the report (PDF or HTML by suffix) of the labels layer and its case's images, in the
        background. It reports the computed measurement: calipers edited by hand are not carried over."""
        layer = self.labels_combo.layer()
        if layer is None:
            self.status.setText("Choose a labels layer.")
            return None
        src = source_of(layer)
        try:
            case = case_from_layers(self.viewer.layers, src.case_id if src is not None else None)
        except KeyError as exc:
            show_error(f"No report: {exc.args[0]}")
            return None
        internal = np.array(layer.data, dtype=np.uint8, copy=True)
        out = Path(path)

        def work(on_progress: Any = None, cancel: Any = None) -> Path:
            from ...core.measure.report import report_for_case, write_report

            rep = report_for_case(case, internal, source=None, model=model)
            rep.summary[3] = ("Labels", f"napari layer {layer.name!r}")
            return write_report(rep, out, overwrite=True)

        self.status.setText(f"Writing {out.name}...")
        task = start_task(work, description="report", show_progress=False, wrap=BratsSegError)
        task.succeeded.connect(self._reported)
        task.failed.connect(lambda exc: self.status.setText(f"No report: {exc}"))
        return task

    def _reported(self, path: Path) -> None:
        self.reported += 1
        self.status.setText(f"Wrote {path}")

    def _pick_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write report", "report.pdf", "PDF (*.pdf);;HTML (*.html)")
        if path:
            self.write_report(path)
