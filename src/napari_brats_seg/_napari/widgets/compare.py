"""Compare widget: two time points side by side on the baseline grid (linked slices) and the change table.

Choose the baseline and the follow-up case folders (each with its ``seg`` file) and press *Compare*.
In the background, :func:`core.measure.compare.compare` registers the follow-up rigidly onto the
baseline and suggests the RANO category; the follow-up's registration image and labels are resampled
onto the baseline grid. Then four layers are added (baseline T1ce and labels, follow-up T1ce and
labels on the baseline grid) and the viewer is put in grid mode, two layers per cell: both cases side by
side, on one grid, so one slider moves both. The table lists the SPD and volumes at both time points and
their change; below it the suggestion with its reasons, the warnings, and what is the reader's to judge.
The layers are for viewing: not editable, and not saved as the follow-up's labels (they lie on the
baseline's grid, not the follow-up's own).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import BratsSegError
from ..layers import label_colormap, robust_limits, world_placement
from ..worker import Task, start_task

#: Table columns.
COLUMNS = ("", "Baseline", "Follow-up", "Change", "Change %")
#: Metadata key marking the layers this widget added.
META = "brats_seg_compare"


def _pick_row(line: QLineEdit, parent: QWidget) -> QHBoxLayout:
    button = QPushButton("Browse...")
    button.clicked.connect(lambda: line.setText(QFileDialog.getExistingDirectory(parent, "Case folder")
                                                or line.text()))
    row = QHBoxLayout()
    row.addWidget(line)
    row.addWidget(button)
    return row


def _run_compare(baseline: str, followup: str, on_progress: Any = None, cancel: Any = None) -> dict:
    """The comparison, and the follow-up's image and labels on the baseline grid (worker thread)."""
    from ...core.measure.compare import compare
    from ...core.measure.pair_registration import onto_baseline

    res = compare(baseline, followup, on_progress=on_progress, cancel=cancel)
    b, f = res.points
    reg = res.followups[0].registration
    image = None if f.image is None else onto_baseline(b, f, reg, f.image, nearest=False)
    return {"comparison": res, "followup_image": image, "followup_labels": onto_baseline(b, f, reg, f.labels)}


class CompareWidget(QWidget):
    """Dock widget: two case folders, *Compare*, the change table and the suggestion.

    Public controls: ``baseline_edit``, ``followup_edit``, ``compare_button``, ``table``,
    ``category_label``, ``warnings_label``, ``status``. After a comparison :attr:`result` holds the
    :class:`~...core.measure.compare.Comparison` and :attr:`layers` the four layers added.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: Any = None
        self.layers: list[Any] = []
        self.task: Task | None = None
        self.computed = 0
        self.baseline_edit = QLineEdit()
        self.followup_edit = QLineEdit()
        self.baseline_edit.setPlaceholderText("baseline case folder")
        self.followup_edit.setPlaceholderText("follow-up case folder")
        self.compare_button = QPushButton("Compare")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.category_label = QLabel("")
        self.warnings_label = QLabel("")
        self.warnings_label.setStyleSheet("color: #e06c00")
        self.reader_label = QLabel("")
        self.status = QLabel("")
        for w in (self.category_label, self.warnings_label, self.reader_label, self.status):
            w.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Baseline", _pick_row(self.baseline_edit, self))
        form.addRow("Follow-up", _pick_row(self.followup_edit, self))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.compare_button)
        for w in (self.table, self.category_label, self.warnings_label, self.reader_label, self.status):
            lay.addWidget(w)
        self.compare_button.clicked.connect(self.compare)

    def compare(self) -> Task | None:
        """Compare the two cases in the background; the layers and the table come when it is done."""
        base, fu = self.baseline_edit.text().strip(), self.followup_edit.text().strip()
        if not base or not fu:
            self.status.setText("Choose the baseline and the follow-up case folders.")
            return None
        if self.task is not None:
            return self.task
        self.status.setText("Registering and comparing...")
        self.compare_button.setEnabled(False)
        self.task = start_task(lambda on_progress=None, cancel=None: _run_compare(base, fu, on_progress, cancel),
                               description="comparison of two time points", wrap=BratsSegError)
        self.task.succeeded.connect(self._show)
        self.task.failed.connect(lambda exc: self.status.setText(f"Not compared: {exc}"))
        self.task.done.connect(self._done)
        return self.task

    def _done(self) -> None:
        self.task = None
        self.compare_button.setEnabled(True)

    def _show(self, out: dict) -> None:
        res = out["comparison"]
        self.result = res
        self._add_layers(res, out["followup_image"], out["followup_labels"])
        d = res.to_dict()
        fu = d["followups"][0]
        self._fill_table(d, fu)
        cat = fu["category"]
        self.category_label.setText(f"RANO (suggestion): {cat['suggestion']}. " + "; ".join(cat["reasons"]))
        self.warnings_label.setText("\n".join(f"Warning: {w}" for w in d["warnings"]))
        self.reader_label.setText("For the reader to judge (not computed):\n"
                                  + "\n".join(f"- {r}" for r in d["reader_to_judge"]))
        self.computed += 1
        self.status.setText(" ".join(d["notes"]))

    def _add_layers(self, res: Any, fu_image: np.ndarray | None, fu_labels: np.ndarray) -> None:
        for layer in self.layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        b, f = res.points
        place = world_placement(b.geometry)
        meta = {META: True}
        added = []
        for tp, image, labels, tag in ((b, b.image, b.labels, "baseline"),
                                       (f, fu_image, fu_labels, "follow-up on baseline grid")):
            if image is not None:
                added.append(self.viewer.add_image(image, name=f"{tp.image_name} [{tp.name}, {tag}]", colormap="gray",
                                                   contrast_limits=robust_limits(image), metadata=meta, **place))
            lay = self.viewer.add_labels(np.asarray(labels, np.uint8), name=f"labels [{tp.name}, {tag}]",
                                         opacity=0.5, metadata=meta, **place)
            lay.colormap = label_colormap()
            lay.editable = False
            added.append(lay)
        self.layers = added
        grid = self.grid
        grid.stride = 2 if len(added) == 4 else 1  # image + labels per cell
        grid.enabled = True

    @property
    def grid(self) -> Any:
        """The viewer's grid settings (``viewer.canvas.grid`` from napari 0.6, ``viewer.grid`` before)."""
        canvas = getattr(self.viewer, "canvas", None)
        return canvas.grid if canvas is not None and hasattr(canvas, "grid") else self.viewer.grid

    def _fill_table(self, d: dict, fu: dict) -> None:
        spd = fu["spd"]

        def fmt(v: float | None, unit: str = "") -> str:
            return "none" if v is None else f"{v:.1f}{unit}"

        rows = [["SPD mm²", fmt(spd["baseline_mm2"]), fmt(spd["current_mm2"]),
                 fmt(None if spd["current_mm2"] is None or spd["baseline_mm2"] is None
                     else spd["current_mm2"] - spd["baseline_mm2"]), fmt(spd["change_vs_baseline_pct"], " %")]]
        for k, v in fu["volumes"].items():
            rows.append([f"{k} mL", f"{v['baseline_ml']:.2f}", f"{v['current_ml']:.2f}", f"{v['change_ml']:+.2f}",
                         fmt(v["change_pct"], " %")])
        rows.append(["lesions", str(d["time_points"][0]["lesion_count"]["ET"]),
                     str(d["time_points"][1]["lesion_count"]["ET"]),
                     f"{fu['new_lesions']} new, {fu['vanished_lesions']} vanished", ""])
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
