"""The Correct widget's correction tools section: a thin adapter over :mod:`...core.edit`.

Each tool reads the target labels layer (and, for the grow from seeds and the intensity window, the
case's image layers), calls a napari-free function of :mod:`napari_brats_seg.core.edit` and writes the
difference back through :func:`..edits.apply_edit`: ONE undo step of the layer's own history (which
napari 0.9 keeps across slice changes, 100 steps deep), and a ``paint`` event (autosave listens).
A tool used wrongly (no seeds, one outlined slice, layers of other cases or grids, a read-only
layer) shows a notification and changes nothing, so nothing enters the history.

Click tools (pick a component, pick the intensity window, masked brush, masked fill, split a core
component) are armed by checkable buttons and work through a viewer mouse callback; their public
entry points (:meth:`CorrectTools.component_at`, :meth:`.correct_masked.MaskedSection.masked_brush_stroke`,
...) take data coordinates, so they can be driven without a mouse. The larger sections live in their
own modules (``correct_redraw``, ``correct_grow``, ``correct_masked``, ``correct_split``,
``correct_confidence``), each composed here as an attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ...core import labels as lab
from ...core.edit import EditError, components, interpolate, logic, margins
from ...core.errors import BratsSegError
from .. import edits
from ..layers import source_of
from ._qt import LayerCombo

#: Targets of margin and smoothing: display name -> class or region.
TARGETS: dict[str, int | str] = {
    **{lab.CLASS_NAMES[c]: c for c in lab.TUMOUR_CLASSES},
    "whole tumour (WT)": "WT", "tumour core (TC)": "TC",
}
#: Armed click modes.
CLICK_MODES = ("component", "window", "brush", "fill", "split")


def _class_combo(with_all: str | None = None) -> QComboBox:
    box = QComboBox()
    if with_all:
        box.addItem(with_all, None)
    for c in lab.TUMOUR_CLASSES:
        box.addItem(lab.CLASS_NAMES[c], c)
    return box


def _spin(lo: float, hi: float, value: float, suffix: str = " mm", step: float = 0.5) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


def _group(title: str, *rows: Any) -> QCollapsible:
    """A collapsible titled section of form rows: ``(label, field)`` pairs or single widgets/layouts."""
    form = QFormLayout()
    for r in rows:
        if isinstance(r, tuple):
            form.addRow(*r)
        else:
            form.addRow(r)
    inner = QWidget()
    inner.setLayout(form)
    box = QCollapsible(title)
    box.addWidget(inner)
    box.collapse(animate=False)
    return box


#: What a section says when no labels layer is open to correct.
NO_TARGET = "Open a labels layer to correct first."

class CorrectTools(QWidget):
    """Correction tools for the labels layer returned by ``get_layer``.

    Public controls: ``component_scope``, ``component_action``, ``relabel_class``, ``pick_button``;
    ``target_combo``, ``margin_mm``, ``margin_button``, ``smooth_method``, ``smooth_mm``,
    ``smooth_button``; ``interp_class``, ``interp_button``; ``logic_source``, ``logic_op``,
    ``logic_class``, ``logic_button``; ``status``; ``redraw``, the
    :class:`.correct_redraw.RedrawSection` (``redraw.outline_button``, ``redraw.redraw_button``...);
    ``grow``, the :class:`.correct_grow.GrowSection` (``grow.seeds_button``, ``grow.grow_button``...);
    ``masked``, the :class:`.correct_masked.MaskedSection` (``masked.mask_sequence``,
    ``masked.mask_brush_button``...);
    ``split``, the :class:`.correct_split.SplitSection` (``split.threshold``, ``split.split_button``...);
    ``confidence``, the :class:`.correct_confidence.ConfidenceSection` (``confidence.slider``...).

    Parameters
    ----------
    viewer
        The napari viewer.
    get_layer
        Returns the labels layer being corrected (or None).
    set_layer
        Makes a layer the target again (after the seeds layer was added), optional.
    """

    def __init__(self, viewer: Any, get_layer: Callable[[], Labels | None],
                 set_layer: Callable[[Labels], None] | None = None) -> None:
        super().__init__()
        self.viewer, self._get_layer, self._set_layer = viewer, get_layer, set_layer
        self.click_mode: str | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        #: The collapsible sections, in order (the first one open).
        self.sections = [self._component_group(), self._margin_group(), self._interp_group(),
                         self._redraw_group(), self._grow_group(), self._mask_group(), self._split_group(),
                         self._confidence_group(), self._logic_group()]
        for section in self.sections:
            lay.addWidget(section)
        self.sections[0].expand(animate=False)
        lay.addWidget(self.status)
        viewer.mouse_drag_callbacks.append(self._on_mouse)

    # -- construction ----------------------------------------------------------------------
    def _component_group(self) -> QCollapsible:
        self.component_scope = QComboBox()
        self.component_scope.addItem("its class", "class")
        self.component_scope.addItem("whole tumour", "tumour")
        self.component_action = QComboBox()
        for a in ("delete", "keep", "relabel"):
            self.component_action.addItem(a, a)
        self.relabel_class = _class_combo()
        self.pick_button = self._arm_button("Click a component", "component")
        return _group("Pick a component (3D, one click)", ("Component of", self.component_scope),
                      ("Action", self.component_action), ("Relabel to", self.relabel_class), self.pick_button)

    def _margin_group(self) -> QCollapsible:
        self.target_combo = QComboBox()
        for name, t in TARGETS.items():
            self.target_combo.addItem(name, t)
        self.margin_mm = _spin(-50, 50, 2.0)
        self.margin_button = QPushButton("Grow / shrink (negative) by")
        self.smooth_method = QComboBox()
        for m in ("closing", "opening", "median"):
            self.smooth_method.addItem(m, m)
        self.smooth_mm = _spin(0.5, 30, 2.0)
        self.smooth_button = QPushButton("Smooth")
        self.margin_button.clicked.connect(self.apply_margin)
        self.smooth_button.clicked.connect(self.apply_smoothing)
        return _group("Margin and smoothing (mm)", ("Class", self.target_combo),
                      (self.margin_button, self.margin_mm),
                      (self.smooth_button, _row(self.smooth_method, self.smooth_mm)))

    def _interp_group(self) -> QCollapsible:
        self.interp_class = _class_combo()
        self.interp_button = QPushButton("Fill between slices")
        self.interp_button.clicked.connect(self.fill_between)
        return _group("Fill between slices (of the slicing axis)", ("Outlined class", self.interp_class),
                      self.interp_button)

    def _redraw_group(self) -> QCollapsible:
        from .correct_redraw import RedrawSection  # it builds on this module's helpers

        self.redraw = RedrawSection(self)
        return self.redraw.group

    def _grow_group(self) -> QCollapsible:
        from .correct_grow import GrowSection  # it builds on this module's helpers

        self.grow = GrowSection(self)
        return self.grow.group

    def _mask_group(self) -> QCollapsible:
        from .correct_masked import MaskedSection  # it builds on this module's helpers

        self.masked = MaskedSection(self)
        return self.masked.group

    def _split_group(self) -> QCollapsible:
        from .correct_split import SplitSection  # it builds on this module's helpers

        self.split = SplitSection(self)
        return self.split.group

    def _confidence_group(self) -> QCollapsible:
        from .correct_confidence import ConfidenceSection  # it builds on this module's helpers

        self.confidence = ConfidenceSection(self)
        return self.confidence.group

    def _logic_group(self) -> QCollapsible:
        self.logic_source = LayerCombo(self.viewer, Labels)
        self.logic_op = QComboBox()
        for op in logic.OPERATIONS:
            self.logic_op.addItem(op, op)
        self.logic_class = _class_combo("all tumour classes")
        self.logic_button = QPushButton("Apply to the corrected layer")
        self.logic_button.clicked.connect(self.apply_logic)
        return _group("Between layers", ("From layer", self.logic_source), ("Operation", self.logic_op),
                      ("Class", self.logic_class), self.logic_button)

    def _arm_button(self, text: str, mode: str) -> QPushButton:
        btn = QPushButton(text)
        btn.setCheckable(True)
        btn.toggled.connect(lambda on, m=mode: self.arm(m if on else None, _from=m))
        return btn

    # -- helpers ---------------------------------------------------------------------------
    def layer(self) -> Labels | None:
        """The labels layer being corrected."""
        return self._get_layer()

    def _say(self, text: str, warn: bool = False) -> None:
        self.status.setText(text)
        (show_warning if warn else show_info)(text)

    def target_or_say(self) -> Labels | None:
        """The labels layer being corrected, or None after saying that one must be opened first."""
        layer = self.layer()
        if layer is None:
            self._say(NO_TARGET, warn=True)
        return layer

    def _editable_layer(self) -> Labels | None:
        layer = self.layer()
        if layer is None:
            self._say("No labels layer to correct.", warn=True)
            return None
        if not layer.editable:
            self._say(f"{layer.name} is read-only: pick an editable labels layer.", warn=True)
            return None
        return layer

    def spacing(self, layer: Any) -> tuple[float, float, float]:
        """The layer's voxel spacing ``(z, y, x)`` in mm (its case geometry, else its scale)."""
        src = source_of(layer)
        sp = src.geometry.spacing if src is not None else tuple(layer.scale[-3:])
        return tuple(float(s) for s in sp)  # type: ignore[return-value]

    def slicing_axis(self) -> int:
        """The axis the 2D view slices across (0, axial, in the 3D view)."""
        dims = self.viewer.dims
        return int(dims.order[0]) if dims.ndisplay == 2 and dims.ndim == 3 else 0

    def apply(self, what: str, fn: Callable[[np.ndarray], np.ndarray]) -> int:
        """Apply ``fn`` to the target's data as ONE undo step; a refused tool changes nothing.

        Returns the number of changed voxels (0 when refused).
        """
        layer = self._editable_layer()
        if layer is None:
            return 0
        try:
            new = fn(np.asarray(layer.data))
        except (EditError, BratsSegError, KeyError) as exc:
            self._say(f"{what}: {exc}", warn=True)
            return 0
        n = edits.apply_edit(layer, new)
        self._say(f"{what}: {n} voxels changed")
        return n

    # -- tools -----------------------------------------------------------------------------
    def component_at(self, point: Sequence[float]) -> int:
        """Delete, keep or relabel the component under the data point ``(z, y, x)``."""
        scope, action = self.component_scope.currentData(), self.component_action.currentData()
        if action == "delete":
            return self.apply("delete component", lambda a: components.delete_component(a, point, scope))
        if action == "keep":
            return self.apply("keep component", lambda a: components.keep_component(a, point, scope))
        new = int(self.relabel_class.currentData())
        return self.apply(f"relabel component to {lab.CLASS_NAMES[new]}",
                          lambda a: components.relabel_component(a, point, new, scope))

    def apply_margin(self) -> int:
        """Grow or shrink the chosen class by the margin in mm."""
        layer, t, mm = self.layer(), self.target_combo.currentData(), self.margin_mm.value()
        sp = self.spacing(layer) if layer is not None else None
        return self.apply(f"margin {mm:+g} mm of {self.target_combo.currentText()}",
                          lambda a: margins.margin(a, t, mm, sp))

    def apply_smoothing(self) -> int:
        """Smooth the chosen class (closing, opening or median of the size in mm)."""
        layer, t = self.layer(), self.target_combo.currentData()
        method, mm = self.smooth_method.currentData(), self.smooth_mm.value()
        sp = self.spacing(layer) if layer is not None else None
        return self.apply(f"{method} {mm:g} mm of {self.target_combo.currentText()}",
                          lambda a: margins.smooth(a, t, method, mm, sp))

    def fill_between(self) -> int:
        """Interpolate the outlined class across the empty slices between its outlined slices."""
        layer, cls, axis = self.layer(), int(self.interp_class.currentData()), self.slicing_axis()
        sp = self.spacing(layer) if layer is not None else None
        return self.apply("fill between slices", lambda a: interpolate.fill_between_slices(a, cls, axis, sp))

    def apply_logic(self) -> int:
        """Combine the source layer into the corrected layer (copy, union, subtract, intersect)."""
        target, source = self.layer(), self.logic_source.layer()
        op, cls = self.logic_op.currentData(), self.logic_class.currentData()

        def fn(a: np.ndarray) -> np.ndarray:
            if source is None:
                raise EditError("pick the layer to take labels from")
            if source is target:
                raise EditError("the source and the corrected layer are the same layer")
            ts, ss = source_of(target), source_of(source)
            logic.check_same_grid(a.shape, np.shape(source.data), target_case=ts and ts.case_id,
                                  source_case=ss and ss.case_id)
            if ts is not None and ss is not None and (why := ts.geometry.agrees_with(ss.geometry)):
                raise EditError(f"the layers lie on different grids: {why}")
            if not np.allclose(target.scale, source.scale) or not np.allclose(target.translate, source.translate):
                raise EditError("the layers lie on different grids: their scale or position differ")
            return logic.combine(a, np.asarray(source.data), op, cls)

        return self.apply(f"{op} from {source.name if source is not None else '?'}", fn)

    # -- mouse -----------------------------------------------------------------------------
    def arm(self, mode: str | None, _from: str | None = None) -> None:
        """Arm a click tool (``component``, ``window``, ``brush``, ``fill``, ``split``) or, with None, disarm."""
        if mode is None and _from is not None and self.click_mode != _from:
            return
        self.click_mode = mode
        buttons = {"component": self.pick_button, **self.masked.buttons, "split": self.split.split_button}
        for m, btn in buttons.items():
            btn.blockSignals(True)
            btn.setChecked(m == mode)
            btn.blockSignals(False)
        self.viewer.camera.mouse_pan = mode != "brush"
        layer = self.layer()
        if mode is not None and layer is not None:
            layer.mode = "pan_zoom"       # the click is the tool's, not napari's brush
            self.viewer.layers.selection.active = layer

    def _on_mouse(self, viewer: Any, event: Any) -> Generator[None, None, None]:
        layer, mode = self.layer(), self.click_mode
        if mode is None or layer is None:
            return
        point = tuple(float(v) for v in layer.world_to_data(event.position))
        if mode == "component":
            self.component_at(point)
        elif mode == "window":
            self.masked.pick_window(point)
        elif mode == "fill":
            self.masked.masked_fill_at(point)
        elif mode == "split":
            self.split.split(point)
        elif mode == "brush":
            yield from self.masked.brush_drag(layer, point, event)
