"""Three-plane layout: coronal and sagittal views beside napari's (axial) canvas, one linked cursor.

napari 0.9 has one canvas per viewer (multiple viewports, NAP-9, are a draft) and its grid mode
shares one camera and one slice across the cells, so it cannot show three planes of one volume.
What napari does well is the pattern of its *multiple viewer widget* gallery example: extra
``ViewerModel`` s, each drawn by its own ``QtViewer``, that mirror the main viewer's layers. Here
the mirrors share the layers' arrays (no copy of the volume), follow their display settings
(visibility, opacity, colormap, contrast, blending), are refreshed when a labels layer is painted,
filled, undone or redone, and are read-only (painting happens in the main view, where undo,
autosave and the widgets see it). The three views share one world point (``dims.point``): moving
a slice slider or clicking a view (without dragging) moves the other two there, and a cross in the
side views marks the point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.components import ViewerModel
from napari.layers import Image, Labels, Layer, Shapes
from napari.qt import QtViewer
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QSplitter, QVBoxLayout, QWidget

from .layers import unwrap
from .orientation import PLANE_AXES, PLANE_ORDER, OrientationFollower, patient_position, plane_position

#: Display settings mirrored from the main viewer's layers to the side views.
SYNCED = ("visible", "opacity", "blending", "colormap", "contrast_limits", "gamma", "contour",
          "show_selected_label", "selected_label", "name")
#: Events after which a mirrored labels layer is redrawn (paint, fill, undo/redo, new array).
REDRAW_EVENTS = ("labels_update", "paint", "set_data", "data")
#: Side planes, left to right.
SIDE_PLANES = ("coronal", "sagittal")
CROSS_NAME = ".cursor"


def mirror_layer(layer: Layer) -> Layer:
    """A read-only layer showing the same array as ``layer`` (with its display settings)."""
    data, state, kind = layer.as_layer_data_tuple()
    state = {k: v for k, v in state.items() if k not in ("metadata",)}
    copy = Layer.create(data, state, kind)
    if isinstance(copy, Labels):
        copy.editable = False
    return copy


class ThreePlaneView(QWidget):
    """Coronal and sagittal views of the main viewer's layers, linked to its slices.

    Parameters
    ----------
    viewer
        The main napari viewer (its canvas is the axial view).
    convention
        ``"radiological"`` or ``"neurological"``.

    Attributes
    ----------
    models
        Plane name -> the side view's ``ViewerModel``.
    qt_viewers
        Plane name -> its ``QtViewer`` (``qt_viewers["coronal"].screenshot()``).
    """

    def __init__(self, viewer: Any, convention: str = "radiological") -> None:
        super().__init__()
        self.viewer = viewer = unwrap(viewer)
        self.models: dict[str, ViewerModel] = {}
        self.qt_viewers: dict[str, QtViewer] = {}
        self.followers: dict[str, OrientationFollower] = {}
        self._mirrors: dict[int, dict[str, Layer]] = {}
        self._crosses: dict[str, Shapes] = {}
        self._pending: dict[int, Layer] = {}
        self._syncing = False
        self._closed = False
        self._window: QWidget | None = None
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for plane in SIDE_PLANES:
            model = ViewerModel(title=plane)
            self.models[plane] = model
            self.qt_viewers[plane] = qtv = QtViewer(model)
            qtv.setMinimumSize(160, 120)
            splitter.addWidget(qtv)
            model.canvas.overlays.text.visible = True
            model.canvas.overlays.text.font_size = 10
            model.mouse_drag_callbacks.append(self._click_to_point)
            model.dims.events.point.connect(self._point_from_side)
            model.cursor.events.position.connect(self._side_status)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(splitter)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(30)
        self._redraw_timer.timeout.connect(self._redraw_pending)
        for layer in viewer.layers:
            self._add(layer)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)
        viewer.layers.events.moved.connect(self._sync_order)
        viewer.layers.events.reordered.connect(self._sync_order)
        viewer.dims.events.point.connect(self._point_from_main)
        viewer.events.reset_view.connect(self._reset_side_views)
        viewer.mouse_drag_callbacks.append(self._click_to_point)
        for plane, model in self.models.items():
            self.followers[plane] = OrientationFollower(model, convention)
        self._sync_order()
        self._ensure_cross()
        self._point_from_main()
        self._reset_side_views()

    # -- public -------------------------------------------------------------------------------
    def set_convention(self, convention: str) -> None:
        """Radiological or neurological orientation of the side views."""
        for f in self.followers.values():
            f.set_convention(convention)

    def set_point(self, world: tuple[float, ...]) -> None:
        """Move the linked cursor (all three views) to a world point (LPS mm, ``(z, y, x)``)."""
        self.viewer.dims.point = tuple(float(v) for v in world)

    def mirror(self, layer: Layer, plane: str) -> Layer | None:
        """The side-view layer that mirrors ``layer`` in ``plane`` (None for an unmirrored layer)."""
        return self._mirrors.get(id(unwrap(layer)), {}).get(plane)

    def watch_window(self, height_fraction: float = 0.4) -> None:
        """Call once docked: close the side views with the main window; size the dock.

        The right and left dock areas keep the window's full height (the bottom dock lies under
        the canvas only) and the side views take ``height_fraction`` of the window's height.
        """
        self._window = win = self.window()
        win.installEventFilter(self)
        if isinstance(win, QMainWindow):
            win.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
            win.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
            dock = self.parentWidget()
            while dock is not None and not isinstance(dock, QDockWidget):
                dock = dock.parentWidget()
            if dock is not None:
                win.resizeDocks([dock], [int(win.height() * height_fraction)], Qt.Orientation.Vertical)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Close the side views when the main window closes."""
        if obj is self._window and event.type() == QEvent.Type.Close:
            self.close_views()
        return False

    def close_views(self) -> None:
        """Disconnect from the main viewer and close the side canvases (the widget goes away)."""
        if self._closed:
            return
        self._closed = True
        if self._window is not None:
            self._window.removeEventFilter(self)
            self._window = None
        self._redraw_timer.stop()
        ev = self.viewer.layers.events
        for sig, slot in ((ev.inserted, self._on_inserted), (ev.removed, self._on_removed),
                          (ev.moved, self._sync_order), (ev.reordered, self._sync_order),
                          (self.viewer.dims.events.point, self._point_from_main),
                          (self.viewer.events.reset_view, self._reset_side_views)):
            sig.disconnect(slot)
        if self._click_to_point in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._click_to_point)
        for layer in list(self.viewer.layers):
            self._unmirror(layer)
        self._mirrors.clear()
        self._crosses.clear()
        for qtv in self.qt_viewers.values():
            qtv.close()
            qtv.deleteLater()
        self.qt_viewers.clear()

    # -- layers -------------------------------------------------------------------------------
    def _add(self, layer: Layer) -> None:
        if not isinstance(layer, Image | Labels) or layer.ndim != 3:
            return
        mirrors = {}
        for plane, model in self.models.items():
            mirrors[plane] = m = mirror_layer(layer)
            model.layers.append(m)
            model.dims.order = PLANE_ORDER[plane]
        self._mirrors[id(layer)] = mirrors
        for name in SYNCED:
            if hasattr(layer.events, name):
                getattr(layer.events, name).connect(self._sync_property)
        if isinstance(layer, Labels):
            for name in REDRAW_EVENTS:
                getattr(layer.events, name).connect(self._queue_redraw)
        if sum(len(m.layers) for m in self.models.values()) == len(self.models):
            self._reset_side_views()

    def _on_inserted(self, event: Any) -> None:
        self._add(event.value)
        self._sync_order()
        self._ensure_cross()

    def _on_removed(self, event: Any) -> None:
        self._unmirror(event.value)

    def _unmirror(self, layer: Layer) -> None:
        mirrors = self._mirrors.pop(id(layer), None)
        if mirrors is None:
            return
        for plane, m in mirrors.items():
            if m in self.models[plane].layers:
                self.models[plane].layers.remove(m)
        for name in SYNCED:
            if hasattr(layer.events, name):
                getattr(layer.events, name).disconnect(self._sync_property)
        if isinstance(layer, Labels):
            for name in REDRAW_EVENTS:
                getattr(layer.events, name).disconnect(self._queue_redraw)

    def _sync_order(self, _event: Any = None) -> None:
        for plane, model in self.models.items():
            wanted = [self._mirrors[id(ly)][plane] for ly in self.viewer.layers if id(ly) in self._mirrors]
            wanted += [ly for ly in model.layers if ly.name == CROSS_NAME]
            idx = [model.layers.index(m) for m in wanted if m in model.layers]
            if idx != list(range(len(idx))):
                model.layers.move_multiple(idx, 0)

    def _sync_property(self, event: Any) -> None:
        layer, name = event.source, event.type
        for m in self._mirrors.get(id(layer), {}).values():
            value = getattr(layer, name)
            if name == "colormap" and isinstance(layer, Image):
                value = layer.colormap
            try:
                setattr(m, name, value)
            except (ValueError, TypeError, AttributeError):  # a setting the mirror cannot take
                continue

    def _queue_redraw(self, event: Any) -> None:
        layer = event.source
        self._pending[id(layer)] = layer
        if event.type == "data":  # a new array: the mirrors take it
            for m in self._mirrors.get(id(layer), {}).values():
                if m.data is not layer.data:
                    m.data = layer.data
        self._redraw_timer.start()

    def _redraw_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for layer_id in pending:
            for m in self._mirrors.get(layer_id, {}).values():
                m.refresh()

    # -- cursor -------------------------------------------------------------------------------
    def _point_from_main(self, _event: Any = None) -> None:
        point = tuple(self.viewer.dims.point)
        if len(point) != 3:
            return
        self._syncing = True
        try:
            for model in self.models.values():
                if model.dims.ndim == 3 and tuple(model.dims.point) != point:
                    model.dims.point = point
        finally:
            self._syncing = False
        self._update_cross(point)

    def _point_from_side(self, event: Any) -> None:
        if self._syncing:
            return
        point = tuple(event.value)
        if len(point) == 3 and tuple(self.viewer.dims.point) != point:
            self.viewer.dims.point = point

    def _click_to_point(self, viewer: Any, event: Any) -> Any:
        """A click without dragging moves the linked cursor there (drags pan as usual).

        In the main view only while the active layer is in pan/zoom mode, so painting never
        moves the slices.
        """
        if viewer is self.viewer:
            active = viewer.layers.selection.active
            if active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
                return
        start = np.asarray(event.pos, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or float(np.abs(np.asarray(event.pos) - start).max()) > 3
            yield
        if not moved and len(event.position) == 3:
            self.set_point(tuple(event.position))

    def _ensure_cross(self) -> None:
        grid = next((ly for ly in self.viewer.layers if id(ly) in self._mirrors), None)
        if grid is None:
            return
        for plane, model in self.models.items():
            if plane not in self._crosses and len(model.layers) and model.dims.ndim == 3:
                # On the images' grid, so that the cross is sliced with them.
                cross = Shapes(ndim=3, name=CROSS_NAME, edge_color="cyan", edge_width=0.4,
                               face_color="transparent", opacity=0.7, scale=grid.scale,
                               translate=grid.translate, units=grid.units)
                cross.editable = False
                self._crosses[plane] = cross
                model.layers.append(cross)
                model.layers.selection.active = None
        self._update_cross(tuple(self.viewer.dims.point))

    def _update_cross(self, point: tuple[float, ...]) -> None:
        if len(point) != 3 or not self._crosses:
            return
        lo, hi = self._extent()
        for plane, cross in self._crosses.items():
            v, h = PLANE_AXES[plane]
            lines = []
            for axis in (v, h):
                a, b = np.array(point, dtype=float), np.array(point, dtype=float)
                a[axis], b[axis] = lo[axis], hi[axis]
                ends = (np.stack([a, b]) - np.asarray(cross.translate)) / np.asarray(cross.scale)
                ends[:, [i for i in range(3) if i not in (v, h)]] = np.round(
                    ends[:, [i for i in range(3) if i not in (v, h)]])  # on a slice of the grid
                lines.append(ends)
            cross.data = lines
            cross.shape_type = ["line", "line"]
            cross.edge_color = "cyan"
            self.models[plane].canvas.overlays.text.text = plane_position(point, plane)

    def _extent(self) -> tuple[np.ndarray, np.ndarray]:
        layers = [ly for ly in self.viewer.layers if id(ly) in self._mirrors]
        if not layers:
            return np.zeros(3), np.ones(3)
        ext = self.viewer.layers.get_extent(layers).world
        return np.asarray(ext[0], dtype=float), np.asarray(ext[1], dtype=float)

    def _side_status(self, event: Any) -> None:
        pos = event.value
        over = any(m.cursor is event.source and getattr(m, "mouse_over_canvas", True)
                   for m in self.models.values())
        if len(pos) == 3 and over:
            self.viewer.status = f"{patient_position(pos)}"

    def _reset_side_views(self, _event: Any = None) -> None:
        for model in self.models.values():
            if len(model.layers):
                model.reset_view()
