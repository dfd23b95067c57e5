"""The Correct widget's "Border by model confidence" section: a thin adapter over
:mod:`...core.edit.confidence`.

A model's labels are its whole-tumour (WT) probability cut at 0.5. Where its border is too generous
or too timid all around, the reader drags ONE slider (the WT probability, 0.05-0.95) and, on
release, the tumour's border moves to the model's iso-probability surface at that value: edema grows
into connected voxels at least that probable and leaves those below it; the core never changes.

The probability is the one the Segment widget kept with the labels it made
(``metadata[PROBABILITY_KEY]``, :func:`..layers.wt_probability`); a layer without one (read from a
file, drawn by hand) disables the slider and says why. Each release is ONE undo step of the corrected
layer, written through :meth:`CorrectTools.apply` (so autosave and the undo history work as for every
tool). Releases of one drag series replace each other: while the layer still holds the previous
release's result, the next one starts from the labels before the series' first release, so
0.5 -> 0.7 -> 0.6 is 0.6 applied once; any other edit in between ends the series. A value typed in
the slider's box or set with the keys applies shortly after it is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel
from superqt import QCollapsible, QLabeledDoubleSlider

from ...core.edit import EditError
from ...core.edit.confidence import border_by_confidence
from ...core.measure.volumes import volumes_ml
from ..layers import unwrap, wt_probability
from ._scratch import Applied, reapply_start, single_shot_timer
from .correct_tools import NO_TARGET, _group

if TYPE_CHECKING:
    from .correct_tools import CorrectTools

#: The slider's range, step and start (0.50: the model's own border).
LOW, HIGH, STEP, DEFAULT = 0.05, 0.95, 0.05, 0.50
#: Delay between a typed or keyed value and its application (ms); a drag applies on release.
AUTO_DELAY_MS = 300
NO_PROBABILITY = "this layer holds no model probabilities: segment the case with the Segment widget"
STALE = "the labels changed since the last release: the next release starts from them"
HINT = "drag the slider: on release the border moves to the model's WT probability (0.50: its own border)"


class ConfidenceSection:
    """The "Border by model confidence" section of :class:`CorrectTools` (``tools.confidence``).

    Public controls: ``slider`` (superqt's labeled float slider, the WT probability), ``status``;
    ``group`` is the collapsible section. :meth:`apply` is what a release does.

    Parameters
    ----------
    tools
        The correction tools whose target, spacing and ``apply`` are used.
    """

    def __init__(self, tools: CorrectTools) -> None:
        self.tools = tools
        #: The last release: (layer, its probability, labels before the series, labels after it).
        self._done: Applied | None = None
        self.timer = single_shot_timer(tools, AUTO_DELAY_MS, self._on_timer)
        self.group = self._build()
        self.refresh()

    def _build(self) -> QCollapsible:
        self.slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(LOW, HIGH)
        self.slider.setSingleStep(STEP)
        self.slider.setPageStep(2 * STEP)
        self.slider.setDecimals(2)
        self.slider.setValue(DEFAULT)
        self.slider.setToolTip("The whole-tumour probability the border lies at: higher is tighter, lower "
                               "wider (the necrotic and enhancing core never changes)")
        self.slider.sliderReleased.connect(self._on_release)
        self.slider.valueChanged.connect(self._on_value)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        group = _group("Border by model confidence (WT probability)", ("WT probability >=", self.slider),
                       self.status)
        group.toggled.connect(self.refresh)
        return group

    def refresh(self, *_: Any) -> None:
        """Enable the slider for a target holding the model's probability; else say why not."""
        layer = self.tools.layer()
        ready = layer is not None and wt_probability(layer) is not None
        self.slider.setEnabled(ready)
        if not ready:
            self.status.setText(NO_PROBABILITY if layer is not None else NO_TARGET)
        elif self.status.text() in ("", NO_PROBABILITY, NO_TARGET):
            self.status.setText(HINT)

    def labels_changed(self, layer: Any) -> None:
        """The session saw ``layer``'s labels change: when it is the last release's layer and no longer
        holds that release's result (an undo, a stroke, another tool), say so (the slider's value is
        then no longer what the labels show)."""
        done = self._done
        if done is None or unwrap(layer) is not unwrap(done[0]) or np.array_equal(np.asarray(layer.data), done[3]):
            return
        self._done = None                         # the series is over: the next release starts from these labels
        self.status.setText(f"{STALE} (last release: {self.threshold():.2f})")

    def threshold(self) -> float:
        """The slider's value on its 0.05 grid (a drag may stop between steps)."""
        return round(min(max(round(self.slider.value() / STEP) * STEP, LOW), HIGH), 2)

    def _on_value(self, *_: Any) -> None:
        if not self.slider.isSliderDown():       # typed or keyed: a drag applies on release
            self.timer.start()

    def _on_timer(self) -> None:
        if not self.slider.isSliderDown():       # a drag started meanwhile: its release applies
            self.apply()

    def _on_release(self) -> None:
        self.timer.stop()
        self.apply()

    def apply(self) -> int:
        """Move the target's border to the slider's WT probability: ONE undo step.

        Returns the number of changed voxels (0 when refused).
        """
        tools, t = self.tools, self.threshold()
        self.slider.blockSignals(True)
        self.slider.setValue(t)                  # the value used, shown
        self.slider.blockSignals(False)
        layer = tools.layer()
        prob = wt_probability(layer) if layer is not None else None
        starts: list[np.ndarray] = []

        def fn(a: np.ndarray) -> np.ndarray:
            if prob is None:
                raise EditError(NO_PROBABILITY)
            start = reapply_start(self._done, layer, unwrap(prob))    # a release replaces the last one
            starts.append(start)
            return border_by_confidence(start, np.asarray(prob), t)

        what = f"border at WT probability >= {t:.2f}"
        n = tools.apply(what, fn)
        if starts and layer is not None:
            after = np.array(layer.data, copy=True)
            self._done = (layer, unwrap(prob), starts[0], after)
            wt = volumes_ml(after, tools.spacing(layer))["WT"]
            tools.status.setText(f"{what}: {n} voxels changed; WT {wt:.1f} mL")
        self.status.setText(tools.status.text())
        self.refresh()
        return n
