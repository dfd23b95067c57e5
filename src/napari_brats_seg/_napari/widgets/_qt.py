"""Small Qt helpers shared by the dock widgets."""

from __future__ import annotations

from typing import Any

from napari.layers import Layer
from qtpy.QtWidgets import QComboBox, QWidget


class LayerCombo(QComboBox):
    """A combo box of the viewer's layers of one type, kept in sync with the layer list.

    Parameters
    ----------
    viewer
        The napari viewer.
    layer_type
        The layer class listed (e.g. ``napari.layers.Labels``).
    parent
        Parent widget.
    """

    def __init__(self, viewer: Any, layer_type: type[Layer], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.layer_type = viewer, layer_type
        self._layers: list[Layer] = []
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed,
                   viewer.layers.events.reordered):
            ev.connect(self.refresh)
        self.refresh()

    def refresh(self, _event: Any = None) -> None:
        """Re-list the layers, keeping the current choice when it still exists."""
        current = self.layer()
        self.blockSignals(True)
        self.clear()
        self._layers = [ly for ly in self.viewer.layers if isinstance(ly, self.layer_type)]
        for ly in self._layers:
            self.addItem(ly.name)
        if current in self._layers:
            self.setCurrentIndex(self._layers.index(current))
        elif self._layers:
            self.setCurrentIndex(len(self._layers) - 1)
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Layer | None:
        """The chosen layer, or None."""
        i = self.currentIndex()
        return self._layers[i] if 0 <= i < len(self._layers) else None

    def set_layer(self, layer: Layer) -> None:
        """Choose ``layer`` (it must be one of the listed layers)."""
        self.refresh()
        self.setCurrentIndex(self._layers.index(layer))

    def showPopup(self) -> None:
        """Refresh names (layers may have been renamed) before showing the list."""
        self.refresh()
        super().showPopup()


def add_layer_data(viewer: Any, layer_data: list[tuple[Any, dict, str]]) -> list[Layer]:
    """Add layer-data tuples to the viewer through its public ``add_<type>`` methods."""
    return [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layer_data]
