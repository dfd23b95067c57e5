"""The Correct widget's correction tools section: a thin adapter over :mod:`...core.edit`.

Each tool reads the target labels layer (and, for the seeds and the intensity window, the case's
image layers), calls a napari-free function of :mod:`napari_brats_seg.core.edit` and writes the
difference back through :func:`..edits.apply_edit`: ONE undo step of the layer's own history (which
napari 0.9 keeps across slice changes, 100 steps deep), and a ``paint`` event (autosave listens).
A tool used wrongly (no seeds, one outlined slice, layers of other cases or grids, a read-only
layer) shows a notification and changes nothing, so nothing enters the history.

Click tools (pick a component, pick the intensity window, masked brush, masked fill) are armed by
checkable buttons and work through a viewer mouse callback; their public entry points
(:meth:`CorrectTools.component_at`, :meth:`CorrectTools.masked_brush_stroke`, ...) take data
coordinates, so they can be driven without a mouse.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
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
from ...core.case import MODALITIES, MODALITY_NAMES
from ...core.edit import EditError, components, grow, interpolate, logic, margins, masks
from ...core.errors import BratsSegError
from .. import edits
from ..layers import case_from_layers, label_colormap, source_of
from ..worker import Task, start_task
from ._qt import LayerCombo
from ._scratch import Applied, add_scratch_layer, reapply_start
from ._strokes import MaskedStroke

#: Targets of margin and smoothing: display name -> class or region.
TARGETS: dict[str, int | str] = {
    **{lab.CLASS_NAMES[c]: c for c in lab.TUMOUR_CLASSES},
    "whole tumour (WT)": "WT", "tumour core (TC)": "TC",
}
#: Seed buttons: seed value -> text.
SEED_CLASSES: dict[int, str] = {**{c: lab.CLASS_NAMES[c] for c in lab.TUMOUR_CLASSES},
                                grow.BACKGROUND_SEED: "background"}
#: Armed click modes.
CLICK_MODES = ("component", "window", "brush", "fill", "split")
#: What grow from seeds may change (3D Slicer's editable area): every voxel of its box, or one label's.
GROW_EDITABLE: dict[str, tuple[int, ...] | None] = {
    "everything": None, "only background": (lab.BACKGROUND,),
    **{f"only {lab.CLASS_NAMES[c]}": (c,) for c in lab.TUMOUR_CLASSES}}


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


class CorrectTools(QWidget):
    """Correction tools for the labels layer returned by ``get_layer``.

    Public controls: ``component_scope``, ``component_action``, ``relabel_class``, ``pick_button``;
    ``target_combo``, ``margin_mm``, ``margin_button``, ``smooth_method``, ``smooth_mm``,
    ``smooth_button``; ``interp_class``, ``interp_button``; ``seeds_button``, ``seed_buttons``,
    ``grow_margin``, ``grow_editable``, ``grow_button``, ``grow_auto``; ``mask_sequence``, ``mask_low``,
    ``mask_high``, ``mask_pick_button``, ``mask_brush_button``, ``mask_fill_button``;
    ``logic_source``, ``logic_op``, ``logic_class``, ``logic_button``; ``status``; ``redraw``, the
    :class:`.correct_redraw.RedrawSection` (``redraw.outline_button``, ``redraw.redraw_button``...);
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
        self.seeds_layer: Labels | None = None
        self.grow_task: Task | None = None
        #: The last grow: (layer, seeds layer, labels before it, labels after it).
        self._grown: Applied | None = None
        self.click_mode: str | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._grow_timer = QTimer(self)
        self._grow_timer.setSingleShot(True)
        self._grow_timer.setInterval(400)
        self._grow_timer.timeout.connect(self.grow)
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
        self.seeds_button = QPushButton("New seeds layer")
        self.seeds_button.clicked.connect(self.make_seeds_layer)
        self.seed_buttons: dict[int, QPushButton] = {}
        for v, text in SEED_CLASSES.items():
            self.seed_buttons[v] = QPushButton(text)
            self.seed_buttons[v].clicked.connect(lambda _=False, s=v: self.pick_seed(s))
        self.grow_margin = _spin(0, 60, 10.0)
        self.grow_button = QPushButton("Grow from seeds")
        self.grow_button.clicked.connect(self.grow)
        self.grow_auto = QCheckBox("Grow again as strokes are added")
        self.grow_editable = QComboBox()
        self.grow_editable.addItems(list(GROW_EDITABLE))
        self.grow_editable.setToolTip("Which voxels the grow may change (3D Slicer's editable area): only "
                                      "background grows a missed part, only edema carves an overflow out")
        return _group("Grow from seeds (random walker, 4 sequences)", self.seeds_button,
                      ("Paint", _row(*self.seed_buttons.values())), ("Margin around strokes", self.grow_margin),
                      ("May change", self.grow_editable), self.grow_button, self.grow_auto)

    def _mask_group(self) -> QCollapsible:
        self.mask_sequence = QComboBox()
        for m in MODALITIES:
            self.mask_sequence.addItem(MODALITY_NAMES[m], m)
        self.mask_low = _spin(-1e6, 1e6, 0.0, "", 10)
        self.mask_high = _spin(-1e6, 1e6, 1e6, "", 10)
        self.mask_pick_button = self._arm_button("Pick window from a voxel", "window")
        self.mask_brush_button = self._arm_button("Masked brush", "brush")
        self.mask_fill_button = self._arm_button("Masked fill", "fill")
        return _group("Intensity-limited painting (selected label, brush size)", ("Sequence", self.mask_sequence),
                      ("Window", _row(self.mask_low, self.mask_high)), self.mask_pick_button,
                      _row(self.mask_brush_button, self.mask_fill_button))

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

    # -- grow from seeds -------------------------------------------------------------------
    def make_seeds_layer(self) -> Labels | None:
        """Add (or return) the seeds layer of the target: strokes per class and of background."""
        target = self.layer()
        if target is None:
            self._say("Open a labels layer to correct first.", warn=True)
            return None
        if self.seeds_layer is not None and self.seeds_layer in self.viewer.layers:
            return self.seeds_layer
        from napari.utils.colormaps import DirectLabelColormap

        colours = dict(label_colormap().color_dict)
        colours[grow.BACKGROUND_SEED] = np.array([0.55, 0.55, 0.9, 1.0])
        self.seeds_layer = add_scratch_layer(self.viewer, target, "seeds", DirectLabelColormap(color_dict=colours))
        self.seeds_layer.events.paint.connect(self._on_seed_paint)
        self.status.setText("seeds layer added: paint strokes of each label (and of background) into it, "
                            "then Grow from seeds")
        if self._set_layer is not None:
            self._set_layer(target)
        return self.seeds_layer

    def pick_seed(self, value: int) -> None:
        """Paint strokes of a class (1, 2, 3) or of background into the seeds layer."""
        seeds = self.make_seeds_layer()
        if seeds is None:
            return
        self.arm(None)
        seeds.selected_label = int(value)
        seeds.mode = "paint"
        self.viewer.layers.selection.active = seeds

    def _on_seed_paint(self, _event: Any = None) -> None:
        if self.grow_auto.isChecked():
            self._grow_timer.start()

    def _case_images(self, layer: Labels) -> np.ndarray:
        src = source_of(layer)
        case = case_from_layers(self.viewer.layers, src.case_id if src is not None else None)
        if case.shape != tuple(layer.data.shape):
            raise EditError(f"the case's sequences {case.shape} do not lie on the layer's grid {layer.data.shape}")
        return case.stack(MODALITIES)

    def grow(self) -> Task | None:
        """Grow the target's labels from the seeds layer's strokes, in the background (one undo step)."""
        if self.grow_task is not None:
            self._grow_timer.start()      # strokes added meanwhile: grow again once this run ends
            return self.grow_task
        layer = self._editable_layer()
        if layer is None:
            return None
        if self.seeds_layer is None or self.seeds_layer not in self.viewer.layers:
            self._say("grow from seeds: paint seed strokes first (New seeds layer)", warn=True)
            return None
        seeds, sp, margin_mm = np.array(self.seeds_layer.data), self.spacing(layer), self.grow_margin.value()
        try:
            grow.seed_box(seeds, margin_mm, sp)
            images = self._case_images(layer)
        except (EditError, KeyError) as exc:
            self._say(f"grow from seeds: {exc}", warn=True)
            return None

        def work(on_progress: Any = None, cancel: Any = None) -> tuple[tuple[slice, ...], np.ndarray]:
            return grow.grow_region(images, seeds, sp, margin_mm=margin_mm, on_progress=on_progress, cancel=cancel)

        def put(result: tuple[tuple[slice, ...], np.ndarray]) -> None:
            box, grown = result
            editable = GROW_EDITABLE[self.grow_editable.currentText()]
            start = reapply_start(self._grown, layer, self.seeds_layer)   # a re-grow replaces the last grow

            def fn(a: np.ndarray) -> np.ndarray:
                return grow.paste_grown(start, box, grown, editable)

            if layer in self.viewer.layers:
                self.apply("grow from seeds", fn)
                self._grown = (layer, self.seeds_layer, start, np.array(layer.data, copy=True))

        self.status.setText("growing from seeds...")
        self.grow_task = start_task(work, description="grow from seeds", on_success=put,
                                    on_done=lambda: setattr(self, "grow_task", None))
        return self.grow_task

    # -- intensity-limited painting --------------------------------------------------------
    def window(self) -> masks.Window:
        """The intensity window ``(low, high)`` of the spin boxes."""
        return (self.mask_low.value(), self.mask_high.value())

    def mask_image(self, layer: Labels, modality: str | None = None) -> np.ndarray:
        """The chosen sequence (or ``modality``) of the target's case, on the target's grid."""
        m, src = modality or self.mask_sequence.currentData(), source_of(layer)
        for ly in self.viewer.layers:
            s = source_of(ly)
            if isinstance(ly, Image) and s is not None and s.modality == m and (
                    src is None or s.case_id == src.case_id):
                if tuple(ly.data.shape) != tuple(layer.data.shape):
                    break
                return np.asarray(ly.data)
        raise EditError(f"no {MODALITY_NAMES[m]} image of this case on the layer's grid is open")

    def pick_window(self, point: Sequence[float]) -> masks.Window | None:
        """Set the window from the voxel under the data point (its value plus or minus 10 % of the range)."""
        layer = self.layer()
        if layer is None:
            return None
        try:
            lo, hi = masks.window_at(self.mask_image(layer), point)
        except EditError as exc:
            self._say(f"intensity window: {exc}", warn=True)
            return None
        self.mask_low.setValue(lo)
        self.mask_high.setValue(hi)
        self.status.setText(f"intensity window [{lo:.4g}, {hi:.4g}]")
        return (lo, hi)

    def begin_masked_stroke(self) -> MaskedStroke | None:
        """Start a masked brush stroke with the layer's label and brush size (None if refused)."""
        layer = self._editable_layer()
        if layer is None:
            return None
        sp = self.spacing(layer)
        axis = self.slicing_axis() if layer.n_edit_dimensions == 2 else None
        plane = [s for i, s in enumerate(sp) if i != (axis if axis is not None else 0)]
        radius = max(float(layer.brush_size) / 2.0, 0.5) * min(plane)
        try:
            return MaskedStroke(layer, self.mask_image(layer), radius, int(layer.selected_label), axis, sp,
                                self.window())
        except EditError as exc:
            self._say(f"masked brush: {exc}", warn=True)
            return None

    def masked_brush_stroke(self, points: Sequence[Sequence[float]]) -> int:
        """Paint a stroke through data points with the layer's brush, limited to the window: ONE undo step."""
        stroke = self.begin_masked_stroke()
        if stroke is None:
            return 0
        for p in points:
            stroke.dab(p)
        return self._end_stroke(stroke)

    def _end_stroke(self, stroke: MaskedStroke) -> int:
        n = stroke.end()
        self.status.setText(f"masked brush: {n} voxels changed")
        return n

    def masked_fill_at(self, point: Sequence[float]) -> int:
        """Fill the region under the data point with the selected label, limited to the window."""
        layer = self.layer()
        if layer is None:
            return self.apply("masked fill", lambda a: a)

        def fn(a: np.ndarray) -> np.ndarray:
            axis = self.slicing_axis() if layer.n_edit_dimensions == 2 else None
            return masks.masked_fill(a, self.mask_image(layer), point, int(layer.selected_label), self.window(), axis)

        return self.apply("masked fill", fn)

    # -- mouse -----------------------------------------------------------------------------
    def arm(self, mode: str | None, _from: str | None = None) -> None:
        """Arm a click tool (``component``, ``window``, ``brush``, ``fill``, ``split``) or, with None, disarm."""
        if mode is None and _from is not None and self.click_mode != _from:
            return
        self.click_mode = mode
        buttons = {"component": self.pick_button, "window": self.mask_pick_button,
                   "brush": self.mask_brush_button, "fill": self.mask_fill_button, "split": self.split.split_button}
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
            self.pick_window(point)
        elif mode == "fill":
            self.masked_fill_at(point)
        elif mode == "split":
            self.split.split(point)
        elif mode == "brush" and (stroke := self.begin_masked_stroke()) is not None:
            stroke.dab(point)
            yield
            while event.type == "mouse_move":
                stroke.dab(tuple(float(v) for v in layer.world_to_data(event.position)))
                yield
            self._end_stroke(stroke)
