"""The plugin's per-viewer session: which labels layer is the reference, which the working copy.

One :class:`Session` per viewer (:meth:`Session.for_viewer`), created by whichever of the plugin's
widgets is made first, or by the reader when it opens a case into a viewer. It watches the viewer's
layers and keeps the data safe:

- **The reference is locked.** A ground truth read from disk (role ``ground_truth``) and the kept
  model outputs (role ``model_output``) are not editable (napari ``editable=False``, and any edit that
  still reaches them is reverted) until the user unlocks one on purpose (:meth:`Session.unlock`, which
  asks first).
- **Every change of the voxels is seen.** Paint, fill, polygon, the Correct widget's operations
  (napari's ``paint`` event), a new ``data`` array (``data`` event) and ``undo``/``redo`` (which napari
  applies without any event: the session wraps them per layer) all emit :attr:`Session.data_changed`;
  autosave (:mod:`.autosave`) and the Score widget listen to it.
- **The model output is kept.** A prediction's data is kept when it appears; its first edit adds a
  hidden, locked copy ``model output: <name>`` (scored against the corrected layer, and the source of
  :meth:`Session.revert`).
- **Results do not pile up, one case at a time.** A new prediction hides the earlier results and the
  ground truth of its case (they stay in the layer list); the layers of a newly opened case hide
  those of the others unless :attr:`Session.compare`.
- **The plugin's keys.** 1/2/3 paint necrotic core / edema / enhancing tumour and 0 erases on the
  plugin's labels layers (instance key bindings that take precedence over napari's mode keys).

Questions (unlock the reference? close a case with unsaved edits?) go through :attr:`Session.ask`, a
function ``(title, text, choices) -> choice`` that tests replace.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer, Signal

from ..core import labels as lab
from . import notify
from .gcpause import thaw
from .layers import source_of

#: Roles of layers that are references: locked against editing.
LOCKED_ROLES = ("ground_truth", "model_output")
#: Roles of layers the user works on (model results, restored or drawn labels).
WORKING_ROLES = ("prediction", "labels")
#: Keys of the plugin's labels layers: key -> internal class (0 erases).
CLASS_KEYS: dict[str, int] = {"1": lab.NECROTIC, "2": lab.EDEMA, "3": lab.ENHANCING, "0": lab.BACKGROUND}

Ask = Callable[[str, str, list[str]], str]


def unwrap(obj: Any) -> Any:
    """The object behind napari's public-API proxy (plugin widgets get proxies)."""
    return getattr(obj, "__wrapped__", obj)


def key(layer: Any) -> int:
    """Identity of a layer, proxies or not."""
    return id(unwrap(layer))


def ask_with_dialog(title: str, text: str, choices: list[str]) -> str:
    """Ask the user with a modal message box; the last choice is the cancel/escape answer."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox()
    box.setWindowTitle(title)
    box.setText(text)
    buttons = [box.addButton(c, QMessageBox.ButtonRole.ActionRole) for c in choices]
    box.setEscapeButton(buttons[-1])
    box.exec_()
    clicked = box.clickedButton()
    return choices[buttons.index(clicked)] if clicked in buttons else choices[-1]


class Session(QObject):
    """What the plugin knows about the layers of one viewer (see the module docstring).

    Signals
    -------
    data_changed(layer)
        The voxels of a labels layer of a case changed (edit, undo, redo, new data).
    defaults_changed()
        The newest prediction, a reference or the current case changed: widgets re-pick their layers.
    """

    data_changed = Signal(object)
    defaults_changed = Signal()

    _instances: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        from .autosave import AutosaveManager

        self.viewer = unwrap(viewer)
        #: Keep the layers of other cases visible when a case is opened.
        self.compare = False
        #: The case the tools work on (the last one opened).
        self.current_case: str | None = None
        #: ``(title, text, choices) -> choice``; a modal dialog unless replaced (tests).
        self.ask: Ask = ask_with_dialog
        self._born: dict[int, int] = {}
        self._count = itertools.count()
        self._locked: set[int] = set()
        self._dirty: set[int] = set()
        self._saved: set[int] = set()
        self._originals: dict[int, np.ndarray] = {}
        self._original_layers: dict[int, Any] = {}
        self.autosave = AutosaveManager(self.viewer, session=self)
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:  # quitting within the autosave delay of an edit must not lose it
            app.aboutToQuit.connect(self.autosave.flush_all_now)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._on_removed)
        for layer in list(self.viewer.layers):
            self._adopt(layer, new=False)

    @classmethod
    def for_viewer(cls, viewer: Any) -> Session:
        """The viewer's session, created on first use."""
        viewer = unwrap(viewer)
        sess = cls._instances.get(viewer)
        if sess is None:
            sess = cls(viewer)
            cls._instances[viewer] = sess
        return sess

    # -- layers coming and going ----------------------------------------------------------
    def _on_inserted(self, event: Any) -> None:
        self._adopt(unwrap(event.value), new=True)
        self.defaults_changed.emit()

    def _on_removed(self, event: Any) -> None:
        thaw()  # a removed layer is a cycle of objects that may be frozen: let the collector free it
        layer = unwrap(event.value)
        k = key(layer)
        self.autosave.forget(layer)
        for store in (self._born, self._originals, self._original_layers):
            store.pop(k, None)
        for owner, copy in list(self._original_layers.items()):
            if copy is layer:  # the kept model output was deleted: it is re-made at the next edit
                del self._original_layers[owner]
        self._dirty.discard(k)
        self._saved.discard(k)
        if self.current_case is not None and not self.case_layers(self.current_case):
            remaining = [s.case_id for ly in self.viewer.layers if (s := source_of(ly)) is not None]
            self.current_case = remaining[-1] if remaining else None
        self.defaults_changed.emit()

    def _adopt(self, layer: Any, *, new: bool) -> None:
        src = source_of(layer)
        if src is None:
            return
        if new and src.case_id != self.current_case:
            if self.current_case is not None and not self.compare:
                self.hide_case(self.current_case)
            self.current_case = src.case_id
        elif self.current_case is None:
            self.current_case = src.case_id
        self.autosave.seen_case(src.case_id)
        if not isinstance(layer, Labels):
            return
        self._born[key(layer)] = next(self._count)
        if src.role in LOCKED_ROLES:
            self.lock(layer)
        if src.role == "prediction":
            self._originals[key(layer)] = np.array(layer.data, dtype=np.uint8, copy=True)
            if new:  # the new result alone over the image: earlier results and the reference hide
                for other in [*self.results(src.case_id), self.reference(src.case_id)]:
                    if other is not None and other is not layer:
                        other.visible = False
        self._watch(layer)
        if src.role not in LOCKED_ROLES:
            self.autosave.watch(layer)
        if new and src.role == "prediction":  # a crash right after a long model run keeps its result;
            # the kept model output is that result, copied once: the recovery file is written from it
            self.autosave.flush(layer, snapshot=self._originals[key(layer)])

    def _watch(self, layer: Labels) -> None:
        ref, sref = weakref.ref(layer), weakref.ref(self)
        layer.events.paint.connect(lambda _e=None: (s := sref()) and s._on_paint(ref()))
        layer.events.data.connect(lambda _e=None: (s := sref()) and s._changed(ref()))
        layer.events.editable.connect(lambda _e=None: (s := sref()) and s._keep_locked(ref()))
        for name in ("undo", "redo"):
            method = getattr(type(layer), name)

            def wrapped(_m: Callable = method, _n: str = name) -> None:
                ly, s = ref(), sref()
                if ly is None:
                    return
                if s is not None and s.is_locked(ly):
                    s._refuse(ly)
                    return
                before = np.array(ly.data, copy=True)
                _m(ly)
                if s is not None and not np.array_equal(before, ly.data):
                    s._changed(ly)

            setattr(layer, name, wrapped)  # shadows the class method: key bindings call layer.undo()
        for k, cls in CLASS_KEYS.items():
            layer.bind_key(k, lambda ly, c=cls: self.pick_label(ly, c), overwrite=True)

    # -- edits ----------------------------------------------------------------------------
    def _on_paint(self, layer: Labels | None) -> None:
        if layer is None:
            return
        if self.is_locked(layer):
            # The guard behind editable=False. napari emits ``paint`` before it writes a single edit's
            # voxels: revert once the edit is written.
            ref = weakref.ref(layer)
            QTimer.singleShot(0, lambda: (ly := ref()) is not None and type(ly).undo(ly))
            self._refuse(layer)
            return
        self._changed(layer)

    def _changed(self, layer: Labels | None) -> None:
        if layer is None or source_of(layer) is None:
            return
        k = key(layer)
        self._dirty.add(k)
        if k in self._originals and k not in self._original_layers:
            self._keep_original(layer)
        self.autosave.schedule(layer)
        self.data_changed.emit(layer)

    def _refuse(self, layer: Labels) -> None:
        notify.warning("This layer is a locked reference.",
                       f"'{layer.name}' is not edited. Edit the prediction, or unlock the reference in "
                       "the Correct widget.")

    def _keep_original(self, layer: Labels) -> Labels:
        """Add the hidden, locked copy of a prediction's untouched model output."""
        src = source_of(layer)
        original = self._originals[key(layer)]
        from dataclasses import replace

        from .layers import labels_layer_data

        data, kwargs, _ = labels_layer_data(original.copy(), replace(src, role="model_output"),
                                            f"model output: {layer.name}")
        copy = Labels(data, visible=False, **kwargs)
        active = self.viewer.layers.selection.active
        self._original_layers[key(layer)] = copy
        self.viewer.layers.insert(max(0, list(self.viewer.layers).index(layer)), copy)
        if active is not None:
            self.viewer.layers.selection.active = active
        return copy

    def original_of(self, layer: Any) -> np.ndarray | None:
        """The untouched model output of a prediction layer, None for other layers."""
        return self._originals.get(key(layer))

    def original_layer(self, layer: Any) -> Labels | None:
        """The hidden ``model output`` copy of a prediction (exists after its first edit)."""
        return self._original_layers.get(key(layer))

    def set_original(self, layer: Any, original: np.ndarray) -> None:
        """Declare ``original`` the model output of ``layer`` (a prediction restored after a crash)."""
        k = key(layer)
        self._originals[k] = np.asarray(original, dtype=np.uint8)
        if not np.array_equal(self._originals[k], layer.data) and k not in self._original_layers:
            self._keep_original(unwrap(layer))
            self.defaults_changed.emit()
        self.autosave.flush(unwrap(layer))  # the recovery file gets this model output, not the data

    def revert(self, layer: Any) -> int:
        """Put the model output back into a prediction as one undoable step; voxels changed."""
        from .edits import apply_edit

        original = self.original_of(layer)
        if original is None:
            return 0
        return apply_edit(unwrap(layer), original)

    # -- locking --------------------------------------------------------------------------
    def is_locked(self, layer: Any) -> bool:
        """Whether ``layer`` is a locked reference."""
        return key(layer) in self._locked

    def lock(self, layer: Any) -> None:
        """Lock ``layer`` against editing."""
        self._locked.add(key(layer))
        unwrap(layer).editable = False

    def unlock(self, layer: Any, *, confirm: bool = True) -> bool:
        """Make a reference editable after asking the user; True when unlocked."""
        layer = unwrap(layer)
        if not self.is_locked(layer):
            return True
        src = source_of(layer)
        where = f" read from {src.gt_path}" if src is not None and src.gt_path else ""
        if confirm and self.ask(
                "Unlock the reference?",
                f"'{layer.name}' is the reference{where}. Unlocked, your edits change it (the file on "
                "disk is only written when you save, and never over an input file).",
                ["Unlock", "Cancel"]) != "Unlock":
            return False
        self._locked.discard(key(layer))
        layer.editable = True
        self.autosave.watch(layer)
        return True

    def _keep_locked(self, layer: Labels | None) -> None:
        if layer is not None and self.is_locked(layer) and layer.editable:
            layer.editable = False  # napari resets editable when data is assigned

    def pick_label(self, layer: Any, cls: int, brush_size: int | None = None) -> bool:
        """Select class ``cls`` (0 erases) and the paint tool on ``layer``; False when it is locked."""
        layer = unwrap(layer)
        if self.is_locked(layer):
            self._refuse(layer)
            return False
        layer.selected_label = int(cls)
        layer.mode = "paint" if cls != lab.BACKGROUND else "erase"
        if brush_size is not None:
            layer.brush_size = int(brush_size)
        self.viewer.layers.selection.active = layer
        return True

    # -- which layer for what -------------------------------------------------------------
    def case_layers(self, case_id: str) -> list[Any]:
        """Every layer of ``case_id`` in the viewer."""
        return [ly for ly in self.viewer.layers if (s := source_of(ly)) is not None and s.case_id == case_id]

    def _labels(self, case_id: str | None, roles: tuple[str, ...]) -> list[Any]:
        case_id = case_id or self.current_case
        out = [ly for ly in self.viewer.layers if isinstance(ly, Labels) and (s := source_of(ly)) is not None
               and s.case_id == case_id and s.role in roles]
        return sorted(out, key=lambda ly: self._born.get(key(ly), -1))

    def results(self, case_id: str | None = None) -> list[Any]:
        """Working labels layers (predictions, restored or drawn) of a case, oldest first."""
        return self._labels(case_id, WORKING_ROLES)

    def newest(self, case_id: str | None = None) -> Any:
        """The newest working labels layer of a case (default: the current case), or None."""
        res = self.results(case_id)
        return res[-1] if res else None

    def reference(self, case_id: str | None = None) -> Any:
        """The ground-truth layer of a case, or None."""
        refs = self._labels(case_id, ("ground_truth",))
        return refs[0] if refs else None

    def correct_target(self) -> Any:
        """Default layer of the Correct widget: the newest prediction, else the (locked) reference."""
        return self.newest() or self.reference()

    def score_pair(self) -> tuple[Any, Any]:
        """Default (reference, prediction) of the Score widget.

        Ground truth vs the newest prediction; without a ground truth, the kept model output vs its
        corrected copy.
        """
        pred = self.newest()
        ref = self.reference()
        if ref is None and pred is not None:
            ref = self.original_layer(pred)
        return ref, pred

    def hide_case(self, case_id: str) -> None:
        """Hide every layer of ``case_id``."""
        for ly in self.case_layers(case_id):
            ly.visible = False

    # -- unsaved edits --------------------------------------------------------------------
    def is_dirty(self, layer: Any) -> bool:
        """Whether ``layer`` was edited since it was opened or last saved."""
        return key(layer) in self._dirty

    def mark_saved(self, layer: Any) -> None:
        """Record that ``layer`` was saved (its recovery file is removed)."""
        self._dirty.discard(key(layer))
        self._saved.add(key(layer))
        self.autosave.discard(layer)

    def unsaved(self, case_id: str | None = None) -> list[Any]:
        """Labels layers of a case with unsaved work: edited since saved, or predictions never saved."""
        case_id = case_id or self.current_case
        return [ly for ly in self.viewer.layers if isinstance(ly, Labels) and (s := source_of(ly)) is not None
                and s.case_id == case_id and (key(ly) in self._dirty
                                               or (s.role == "prediction" and key(ly) not in self._saved))]

    def close_case(self, case_id: str) -> None:
        """Remove every layer of ``case_id`` from the viewer (their recovery files stay)."""
        for ly in self.case_layers(case_id):
            self.viewer.layers.remove(ly)
