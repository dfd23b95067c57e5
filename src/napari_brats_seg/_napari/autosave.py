"""Autosave of label edits to recovery files, and recovery after a crash.

Every edit of a labels layer that belongs to a case (painting, filling, the Correct widget's
operations) schedules a save of that layer, debounced (:data:`DEFAULT_DELAY_MS` after the last
edit), to ``<data dir>/recovery/<case>__<layer>.npz`` (compressed labels + JSON metadata, written
atomically in a background task). The data directory is the user's data directory
(``platformdirs.user_data_dir("napari-brats-seg")``) unless the environment variable
``NAPARI_BRATS_SEG_DATA_DIR`` names another.

When a case is opened again and recovery files exist for it, :class:`AutosaveManager` shows a
notification with a *Restore* button per file; :func:`restore_recovery` is the public function the
button calls. Saving a layer through the Save widget removes its recovery file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import Notification, NotificationSeverity, notification_manager
from qtpy.QtCore import QTimer

from .layers import LayerSource, labels_layer_data, source_of
from .worker import start_task

#: Environment variable that overrides the data directory (tests point it at a tmp_path).
ENV_VAR = "NAPARI_BRATS_SEG_DATA_DIR"
#: Delay between the last edit and the save.
DEFAULT_DELAY_MS = 1500


def data_dir() -> Path:
    """The plugin's data directory (``$NAPARI_BRATS_SEG_DATA_DIR`` or the user data directory)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-brats-seg", appauthor=False))


def recovery_dir() -> Path:
    """Where recovery files live."""
    return data_dir() / "recovery"


def _key(layer: Any) -> int:
    """Identity of a layer, seen through napari's public-API proxies (plugin widgets get those)."""
    return id(getattr(layer, "__wrapped__", layer))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "labels"


@dataclass(frozen=True)
class Recovery:
    """One recovery file.

    Attributes
    ----------
    path
        The ``.npz`` file.
    case_id, layer_name
        What was being edited.
    saved_at
        Unix time of the save.
    shape
        Shape of the label map.
    """

    path: Path
    case_id: str
    layer_name: str
    saved_at: float
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        """The recovered internal-class label map."""
        with np.load(self.path) as f:
            return np.asarray(f["labels"], dtype=np.uint8)


def recovery_path(case_id: str, layer_name: str) -> Path:
    """The recovery file of one layer of one case."""
    return recovery_dir() / f"{_safe(case_id)}__{_safe(layer_name)}.npz"


def write_recovery(labels: np.ndarray, case_id: str, layer_name: str) -> Path:
    """Write a recovery file atomically; returns its path."""
    out = recovery_path(case_id, layer_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"case_id": case_id, "layer_name": layer_name, "saved_at": time.time(),
                       "shape": list(np.shape(labels))})
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, labels=np.asarray(labels, dtype=np.uint8), meta=np.array(meta))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def find_recoveries(case_id: str | None = None) -> list[Recovery]:
    """Recovery files (of one case, or all), newest first; unreadable files are skipped."""
    folder = recovery_dir()
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob("*.npz"):
        if p.name.startswith("."):
            continue
        try:
            with np.load(p) as f:
                meta = json.loads(str(f["meta"]))
        except Exception:  # noqa: BLE001 - a damaged recovery file is simply not offered
            continue
        if case_id is None or meta.get("case_id") == case_id:
            out.append(Recovery(p, meta["case_id"], meta["layer_name"], float(meta["saved_at"]),
                                tuple(meta["shape"])))
    return sorted(out, key=lambda r: -r.saved_at)


def discard_recovery(case_id: str, layer_name: str) -> bool:
    """Remove the recovery file of a layer (after it was saved); True if one existed."""
    p = recovery_path(case_id, layer_name)
    if p.exists():
        p.unlink()
        return True
    return False


def restore_recovery(viewer: Any, recovery: Recovery) -> Labels:
    """Add a recovered label map as a new labels layer on its case's grid.

    Raises
    ------
    KeyError
        When the case is not open in ``viewer`` or its grid does not match the recovery.
    """
    src = None
    for layer in viewer.layers:
        s = source_of(layer)
        if s is not None and s.case_id == recovery.case_id:
            src = s
            break
    if src is None:
        raise KeyError(f"open case {recovery.case_id} before restoring its recovered labels")
    data = recovery.load()
    if tuple(data.shape) != tuple(src.geometry.internal_shape):
        raise KeyError(f"recovered labels {data.shape} do not fit case {recovery.case_id} "
                       f"{src.geometry.internal_shape}")
    lsrc = LayerSource(src.case_id, src.geometry, "labels", src.layout, None, src.scheme,
                       dict(src.sources), src.gt_path)
    arr, kwargs, _ = labels_layer_data(data, lsrc, recovery.layer_name)
    return viewer.add_labels(arr, **kwargs)


class AutosaveManager:
    """Watches a viewer's labels layers, saves their edits and offers recoveries.

    Use :meth:`for_viewer` to get the viewer's one manager.

    Parameters
    ----------
    viewer
        The napari viewer.
    delay_ms
        Debounce delay between the last edit and the save.
    """

    _instances: weakref.WeakKeyDictionary[Any, AutosaveManager] = weakref.WeakKeyDictionary()

    def __init__(self, viewer: Any, delay_ms: int = DEFAULT_DELAY_MS) -> None:
        self.viewer = viewer
        self.delay_ms = delay_ms
        self._timers: dict[int, QTimer] = {}
        self._offered_cases: set[str] = set()
        #: Recoveries offered so far (for the GUI and tests).
        self.offered: list[Recovery] = []
        #: Paths written so far, in order.
        self.saved: list[Path] = []
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)
        for layer in list(viewer.layers):
            self._watch(layer)

    @classmethod
    def for_viewer(cls, viewer: Any) -> AutosaveManager:
        """The viewer's manager, created on first use."""
        viewer = getattr(viewer, "__wrapped__", viewer)  # one manager per viewer, proxies or not
        mgr = cls._instances.get(viewer)
        if mgr is None:
            mgr = cls(viewer)
            cls._instances[viewer] = mgr
        return mgr

    # -- layers ------------------------------------------------------------------------------
    def _on_inserted(self, event: Any) -> None:
        self._watch(event.value)

    def _on_removed(self, event: Any) -> None:
        timer = self._timers.pop(_key(event.value), None)
        if timer is not None:
            timer.stop()

    def _watch(self, layer: Any) -> None:
        layer = getattr(layer, "__wrapped__", layer)
        src = source_of(layer)
        if src is None:
            return
        if src.case_id not in self._offered_cases:
            self._offered_cases.add(src.case_id)
            self.offer(src.case_id)
        if isinstance(layer, Labels) and _key(layer) not in self._timers:
            timer = QTimer()
            timer.setSingleShot(True)
            timer.setInterval(self.delay_ms)
            ref = weakref.ref(layer)
            timer.timeout.connect(lambda: self._save(ref()))
            self._timers[_key(layer)] = timer
            layer.events.paint.connect(lambda _e=None: timer.start())

    def schedule(self, layer: Labels) -> None:
        """(Re)start the debounce timer of ``layer``."""
        timer = self._timers.get(_key(layer))
        if timer is not None:
            timer.start()

    def flush(self, layer: Labels) -> None:
        """Save ``layer`` now (in the background) instead of after the delay."""
        timer = self._timers.get(_key(layer))
        if timer is not None:
            timer.stop()
        self._save(layer)

    def _save(self, layer: Labels | None) -> None:
        if layer is None:
            return
        src = source_of(layer)
        if src is None:
            return
        snapshot = np.array(layer.data, dtype=np.uint8, copy=True)
        case_id, name = src.case_id, layer.name

        def work(on_progress: Any = None, cancel: Any = None) -> Path:
            return write_recovery(snapshot, case_id, name)

        start_task(work, description="autosave", show_progress=False,
                   on_success=lambda p: self.saved.append(Path(p)))

    # -- recovery ----------------------------------------------------------------------------
    def offer(self, case_id: str) -> list[Recovery]:
        """Notify the user of recovery files of ``case_id``, with a Restore button each."""
        recs = find_recoveries(case_id)
        for rec in recs:
            self.offered.append(rec)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
            note = Notification(
                f"Unsaved edits of '{rec.layer_name}' ({rec.case_id}) from {when} were recovered.",
                severity=NotificationSeverity.WARNING,
                actions=[("Restore", lambda _w=None, r=rec: restore_recovery(self.viewer, r))],
            )
            notification_manager.dispatch(note)
        return recs
