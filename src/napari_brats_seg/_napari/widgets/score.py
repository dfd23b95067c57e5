"""Score widget: compare two labels layers (reference vs prediction) with the BraTS metrics.

The table shows Dice, HD95 (mm), sensitivity, specificity and volumes (mL) of WT, TC, ET and of the
NCR and ED labels (:func:`core.metrics.compute_metrics`, BraTS empty-mask policy), with a bar chart
of the Dice scores; *Export CSV* writes the table. Changes of either layer (edits, undo, redo:
:attr:`..session.Session.data_changed`) refresh the scores after a short pause (a single-shot QTimer
restarted by every change), computed in the background.

Defaults: the ground truth of the current case vs its newest prediction; without a ground truth, the
kept model output vs its corrected copy. The choice follows a new prediction.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
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

from ...core import labels as lab
from ...core.errors import BratsSegError
from ..notify import error
from ..session import Session
from ..session import key as layer_key
from ..worker import Task, start_task
from ._qt import LayerCombo

#: Table rows: (label, path into compute_metrics' result).
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("WT", ("WT",)), ("TC", ("TC",)), ("ET", ("ET",)), ("NCR", ("labels", "NCR")), ("ED", ("labels", "ED")),
)
#: Table columns: (header, metric key, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Dice", "dice", "{:.3f}"), ("HD95 mm", "hd95", "{:.2f}"), ("Sensitivity", "sensitivity", "{:.3f}"),
    ("Specificity", "specificity", "{:.4f}"), ("Vol pred mL", "volume_pred_ml", "{:.2f}"),
    ("Vol ref mL", "volume_gt_ml", "{:.2f}"),
)
#: Delay between the last edit and the recomputation.
REFRESH_DELAY_MS = 500


class ScoreWidget(QWidget):
    """Dock widget with the score table, the Dice bar chart and CSV export.

    Public controls: ``reference_combo``, ``prediction_combo``, ``score_button``, ``export_button``,
    ``table``, ``canvas``, ``status``; :attr:`results` holds the last metrics dict and
    :attr:`computed` counts completed computations.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.results: dict | None = None
        self.computed = 0
        self.task: Task | None = None
        self._pending = False
        self._watched: set[int] = set()
        self.session = Session.for_viewer(napari_viewer)

        self.reference_combo = LayerCombo(napari_viewer, Labels, default=lambda: self.session.score_pair()[0])
        self.prediction_combo = LayerCombo(napari_viewer, Labels, default=lambda: self.session.score_pair()[1])
        self.score_button = QPushButton("Score")
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(False)
        self.table = QTableWidget(len(ROWS), len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setVerticalHeaderLabels([r[0] for r in ROWS])
        # Columns as wide as their header: every volume column visible in the dock without scrolling.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(type(header).ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.figure = Figure(figsize=(4, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.status = QLabel("")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.score)

        form = QFormLayout()
        form.addRow("Reference", self.reference_combo)
        form.addRow("Prediction", self.prediction_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.score_button)
        buttons.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.table)
        lay.addWidget(self.canvas)
        lay.addWidget(self.status)

        self.score_button.clicked.connect(self.score)
        self.export_button.clicked.connect(self._pick_csv)
        self.reference_combo.currentIndexChanged.connect(self._rewatch)
        self.prediction_combo.currentIndexChanged.connect(self._rewatch)
        self.session.data_changed.connect(self._on_edit)
        self.session.defaults_changed.connect(self._apply_defaults)
        self._defaults: tuple[Any, Any] = (None, None)
        self._apply_defaults()
        self._rewatch()

    def _apply_defaults(self) -> None:
        """Follow the session's default pair when it changes (a new prediction arrived)."""
        ref, pred = self.session.score_pair()
        if (ref, pred) != self._defaults:
            self._defaults = (ref, pred)
            self.reference_combo.set_layer(ref)
            self.prediction_combo.set_layer(pred)

    # -- watching edits ------------------------------------------------------------------------
    def _rewatch(self, *_: Any) -> None:
        self._watched = {layer_key(ly) for ly in (self.reference_combo.layer(), self.prediction_combo.layer())
                         if ly is not None}

    def _on_edit(self, layer: Any = None) -> None:
        if self.results is not None and layer_key(layer) in self._watched:
            self._timer.start()

    # -- scoring -------------------------------------------------------------------------------
    def score(self) -> Task | None:
        """Compute the metrics of the chosen layers in the background (queued if one is running)."""
        ref, pred = self.reference_combo.layer(), self.prediction_combo.layer()
        if ref is None or pred is None:
            self.status.setText("Choose two labels layers.")
            return None
        if self.task is not None:
            self._pending = True
            return self.task
        if tuple(ref.data.shape) != tuple(pred.data.shape):
            error("The two layers differ in shape.",
                  f"{ref.name}: {tuple(ref.data.shape)}; {pred.name}: {tuple(pred.data.shape)}")
            return None
        g = np.array(ref.data, dtype=np.uint8, copy=True)
        p = np.array(pred.data, dtype=np.uint8, copy=True)
        spacing = tuple(float(s) for s in ref.scale)

        def work(on_progress: Any = None, cancel: Any = None) -> dict:
            from ...core.metrics import compute_metrics

            return compute_metrics(p, g, spacing)

        self.status.setText("Scoring...")
        self.task = start_task(work, description="scoring", show_progress=False, wrap=BratsSegError)
        self.task.succeeded.connect(self._show)
        self.task.done.connect(self._done)
        return self.task

    def _done(self) -> None:
        self.task = None
        if self._pending:
            self._pending = False
            self.score()

    def _show(self, results: dict) -> None:
        self.results = results
        self.computed += 1
        for r, (_, path) in enumerate(ROWS):
            entry = results
            for key in path:
                entry = entry[key]
            for c, (_, key, fmt) in enumerate(COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(fmt.format(entry[key])))
        self.table.resizeColumnsToContents()
        self._plot(results)
        self.export_button.setEnabled(True)
        self.status.setText(f"WT Dice {results['WT']['dice']:.3f}, TC {results['TC']['dice']:.3f}, "
                            f"ET {results['ET']['dice']:.3f}")

    def _plot(self, results: dict) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        regions = list(lab.REGIONS)
        colours = [lab.CLASS_COLOURS[lab.EDEMA], lab.CLASS_COLOURS[lab.NECROTIC], lab.CLASS_COLOURS[lab.ENHANCING]]
        ax.bar(regions, [results[r]["dice"] for r in regions], color=colours, edgecolor="black")
        ax.set_ylim(0, 1)
        ax.set_ylabel("Dice")
        self.canvas.draw_idle()

    def table_rows(self) -> list[dict[str, Any]]:
        """The table as dicts (``region`` plus one key per metric); empty before the first score."""
        if self.results is None:
            return []
        rows = []
        for name, path in ROWS:
            entry = self.results
            for key in path:
                entry = entry[key]
            rows.append({"region": name, **{key: float(entry[key]) for _, key, _ in COLUMNS}})
        return rows

    def export_csv(self, path: str | Path) -> Path:
        """Write the table to ``path`` (one row per region/label, one column per metric)."""
        rows = self.table_rows()
        if not rows:
            raise BratsSegError("nothing to export: score first")
        out = Path(path)
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return out

    def _pick_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export scores", "scores.csv", "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except (OSError, BratsSegError) as exc:
                error("The scores were not exported.", f"{path}: {getattr(exc, 'strerror', None) or exc}")
