"""The Correct widget's "Split the core by enhancement" section: a thin adapter over
:mod:`...core.edit.enhancement`.

Inside the tumour core (necrosis and enhancing tumour), voxels whose T1ce value is at or above the
threshold become enhancing tumour, those below it necrosis: 3D Slicer's *Threshold* effect with the
core as the editable area. Until the user sets the threshold (by hand or with *Otsu's threshold*),
each split uses Otsu's threshold of the T1ce inside the core it splits and shows the value used.

The scope is the whole core (the button splits at once) or the core's 26-connected component under a
click (the button becomes checkable and arms a click mode of :class:`CorrectTools`, like the
component picker). Each split is ONE undo step of the corrected layer, written through
:meth:`CorrectTools.apply` (so autosave and the undo history work as for every tool). The work is
numpy on the label map, so it runs on the GUI thread like the other one-click tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QPushButton
from superqt import QCollapsible

from ...core.edit import EditError
from ...core.edit.enhancement import core_mask, otsu_threshold, split_core
from ..layers import source_of
from .correct_tools import _group, _spin

if TYPE_CHECKING:
    from .correct_tools import CorrectTools

#: Scopes of the split: display name -> data.
SCOPES = {"whole core": "core", "component under a click": "component"}
#: The click mode of :class:`CorrectTools` the split button arms.
MODE = "split"


class SplitSection:
    """The "Split the core by enhancement (T1ce)" section of :class:`CorrectTools` (``tools.split``).

    Public controls: ``threshold`` (spin box, T1ce units), ``otsu_button``, ``scope_combo``,
    ``split_button``; ``group`` is the collapsible section. ``user_set`` tells whether the threshold
    was set by the user (else each split uses Otsu's threshold of the core it splits).

    Parameters
    ----------
    tools
        The correction tools whose target, ``masked.mask_image``, click mode and ``apply`` are used.
    """

    def __init__(self, tools: CorrectTools) -> None:
        self.tools = tools
        self.user_set = False
        #: The case the user's threshold was set for: T1ce values of another case mean nothing to it.
        self._set_for: str | None = None
        self.group = self._build()

    def _build(self) -> QCollapsible:
        self.threshold = _spin(-1e6, 1e6, 0.0, "", 1.0)
        self.threshold.setToolTip("T1ce value at or above which the core is enhancing tumour (below: "
                                  "necrosis). Until you set it, each split uses Otsu's threshold of the core")
        self.threshold.valueChanged.connect(self._touched)
        self.otsu_button = QPushButton("Otsu's threshold")
        self.otsu_button.setToolTip("Set the threshold to Otsu's of the T1ce inside the layer's tumour core")
        self.otsu_button.clicked.connect(self.set_otsu)
        self.scope_combo = QComboBox()
        for name, scope in SCOPES.items():
            self.scope_combo.addItem(name, scope)
        self.scope_combo.currentIndexChanged.connect(self._scope_changed)
        self.split_button = QPushButton("Split the core")
        self.split_button.clicked.connect(self._on_button)
        return _group("Split the core by enhancement (T1ce)", ("Threshold", self.threshold), self.otsu_button,
                      ("Scope", self.scope_combo), self.split_button)

    def _touched(self, *_: Any) -> None:
        self.user_set, self._set_for = True, self._case_of(self.tools.layer())

    @staticmethod
    def _case_of(layer: Any) -> str | None:
        src = source_of(layer) if layer is not None else None
        return src.case_id if src is not None else None

    def users_threshold(self, layer: Any) -> bool:
        """Whether the spin box holds a threshold the user set for ``layer``'s case (else Otsu's is used)."""
        return self.user_set and self._set_for == self._case_of(layer)

    def _show(self, value: float) -> None:
        """Show a threshold computed for the user without making it the user's."""
        self.threshold.blockSignals(True)
        self.threshold.setValue(value)
        self.threshold.blockSignals(False)

    def _scope_changed(self, *_: Any) -> None:
        """The split button splits at once (whole core) or arms a click (component under a click)."""
        clicks = self.scope_combo.currentData() == "component"
        if not clicks and self.tools.click_mode == MODE:
            self.tools.arm(None)
        self.split_button.setCheckable(clicks)
        self.split_button.setText("Click a core component" if clicks else "Split the core")

    def _on_button(self, checked: bool = False) -> None:
        if self.scope_combo.currentData() == "component":
            self.tools.arm(MODE if checked else None, _from=MODE)
        else:
            self.split()

    # -- the threshold ---------------------------------------------------------------------
    def _t1ce(self, layer: Any) -> np.ndarray:
        return self.tools.masked.mask_image(layer, "t1ce")

    def set_otsu(self) -> float | None:
        """Set the threshold to Otsu's of the T1ce inside the target's whole core (None if refused)."""
        tools = self.tools
        layer = tools.target_or_say()
        if layer is None:
            return None
        try:
            thr = otsu_threshold(self._t1ce(layer), core_mask(np.asarray(layer.data)))
        except EditError as exc:
            tools._say(f"Otsu's threshold: {exc}", warn=True)
            return None
        self.threshold.setValue(thr)
        self.user_set, self._set_for = True, self._case_of(layer)
        tools.status.setText(f"Otsu's threshold inside the core: T1ce {thr:.5g}")
        return thr

    # -- the split -------------------------------------------------------------------------
    def split(self, point: Sequence[float] | None = None) -> int:
        """Split the whole core, or its component under the data point ``(z, y, x)``: ONE undo step.

        Returns the number of changed voxels (0 when refused).
        """
        tools = self.tools
        layer = tools._editable_layer()
        if layer is None:
            return 0
        try:
            t1ce = self._t1ce(layer)
            core = core_mask(np.asarray(layer.data), point)
            mine = self.users_threshold(layer)
            thr = self.threshold.value() if mine else otsu_threshold(t1ce, core)
        except EditError as exc:
            tools._say(f"split the core: {exc}", warn=True)
            return 0
        if not mine:
            self._show(thr)
        return tools.apply(f"split the core at T1ce >= {thr:.5g}",
                           lambda a: split_core(a, t1ce, thr, point)[0])
