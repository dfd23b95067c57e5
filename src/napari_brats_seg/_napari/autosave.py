"""Autosave of label edits to recovery files, and recovery after a crash.

A new prediction is saved at once (a crash right after a long model run keeps its result), and
every change of the voxels of a labels layer that belongs to a case (painting, filling, the Correct
widget's operations, undo and redo: :attr:`.session.Session.data_changed`) schedules a save of that
layer, debounced (:data:`DEFAULT_DELAY_MS` after the last change), to
``<data dir>/recovery/<case>__<layer>.npz`` (compressed labels, the untouched model output of a
prediction when there is one, and JSON metadata, written atomically in a background task). The data
directory is the user's data directory (``platformdirs.user_data_dir("napari-brats-seg")``) unless the
environment variable ``NAPARI_BRATS_SEG_DATA_DIR`` names another; ``NAPARI_BRATS_SEG_AUTOSAVE_MS``
sets the delay.

Autosave runs for every labels layer of a case whichever of the plugin's widgets was opened: the
viewer's :class:`~.session.Session` owns the one :class:`AutosaveManager`. When a case is opened
and recovery files exist for it, the manager shows a notification with a *Restore* button per file;
:func:`restore_recovery` is the public function the button calls. Saving a layer through the Save
widget removes its recovery file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer

from . import notify
from .layers import LayerSource, labels_layer_data, source_of
from .worker import start_task

#: Environment variable that overrides the data directory (tests point it at a tmp_path).
ENV_VAR = "NAPARI_BRATS_SEG_DATA_DIR"
#: Environment variable that overrides the delay (milliseconds).
DELAY_ENV_VAR = "NAPARI_BRATS_SEG_AUTOSAVE_MS"
#: Delay between the last edit and the save.
DEFAULT_DELAY_MS = 1500

#: Serialises recovery writes, so that an older snapshot never replaces a newer one.
_WRITE_LOCK = threading.Lock()
_SEQUENCE = itertools.count()
_WRITTEN: dict[Path, int] = {}


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
    role
        Role of the layer (``prediction``, ``ground_truth``, ``labels``).
    has_original
        Whether the file also holds the untouched model output.
    """

    path: Path
    case_id: str
    layer_name: str
    saved_at: float
    shape: tuple[int, ...]
    role: str = "labels"
    has_original: bool = False

    def load(self) -> np.ndarray:
        """The recovered internal-class label map."""
        with np.load(self.path) as f:
            return np.asarray(f["labels"], dtype=np.uint8)

    def load_original(self) -> np.ndarray | None:
        """The untouched model output kept with a prediction, or None."""
        with np.load(self.path) as f:
            return np.asarray(f["original"], dtype=np.uint8) if "original" in f.files else None


def recovery_path(case_id: str, layer_name: str) -> Path:
    """The recovery file of one layer of one case."""
    return recovery_dir() / f"{_safe(case_id)}__{_safe(layer_name)}.npz"


def write_recovery(labels: np.ndarray, case_id: str, layer_name: str, *, role: str = "labels",
                   original: np.ndarray | None = None) -> Path:
    """Write a recovery file atomically (with the model output ``original`` if given); returns its path."""
    out = recovery_path(case_id, layer_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"case_id": case_id, "layer_name": layer_name, "saved_at": time.time(),
                       "shape": list(np.shape(labels)), "role": role, "has_original": original is not None})
    arrays = {"labels": np.asarray(labels, dtype=np.uint8), "meta": np.array(meta)}
    if original is not None:
        arrays["original"] = np.asarray(original, dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
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
                                tuple(meta["shape"]), meta.get("role", "labels"),
                                bool(meta.get("has_original", False))))
    return sorted(out, key=lambda r: -r.saved_at)


def discard_recovery(case_id: str, layer_name: str) -> bool:
    """Remove the recovery file of a layer (after it was saved); True if one existed."""
    p = recovery_path(case_id, layer_name)
    with _WRITE_LOCK:
        _WRITTEN[p] = next(_SEQUENCE)  # a save still in flight must not bring the file back
        if p.exists():
            p.unlink()
            return True
    return False


def restore_recovery(viewer: Any, recovery: Recovery) -> Labels:
    """Add a recovered label map as a new labels layer on its case's grid.

    A recovered prediction comes back as a prediction, with its kept model output (the hidden
    ``model output`` copy) when the file holds one.

    Raises
    ------
    KeyError
        When the case is not open in ``viewer`` or its grid does not match the recovery.
    """
    from .session import Session

    src = None
    for layer in viewer.layers:
        s = source_of(layer)
        if s is not None and s.case_id == recovery.case_id:
            src = s
            break
    if src is None:
        raise KeyError(f"open case {recovery.case_id} before restoring its recovered labels")
    data, original = recovery.load(), recovery.load_original()  # before the new layer's own autosave
    if tuple(data.shape) != tuple(src.geometry.internal_shape):
        raise KeyError(f"recovered labels {data.shape} do not fit case {recovery.case_id} "
                       f"{src.geometry.internal_shape}")
    role = recovery.role if recovery.role in ("prediction", "labels") else "labels"
    lsrc = LayerSource(info=src.info, role=role)
    arr, kwargs, _ = labels_layer_data(data, lsrc, recovery.layer_name)
    layer = viewer.add_labels(arr, **kwargs)
    if original is not None:
        Session.for_viewer(viewer).set_original(layer, original)
    return layer


def _restore_action(viewer: Any, rec: Recovery) -> Any:
    def restore(_widget: Any = None) -> None:
        try:
            restore_recovery(viewer, rec)
        except KeyError as exc:
            notify.error("The recovered labels were not restored.", str(exc.args[0]))

    return restore


class AutosaveManager:
    """Saves the edits of a viewer's labels layers and offers recoveries.

    The viewer's :class:`~.session.Session` creates the one manager and feeds it; use
    :meth:`for_viewer` to get it.

    Parameters
    ----------
    viewer
        The napari viewer.
    session
        The session that reports changes (:meth:`watch`, :meth:`schedule`).
    delay_ms
        Debounce delay between the last edit and the save (``$NAPARI_BRATS_SEG_AUTOSAVE_MS`` or
        :data:`DEFAULT_DELAY_MS` when None).
    """

    def __init__(self, viewer: Any, session: Any, delay_ms: int | None = None) -> None:
        self.viewer = viewer
        self.session = session
        self.delay_ms = int(delay_ms if delay_ms is not None else os.environ.get(DELAY_ENV_VAR, DEFAULT_DELAY_MS))
        self._timers: dict[int, QTimer] = {}
        self._offered_cases: set[str] = set()
        #: Recoveries offered so far (for the GUI and tests).
        self.offered: list[Recovery] = []
        #: Paths written so far, in order.
        self.saved: list[Path] = []
        #: Autosaves started and not yet written.
        self.pending = 0

    @classmethod
    def for_viewer(cls, viewer: Any) -> AutosaveManager:
        """The viewer's manager (its session's), created on first use."""
        from .session import Session

        return Session.for_viewer(viewer).autosave

    def set_delay(self, delay_ms: int) -> None:
        """Change the debounce delay of every layer."""
        self.delay_ms = int(delay_ms)
        for timer in self._timers.values():
            timer.setInterval(self.delay_ms)

    # -- layers ------------------------------------------------------------------------------
    def seen_case(self, case_id: str) -> None:
        """A layer of ``case_id`` appeared: offer its recoveries the first time."""
        if case_id not in self._offered_cases:
            self._offered_cases.add(case_id)
            self.offer(case_id)

    def watch(self, layer: Any) -> None:
        """Autosave ``layer`` (a labels layer of a case) from now on."""
        layer = getattr(layer, "__wrapped__", layer)
        if not isinstance(layer, Labels) or source_of(layer) is None or _key(layer) in self._timers:
            return
        timer = QTimer()
        timer.setSingleShot(True)
        timer.setInterval(self.delay_ms)
        ref = weakref.ref(layer)
        timer.timeout.connect(lambda: self._save(ref()))
        self._timers[_key(layer)] = timer

    def forget(self, layer: Any) -> None:
        """Stop autosaving ``layer`` (it was removed from the viewer)."""
        timer = self._timers.pop(_key(layer), None)
        if timer is not None:
            timer.stop()

    def schedule(self, layer: Labels) -> None:
        """(Re)start the debounce timer of ``layer``."""
        timer = self._timers.get(_key(layer))
        if timer is not None:
            timer.start()

    def flush(self, layer: Labels, snapshot: np.ndarray | None = None) -> None:
        """Save ``layer`` now (in the background) instead of after the delay.

        ``snapshot``: a copy of the layer's voxels as they are now that nothing will modify (the
        session's kept model output of a new prediction), written instead of a fresh copy.
        """
        timer = self._timers.get(_key(layer))
        if timer is not None:
            timer.stop()
        self._save(layer, snapshot)

    def flush_all_now(self, timeout_s: float = 5.0) -> None:
        """Write every pending save now and wait for the writes in flight (the application quits)."""
        from qtpy.QtWidgets import QApplication

        for k, timer in list(self._timers.items()):
            if timer.isActive():
                timer.stop()
                layer = next((ly for ly in self.viewer.layers if _key(ly) == k), None)
                src = source_of(layer) if layer is not None else None
                if src is not None:
                    original = self.session.original_of(layer) if self.session is not None else None
                    with contextlib.suppress(OSError):  # quitting: nowhere left to show a failed write
                        write_recovery(np.asarray(layer.data), src.case_id, layer.name, role=src.role,
                                       original=original)
        t0 = time.time()
        app = QApplication.instance()
        while self.pending and app is not None and time.time() - t0 < timeout_s:
            app.processEvents()
            time.sleep(0.01)

    def discard(self, layer: Any) -> None:
        """Stop a pending save of ``layer`` and remove its recovery file (it was saved)."""
        timer = self._timers.get(_key(layer))
        if timer is not None:
            timer.stop()
        src = source_of(layer)
        if src is not None:
            discard_recovery(src.case_id, layer.name)

    def _save(self, layer: Labels | None, snapshot: np.ndarray | None = None) -> None:
        if layer is None:
            return
        src = source_of(layer)
        if src is None:
            return
        if snapshot is None:  # the write runs in a worker while the user may paint on
            snapshot = np.array(layer.data, dtype=np.uint8, copy=True)
        original = self.session.original_of(layer) if self.session is not None else None
        case_id, name, role = src.case_id, layer.name, src.role
        seq = next(_SEQUENCE)

        def work(on_progress: Any = None, cancel: Any = None) -> Path:
            path = recovery_path(case_id, name)
            with _WRITE_LOCK:  # the pool may run two saves of one layer at once, in any order
                if _WRITTEN.get(path, -1) > seq:
                    return path
                _WRITTEN[path] = seq
                return write_recovery(snapshot, case_id, name, role=role, original=original)

        def written(path: Any) -> None:
            self.saved.append(Path(path))

        def finished() -> None:
            self.pending -= 1

        self.pending += 1
        start_task(work, description="autosave", show_progress=False, on_success=written,
                   on_done=finished)

    # -- recovery ----------------------------------------------------------------------------
    def offer(self, case_id: str) -> list[Recovery]:
        """Notify the user of recovery files of ``case_id``, with a Restore button each."""
        recs = find_recoveries(case_id)
        for rec in recs:
            self.offered.append(rec)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
            notify.warning("Unsaved labels were found.",
                           f"'{rec.layer_name}' of {rec.case_id}, autosaved {when}. Restore adds them as a "
                           "new layer.",
                           actions=[("Restore", _restore_action(self.viewer, rec))])
        return recs
