"""The Correct widget's "Grow from seeds" section: a thin adapter over :mod:`...core.edit.grow`.

The user paints strokes of each tumour class (and of background) into a scratch *seeds layer*; the
random walker on the case's 4 sequences grows them into labels inside a box around the strokes, in
the background (:mod:`..worker`), and the result is pasted into the corrected layer as ONE undo step
through :meth:`CorrectTools.apply` (so autosave and the undo history work as for every tool). What
the grow may change is 3D Slicer's editable area: every voxel of the box, or only those of one
label. With *Grow again as strokes are added*, each stroke re-grows shortly after; a re-grow replaces
the previous grow (it starts from the labels before it while the layer still holds its result)
rather than compounding it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import QCheckBox, QComboBox, QPushButton
from superqt import QCollapsible

from ...core import labels as lab
from ...core.case import MODALITIES
from ...core.edit import EditError
from ...core.edit.grow import BACKGROUND_SEED, grow_region, paste_grown, seed_box
from ..layers import case_from_layers, label_colormap, source_of
from ..worker import Task, start_task
from ._scratch import Applied, add_scratch_layer, reapply_start, single_shot_timer
from .correct_tools import _group, _row, _spin

if TYPE_CHECKING:
    from .correct_tools import CorrectTools

#: Seed buttons: seed value -> text.
SEED_CLASSES: dict[int, str] = {**{c: lab.CLASS_NAMES[c] for c in lab.TUMOUR_CLASSES},
                                BACKGROUND_SEED: "background"}
#: What grow from seeds may change (3D Slicer's editable area): every voxel of its box, or one label's.
GROW_EDITABLE: dict[str, tuple[int, ...] | None] = {
    "everything": None, "only background": (lab.BACKGROUND,),
    **{f"only {lab.CLASS_NAMES[c]}": (c,) for c in lab.TUMOUR_CLASSES}}
#: Delay between a seed stroke and the automatic re-grow (ms).
AUTO_DELAY_MS = 400


class GrowSection:
    """The "Grow from seeds" section of :class:`CorrectTools` (``tools.grow``).

    Public controls: ``seeds_button``, ``seed_buttons`` (seed value -> button), ``grow_margin``,
    ``grow_editable``, ``grow_button``, ``grow_auto``; ``group`` is the collapsible section,
    ``seeds_layer`` the scratch layer, ``grow_task`` the grow running in the background (or None).

    Parameters
    ----------
    tools
        The correction tools whose viewer, target, spacing, click mode and ``apply`` are used.
    """

    def __init__(self, tools: CorrectTools) -> None:
        self.tools = tools
        self.seeds_layer: Labels | None = None
        self.grow_task: Task | None = None
        #: The last grow: (layer, seeds layer, labels before it, labels after it).
        self._grown: Applied | None = None
        self.timer = single_shot_timer(tools, AUTO_DELAY_MS, self.grow)
        self.group = self._build()

    def _build(self) -> QCollapsible:
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

    def make_seeds_layer(self) -> Labels | None:
        """Add (or return) the seeds layer of the target: strokes per class and of background."""
        tools = self.tools
        target = tools.target_or_say()
        if target is None:
            return None
        if self.seeds_layer is not None and self.seeds_layer in tools.viewer.layers:
            return self.seeds_layer
        from napari.utils.colormaps import DirectLabelColormap

        colours = dict(label_colormap().color_dict)
        colours[BACKGROUND_SEED] = np.array([0.55, 0.55, 0.9, 1.0])
        self.seeds_layer = add_scratch_layer(tools.viewer, target, "seeds", DirectLabelColormap(color_dict=colours))
        self.seeds_layer.events.paint.connect(self._on_seed_paint)
        tools.status.setText("seeds layer added: paint strokes of each label (and of background) into it, "
                             "then Grow from seeds")
        if tools._set_layer is not None:
            tools._set_layer(target)
        return self.seeds_layer

    def pick_seed(self, value: int) -> None:
        """Paint strokes of a class (1, 2, 3) or of background into the seeds layer."""
        seeds = self.make_seeds_layer()
        if seeds is None:
            return
        self.tools.arm(None)
        seeds.selected_label = int(value)
        seeds.mode = "paint"
        self.tools.viewer.layers.selection.active = seeds

    def _on_seed_paint(self, _event: Any = None) -> None:
        if self.grow_auto.isChecked():
            self.timer.start()

    def _case_images(self, layer: Labels) -> np.ndarray:
        src = source_of(layer)
        case = case_from_layers(self.tools.viewer.layers, src.case_id if src is not None else None)
        if case.shape != tuple(layer.data.shape):
            raise EditError(f"the case's sequences {case.shape} do not lie on the layer's grid {layer.data.shape}")
        return case.stack(MODALITIES)

    def grow(self) -> Task | None:
        """Grow the target's labels from the seeds layer's strokes, in the background (one undo step)."""
        tools = self.tools
        if self.grow_task is not None:
            self.timer.start()      # strokes added meanwhile: grow again once this run ends
            return self.grow_task
        layer = tools._editable_layer()
        if layer is None:
            return None
        if self.seeds_layer is None or self.seeds_layer not in tools.viewer.layers:
            tools._say("grow from seeds: paint seed strokes first (New seeds layer)", warn=True)
            return None
        seeds, sp, margin_mm = np.array(self.seeds_layer.data), tools.spacing(layer), self.grow_margin.value()
        try:
            seed_box(seeds, margin_mm, sp)
            images = self._case_images(layer)
        except (EditError, KeyError) as exc:
            tools._say(f"grow from seeds: {exc}", warn=True)
            return None

        def work(on_progress: Any = None, cancel: Any = None) -> tuple[tuple[slice, ...], np.ndarray]:
            return grow_region(images, seeds, sp, margin_mm=margin_mm, on_progress=on_progress, cancel=cancel)

        def put(result: tuple[tuple[slice, ...], np.ndarray]) -> None:
            box, grown = result
            editable = GROW_EDITABLE[self.grow_editable.currentText()]
            start = reapply_start(self._grown, layer, self.seeds_layer)   # a re-grow replaces the last grow

            def fn(a: np.ndarray) -> np.ndarray:
                return paste_grown(start, box, grown, editable)

            if layer in tools.viewer.layers:
                tools.apply("grow from seeds", fn)
                self._grown = (layer, self.seeds_layer, start, np.array(layer.data, copy=True))

        tools.status.setText("growing from seeds...")
        self.grow_task = start_task(work, description="grow from seeds", on_success=put,
                                    on_done=lambda: setattr(self, "grow_task", None))
        return self.grow_task
