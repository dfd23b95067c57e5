"""What the re-applying correction tools share: their scratch layers and where a re-apply starts.

Grow from seeds and Redraw on a few slices each paint into a scratch labels layer (seeds, outlines)
on the corrected layer's grid, and each can re-apply as strokes are added. A re-apply replaces the
previous application rather than compounding it, as 3D Slicer's preview does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer

from ..layers import SCRATCH_KEY, unwrap

#: A tool's last application: (corrected layer, scratch layer, labels before it, labels after it).
Applied = tuple[Any, Any, np.ndarray, np.ndarray]


def add_scratch_layer(viewer: Any, target: Labels, kind: str, colormap: Any) -> Labels:
    """Add the scratch layer ``"<kind> [<target>]"``: empty, on the target's grid, marked scratch.

    Scale, translate and units are the target's (mm like the case: no "inconsistent units"), and
    ``metadata[SCRATCH_KEY]`` keeps the volumes table from taking it for the tumour's labels.
    """
    return viewer.add_labels(
        np.zeros(target.data.shape, np.uint8), name=f"{kind} [{target.name}]", scale=target.scale,
        translate=target.translate, units=target.units, opacity=0.9, colormap=colormap,
        metadata={SCRATCH_KEY: True})


def reapply_start(last: Applied | None, layer: Labels, scratch: Any) -> np.ndarray:
    """The labels a re-applying tool writes over.

    Those before its previous application ``last`` while ``layer`` still holds exactly that
    application's result and ``scratch`` is the scratch layer it used (the re-apply replaces it);
    else a copy of the layer's labels.
    """
    if last is not None:
        was, used, start, after = last
        if unwrap(was) is unwrap(layer) and used is scratch and np.array_equal(layer.data, after):
            return start
    return np.array(layer.data, copy=True)


def single_shot_timer(parent: QObject, ms: int, slot: Any) -> QTimer:
    """A single-shot timer of ``ms`` milliseconds calling ``slot``: what the automatic re-apply of a
    section (grow, redraw, confidence) restarts on each stroke or value."""
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer
