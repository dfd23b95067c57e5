"""Correct widget: paint tools and clean-ups for a labels layer, each clean-up one undo step.

- One button per class (necrotic core, edema, enhancing tumour, eraser) selects the label and the
  paint tool; a brush-size box and a *3D brush* toggle (``n_edit_dimensions`` 3 or 2).
- *Remove small islands* (whole-tumour components under N voxels), *Fill holes (slice by slice)* of
  the selected class, *Nest ET in TC in WT* (:func:`..edits.nest_regions`); *Undo* calls the layer's
  own undo, which also undoes brush strokes.
- The layer defaults to the newest prediction of the current case; a ground truth read from disk
  is a locked reference (*Unlock reference...* asks first). *Redo* beside *Undo*; *Revert to model
  output* puts a prediction's untouched model output back (one undo step).
- Keys on the canvas, for the plugin's labels layers: 1 necrotic core, 2 edema, 3 enhancing tumour,
  0 eraser, Ctrl+Z undo, Ctrl+Shift+Z redo (:mod:`..session`).
- Every edit, undo and redo is autosaved to a recovery file (:mod:`..autosave`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core import labels as lab
from .. import edits
from ..notify import info
from ..session import Session
from ._qt import LayerCombo
from .correct_tools import CorrectTools

#: The paint buttons: internal class -> label.
PAINT_CLASSES: dict[int, str] = {
    lab.NECROTIC: f"{lab.CLASS_NAMES[lab.NECROTIC]} (1)",
    lab.EDEMA: f"{lab.CLASS_NAMES[lab.EDEMA]} (2)",
    lab.ENHANCING: f"{lab.CLASS_NAMES[lab.ENHANCING]} (3)",
    lab.BACKGROUND: "eraser (0)",
}


def _css(rgba: tuple[float, ...]) -> str:
    r, g, b = (int(255 * c) for c in rgba[:3])
    text = "black" if (0.3 * r + 0.6 * g + 0.1 * b) > 140 else "white"
    return f"background-color: rgb({r},{g},{b}); color: {text};"


class CorrectWidget(QWidget):
    """Dock widget with the correction tools.

    Public controls: ``layer_combo``, ``paint_buttons`` (internal class -> button), ``brush_size``,
    ``brush_3d``, ``island_size``, ``islands_button``, ``fill_button``, ``nest_button``,
    ``undo_button``, ``redo_button``, ``revert_button``, ``unlock_button``, ``lock_label``, ``status``.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = Session.for_viewer(napari_viewer)
        self.autosave = self.session.autosave
        self.layer_combo = LayerCombo(napari_viewer, Labels, default=self.session.correct_target)

        self.paint_buttons: dict[int, QPushButton] = {}
        grid = QGridLayout()
        for i, (cls, text) in enumerate(PAINT_CLASSES.items()):
            btn = QPushButton(text)
            if cls != lab.BACKGROUND:
                btn.setStyleSheet(_css(lab.CLASS_COLOURS[cls]))
            btn.clicked.connect(lambda _=False, c=cls: self.pick_label(c))
            self.paint_buttons[cls] = btn
            grid.addWidget(btn, i // 2, i % 2)

        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 100)
        self.brush_size.setValue(5)
        self.brush_size.valueChanged.connect(self._apply_brush)
        self.brush_3d = QCheckBox("3D brush (paint through neighbouring slices)")
        self.brush_3d.toggled.connect(self._apply_brush)
        self.island_size = QSpinBox()
        self.island_size.setRange(1, 1_000_000)
        self.island_size.setValue(100)
        self.island_size.setSuffix(" voxels")
        self.islands_button = QPushButton("Remove small islands")
        self.fill_button = QPushButton("Fill holes (slice by slice)")
        self.nest_button = QPushButton("Nest ET in TC in WT")
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.redo_button = QPushButton("Redo (Ctrl+Shift+Z)")
        self.revert_button = QPushButton("Revert to model output")
        self.revert_button.setToolTip("Put the model's untouched labels back (one undo step)")
        self.unlock_button = QPushButton("Unlock reference...")
        self.unlock_button.setToolTip("Allow editing the ground truth (asks first)")
        self.lock_label = QLabel("")
        self.lock_label.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels layer", self.layer_combo)
        form.addRow(self.lock_label)
        form.addRow("Brush size", self.brush_size)
        form.addRow(self.brush_3d)
        islands = QHBoxLayout()
        islands.addWidget(self.island_size)
        islands.addWidget(self.islands_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.unlock_button)
        lay.addWidget(QLabel("Paint (keys 1, 2, 3 and 0 on the canvas)"))
        lay.addLayout(grid)
        lay.addWidget(QLabel("Clean up (each is one undo step)"))
        lay.addLayout(islands)
        lay.addWidget(self.fill_button)
        lay.addWidget(self.nest_button)
        history = QHBoxLayout()
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        lay.addLayout(history)
        lay.addWidget(self.revert_button)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.islands_button.clicked.connect(
            lambda: self.run_edit("remove small islands",
                                  lambda a: edits.remove_small_islands(a, self.island_size.value())))
        self.fill_button.clicked.connect(self._fill_holes)
        self.nest_button.clicked.connect(lambda: self.run_edit("nest regions", edits.nest_regions))
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.revert_button.clicked.connect(self.revert)
        self.unlock_button.clicked.connect(self.unlock)
        self.layer_combo.currentIndexChanged.connect(self._update_lock)
        self.session.defaults_changed.connect(self._apply_default)
        self._default: Any = None
        self._shown: Any = None
        self._apply_default()

        # The correction tools (core.edit), below the clean-ups; public as ``self.tools``.
        self.tools = CorrectTools(napari_viewer, self.layer, self.layer_combo.set_layer)
        lay.insertWidget(lay.count() - 1, self.tools)
        self.layer_combo.currentIndexChanged.connect(self.tools.confidence.refresh)
        self.session.data_changed.connect(self.tools.confidence.labels_changed)

    def layer(self) -> Labels | None:
        """The labels layer being corrected."""
        return self.layer_combo.layer()

    def _apply_default(self) -> None:
        """Follow the session's default layer when it changes (a new prediction arrived)."""
        default = self.session.correct_target()
        if default is not self._default:
            self._default = default
            self.layer_combo.set_layer(default)
        self._update_lock()

    def _update_lock(self, *_: Any) -> None:
        layer = self.layer()
        if layer is not self._shown:  # a message about another layer would mislead
            self._shown = layer
            self.status.setText("")
        locked = layer is not None and self.session.is_locked(layer)
        self.unlock_button.setVisible(locked)
        self.revert_button.setEnabled(layer is not None and self.session.original_of(layer) is not None)
        self.lock_label.setText("Locked reference: run a model, or unlock it to edit." if locked else "")

    def pick_label(self, cls: int) -> None:
        """Select class ``cls`` for painting (0 erases) and switch the layer to the paint tool."""
        layer = self.layer()
        if layer is None:
            return
        if self.session.pick_label(layer, cls, self.brush_size.value()):
            self._apply_brush()
        else:
            self.status.setText(f"'{layer.name}' is a locked reference.")

    def _apply_brush(self, *_: Any) -> None:
        layer = self.layer()
        if layer is None:
            return
        layer.brush_size = self.brush_size.value()
        layer.n_edit_dimensions = 3 if self.brush_3d.isChecked() else 2

    def _fill_holes(self) -> None:
        layer = self.layer()
        cls = int(layer.selected_label) if layer is not None else lab.BACKGROUND
        if cls not in (lab.NECROTIC, lab.EDEMA, lab.ENHANCING):
            self.status.setText("Pick the class to fill first.")
            return
        self.run_edit(f"fill holes of {lab.CLASS_NAMES[cls]}", lambda a: edits.fill_holes_slicewise(a, cls))

    def run_edit(self, what: str, fn: Callable[[np.ndarray], np.ndarray]) -> int:
        """Apply ``fn`` to the layer's data as one undoable step; returns the changed voxel count."""
        layer = self.layer()
        if layer is None:
            self.status.setText("No labels layer.")
            return 0
        if self.session.is_locked(layer):
            self.status.setText(f"'{layer.name}' is a locked reference: nothing changed.")
            return 0
        n = edits.apply_edit(layer, fn(np.asarray(layer.data)))
        self.status.setText(f"{what.capitalize()}: {n} voxels changed.")
        info(f"{what.capitalize()}: {n} voxels changed.")
        return n

    def undo(self) -> None:
        """Undo the last edit of the layer (brush stroke, fill or clean-up)."""
        layer = self.layer()
        if layer is not None:
            layer.undo()

    def redo(self) -> None:
        """Redo the last undone edit of the layer."""
        layer = self.layer()
        if layer is not None:
            layer.redo()

    def revert(self) -> int:
        """Put the untouched model output back into the prediction (one undo step); voxels changed."""
        layer = self.layer()
        if layer is None or self.session.original_of(layer) is None:
            self.status.setText("This layer has no model output to revert to.")
            return 0
        n = self.session.revert(layer)
        self.status.setText(f"Reverted to the model output: {n} voxels changed.")
        return n

    def unlock(self) -> bool:
        """Unlock the chosen reference for editing, after asking; True when unlocked."""
        layer = self.layer()
        done = layer is not None and self.session.unlock(layer)
        self._update_lock()
        return done
