"""Small Qt helpers shared by the dock widgets."""

from __future__ import annotations

from collections.abc import Callable
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

    def __init__(self, viewer: Any, layer_type: type[Layer], parent: QWidget | None = None, *,
                 default: Callable[[], Layer | None] | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.layer_type = viewer, layer_type
        #: Chooses the layer when the current one is gone (the last listed one when None).
        self.default = default
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
        elif self.default is not None:
            self.setCurrentIndex(self._index_of(self.default()))
        elif self._layers:
            self.setCurrentIndex(len(self._layers) - 1)
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Layer | None:
        """The chosen layer, or None."""
        i = self.currentIndex()
        return self._layers[i] if 0 <= i < len(self._layers) else None

    def set_layer(self, layer: Layer | None) -> None:
        """Choose ``layer`` (one of the listed layers, proxy or not); None chooses nothing."""
        self.refresh()
        if layer is None:
            self.setCurrentIndex(-1)
            return
        self.setCurrentIndex(self._index_of(layer))

    def _index_of(self, layer: Layer | None) -> int:
        target = getattr(layer, "__wrapped__", layer)
        found = [i for i, ly in enumerate(self._layers) if getattr(ly, "__wrapped__", ly) is target]
        return found[0] if found and layer is not None else -1

    def showPopup(self) -> None:
        """Refresh names (layers may have been renamed) before showing the list."""
        self.refresh()
        super().showPopup()


def add_layer_data(viewer: Any, layer_data: list[tuple[Any, dict, str]]) -> list[Layer]:
    """Add layer-data tuples to the viewer through its public ``add_<type>`` methods."""
    return [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layer_data]
