"""Legend widget: the label classes with their colours and live volumes (mL) of the active labels layer.

The volumes need no reference: they are counts of the layer's voxels times the voxel volume. They
follow every change of the array, whichever way it happens (brush, fill, the plugin's edits, undo
and redo, a new array), through the labels layer's ``paint``, ``labels_update``, ``set_data`` and
``data`` events, coalesced by a short timer. One pass of ``np.count_nonzero`` per class is cheap
enough for the GUI thread on a whole BraTS volume (timings in the README).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ...core import labels as lab
from ..layers import is_scratch, source_of, unwrap

#: Class rows of the legend (internal classes; the resection cavity only when present).
CLASS_ROWS = (lab.NECROTIC, lab.EDEMA, lab.ENHANCING, lab.RESECTION)
#: Events of a labels layer after which its volumes are recounted.
CHANGE_EVENTS = ("paint", "labels_update", "set_data", "data")


def class_volumes(labels: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Volumes (mL) of each internal class (by key: NCR, ED, ET, RC) and of the regions WT, TC, ET.

    Region keys are prefixed: ``"WT"``, ``"TC"``, ``"ET region"`` (ET region = ET class).
    """
    arr = np.asarray(labels)
    ml = float(np.prod(spacing)) / 1000.0
    counts = {k: int(np.count_nonzero(arr == k)) for k in CLASS_ROWS}
    out = {lab.CLASS_KEYS[k]: counts[k] * ml for k in CLASS_ROWS}
    for region, classes in lab.REGION_CLASSES.items():
        out[region if region != "ET" else "ET region"] = sum(counts[c] for c in classes) * ml
    return out


def _swatch(rgba: tuple[float, ...]) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor.fromRgbF(*rgba[:3], 1.0))
    return QIcon(pix)


class LegendWidget(QWidget):
    """The classes' colours and volumes (mL) of the active labels layer, updated live.

    Public controls and state: ``title`` (which layer), ``table`` (rows: classes, then WT, TC, ET),
    :attr:`volumes` (the last counts, see :func:`class_volumes`), :attr:`layer` (the layer shown).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer = unwrap(napari_viewer)
        self.layer: Labels | None = None
        self.volumes: dict[str, float] = {}
        self.title = QLabel("No labels layer")
        self.title.setWordWrap(True)
        self._rows: list[tuple[str, str, tuple[float, ...] | None]] = [
            (lab.CLASS_KEYS[k], f"{lab.CLASS_NAMES[k]} ({lab.CLASS_KEYS[k]})", lab.CLASS_COLOURS[k])
            for k in CLASS_ROWS]
        self._rows += [(r if r != "ET" else "ET region", f"{r}: {lab.REGION_NAMES[r]}", None)
                       for r in lab.REGIONS]
        self.table = QTableWidget(len(self._rows), 2)
        self.table.setHorizontalHeaderLabels(["Class / region", "Volume (mL)"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for r, (_, text, colour) in enumerate(self._rows):
            item = QTableWidgetItem(text)
            if colour is not None:
                item.setIcon(_swatch(colour))
            self.table.setItem(r, 0, item)
            self.table.setItem(r, 1, QTableWidgetItem("-"))
        self.table.resizeRowsToContents()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.table)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self.recount)
        napari_viewer.layers.selection.events.active.connect(self._on_active)
        napari_viewer.layers.events.removed.connect(self._on_removed)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        self._pick_default()
        self._fit_height()

    # -- which layer --------------------------------------------------------------------------
    def set_layer(self, layer: Labels | None) -> None:
        """Show the volumes of ``layer`` (a labels layer of the viewer, or None)."""
        layer = unwrap(layer)
        if layer is self.layer:
            return
        if self.layer is not None:
            for name in CHANGE_EVENTS:
                getattr(self.layer.events, name).disconnect(self._schedule)
            self.layer.events.name.disconnect(self._retitle)
        self.layer = layer
        if layer is not None:
            for name in CHANGE_EVENTS:
                getattr(layer.events, name).connect(self._schedule)
            layer.events.name.connect(self._retitle)
        self._retitle()
        self.recount()

    def _on_active(self, event: Any) -> None:
        if isinstance(event.value, Labels) and not is_scratch(event.value):
            self.set_layer(event.value)

    def _on_inserted(self, event: Any) -> None:
        if self.layer is None and isinstance(event.value, Labels) and not is_scratch(event.value):
            self.set_layer(event.value)

    def _on_removed(self, event: Any) -> None:
        if event.value is self.layer:
            self.layer = None  # its events die with it
            self._pick_default()

    def _pick_default(self) -> None:
        active = self.viewer.layers.selection.active
        if isinstance(active, Labels) and not is_scratch(active):
            self.set_layer(active)
            return
        labels = [ly for ly in self.viewer.layers if isinstance(ly, Labels) and not is_scratch(ly)]
        self.set_layer(labels[-1] if labels else None)

    def _retitle(self, _event: Any = None) -> None:
        self.title.setText(f"Volumes of <b>{self.layer.name}</b>" if self.layer is not None
                           else "No labels layer")

    # -- counts -------------------------------------------------------------------------------
    def _schedule(self, _event: Any = None) -> None:
        self._timer.start()

    def recount(self) -> dict[str, float]:
        """Recount the volumes of the shown layer now and fill the table; returns them."""
        self._timer.stop()
        if self.layer is None or self.layer.ndim != 3:
            self.volumes = {}
        else:
            src = source_of(self.layer)
            spacing = tuple(src.geometry.spacing) if src is not None else tuple(self.layer.scale)
            self.volumes = class_volumes(self.layer.data, spacing)
        for r, (key, _, _) in enumerate(self._rows):
            v = self.volumes.get(key)
            self.table.item(r, 1).setText("-" if v is None else f"{v:.2f}")
        rc = next(r for r, row in enumerate(self._rows) if row[0] == lab.CLASS_KEYS[lab.RESECTION])
        self.table.setRowHidden(rc, not self.volumes.get(lab.CLASS_KEYS[lab.RESECTION]))
        self._fit_height()
        return self.volumes

    def _fit_height(self) -> None:
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount())
                   if not self.table.isRowHidden(r))
        self.table.setFixedHeight(rows + self.table.horizontalHeader().height() + 4)
