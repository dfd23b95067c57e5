"""Short garbage collections while the viewer is in use.

A napari session with the plugin holds several hundred thousand Python objects (napari, Qt
wrappers, vispy, and torch and MONAI once a model ran). Python's collector now and then runs a
*full* collection, which walks every one of them while holding the interpreter lock: whichever
thread triggers it (often a worker allocating during inference), napari's GUI thread cannot run for
that long, a stall of several hundred milliseconds on a busy 2-core machine, the longest the GUI
stall bench (``bench/bench_gui_stall.py``) found.

:func:`freeze_long_lived` moves every object alive at that moment to the collector's permanent
generation (:func:`gc.freeze`), so later full collections walk only what was made since. The
workers make their long-lived objects inside :func:`paused` (no collection meanwhile, then the same
freeze): the Load worker reads the case and makes its layers, the Segment worker imports torch and
MONAI and loads the model.

A frozen object is still freed when nothing refers to it; only a *cycle* of frozen objects waits.
napari layers are such cycles, so when a layer leaves the viewer the session calls :func:`thaw`
(:func:`gc.unfreeze`): everything is collectable again, and the next full collection (one, at the
moment layers were closed) frees what was removed.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_PAUSED = 0  # workers inside paused()
_WAS_ENABLED = True


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (any thread's), then freeze what was made (``gc.freeze``).

    For a worker's import of torch and MONAI and its loading of a model: hundreds of thousands of
    new objects, which otherwise set off full collections while they are made. On leaving, nothing
    is collected (the new objects sit in the youngest generation, and collecting it would walk them
    all): everything alive is frozen and collection resumes (when no other worker is inside).
    """
    global _PAUSED, _WAS_ENABLED
    with _LOCK:
        if _PAUSED == 0:
            _WAS_ENABLED = gc.isenabled()
            gc.disable()
        _PAUSED += 1
    try:
        yield
    finally:
        with _LOCK:
            _PAUSED -= 1
            gc.freeze()
            if _PAUSED == 0 and _WAS_ENABLED:
                gc.enable()


def freeze_long_lived() -> None:
    """Collect the young generations, then freeze every object alive now (see the module docstring).

    Cheap (a collection of the young objects only and a list splice); safe from any thread.
    """
    gc.collect(1)
    gc.freeze()


def thaw() -> None:
    """Make every frozen object collectable again (a layer was removed: its cycles must be freed)."""
    gc.unfreeze()


def frozen_count() -> int:
    """How many objects are frozen now."""
    return gc.get_freeze_count()
