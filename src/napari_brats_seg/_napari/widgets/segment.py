"""Segment widget: run a model on the open case in the background.

Model choice: the shipped models (:func:`core.models.registry.list_models`), a checkpoint file, a
CaPTk DeepMedic folder or a MONAI bundle folder (*File...* / *Folder...*), or a model handed over
in memory (:meth:`SegmentWidget.add_model`). *Run* reads the case from its image layers and starts
``core.inference.predict`` in a worker with napari's progress bar; *Cancel* sets the cancel token,
which the inference checks before every window. Optional clean-ups: drop whole-tumour islands under N
voxels, relabel a total ET under N voxels as necrotic core (``core.postprocess``). Inputs are disabled while it runs and re-enabled
after success, error or cancel; errors are napari notifications. Each run adds a NEW labels layer
(named classes, fixed colours) whose name says what produced it (model, TTA, clean-ups), hides the
earlier results of the case (:mod:`..session`) and, with TTA and *uncertainty* ticked, adds an
uncertainty image layer. The labels layer keeps the model's whole-tumour probability (8-bit, in its
metadata) for the Correct widget's *Border by model confidence*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import InferenceError
from ...core.memory import keep_freed_memory
from .. import gcpause
from ..layers import (
    PROBABILITY_KEY,
    LayerSource,
    case_from_layers,
    case_ids,
    labels_layer_data,
    make_layer,
    source_of,
    world_placement,
)
from ..notify import error
from ..notify import info as notify_info
from ..session import Session
from ..worker import Task, run_steps, start_task

DEVICES = ("auto", "cpu", "cuda", "mps")
#: What may run the network (``core.runtimes``; auto: the fastest measured on this CPU).
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")


class SegmentWidget(QWidget):
    """Dock widget that segments a case.

    Public controls: ``case_combo``, ``model_combo``, ``file_button``, ``folder_button``,
    ``device_combo``, ``runtime_combo``, ``tta``, ``uncertainty``, ``min_component``, ``et_min`` (post-processing,
    0 = off), ``run_button``, ``cancel_button``, ``status``.
    :attr:`task` is the running :class:`~..worker.Task` (None when idle); :attr:`last_layer` the
    labels layer of the last successful run.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        keep_freed_memory()  # before the first worker thread exists (core.memory)
        self.viewer = napari_viewer
        self.session = Session.for_viewer(napari_viewer)  # autosave runs whichever widget is opened
        self.task: Task | None = None
        self.last_layer: Any = None
        self.last_result: Any = None
        self._last_case: str | None = None
        self._run_post: dict[str, int] = {}

        self.case_combo = QComboBox()
        self.model_combo = QComboBox()
        self.file_button = QPushButton("File...")
        self.folder_button = QPushButton("Folder...")
        self.get_models_button = QPushButton("Get models...")
        self.get_models_button.setToolTip("Download a publisher's pretrained model (CaPTk DeepMedic, MONAI bundle)")
        self.hub_catalog: Any = None  # None: the real publishers (tests point it at a local server)
        self.get_models_dialog: Any = None
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.runtime_combo = QComboBox()
        self.runtime_combo.addItems(RUNTIMES)
        self.runtime_combo.setToolTip("What runs the network on the CPU. auto: the fastest runtime measured to agree "
                                      "with torch on this kind of CPU; onnxruntime and openvino come with "
                                      'pip install "napari-brats-seg[fast]"')
        self.tta = QCheckBox("Test-time augmentation (flips)")
        self.uncertainty = QCheckBox("Add uncertainty layer (with TTA)")
        self.min_component = QSpinBox()
        self.min_component.setRange(0, 1_000_000)
        self.min_component.setSpecialValueText("off")
        self.min_component.setSuffix(" voxels")
        self.min_component.setToolTip("Whole-tumour components smaller than this become background")
        self.et_min = QSpinBox()
        self.et_min.setRange(0, 1_000_000)
        self.et_min.setSpecialValueText("off")
        self.et_min.setSuffix(" voxels")
        self.et_min.setToolTip("When the enhancing tumour totals fewer voxels, it is relabelled necrotic core")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # Progress rewrites this text many times a run: a label that took the size of each text made
        # the dock, hence napari's canvas, resize and redraw (a stall each time). Its width follows the
        # dock, and it keeps the height of three lines unless a longer message (an error) needs more.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.status.setMinimumHeight(3 * self.status.fontMetrics().lineSpacing())

        pick = QHBoxLayout()
        pick.addWidget(self.file_button)
        pick.addWidget(self.folder_button)
        pick.addWidget(self.get_models_button)
        form = QFormLayout()
        form.addRow("Case", self.case_combo)
        form.addRow("Model", self.model_combo)
        form.addRow("", pick)
        form.addRow("Device", self.device_combo)
        form.addRow("Runtime", self.runtime_combo)
        form.addRow("Drop islands <", self.min_component)
        form.addRow("ET < N -> NCR", self.et_min)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.tta)
        lay.addWidget(self.uncertainty)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self._inputs = (self.case_combo, self.model_combo, self.file_button, self.folder_button,
                        self.device_combo, self.runtime_combo, self.tta, self.uncertainty, self.min_component, self.et_min,
                        self.run_button)

        self.file_button.clicked.connect(self._pick_file)
        self.folder_button.clicked.connect(self._pick_folder)
        self.get_models_button.clicked.connect(self.open_get_models)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self._refresh_cases)
        self._refresh_cases()
        self._list_shipped()

    # -- choices -------------------------------------------------------------------------------
    def _refresh_cases(self, _event: Any = None) -> None:
        current = self.case_combo.currentText()
        ids = case_ids(self.viewer.layers)
        self.case_combo.clear()
        self.case_combo.addItems(ids)
        active = self.session.current_case
        if active in ids and active != self._last_case:
            self.case_combo.setCurrentText(active)  # a newly opened case becomes the one to segment
        elif current in ids:
            self.case_combo.setCurrentText(current)
        self._last_case = active

    def _list_shipped(self) -> None:
        """Offer the shipped and installed models; start at the best (``registry.best_model``)."""
        from ...core.models.registry import best_model, list_models

        infos = [i for i in list_models() if "error" not in i]
        for info in infos:
            if self.model_combo.findData(info["source"]) < 0:
                self.model_combo.addItem(f"{info['name']} ({info['family']})", info["source"])
        best = best_model(infos)
        if best is not None:
            self.model_combo.setCurrentIndex(self.model_combo.findData(best["source"]))

    def open_get_models(self) -> Any:
        """Show the *Get models...* dialog (returned); an installed model is offered and chosen if best."""
        from .get_models import GetModelsDialog

        if self.get_models_dialog is None:
            self.get_models_dialog = GetModelsDialog(self, catalog=self.hub_catalog)
            self.get_models_dialog.installed.connect(lambda _folder: self._list_shipped())
        self.get_models_dialog.show()
        return self.get_models_dialog

    def add_model(self, source: Any, label: str | None = None) -> None:
        """Offer and select a model: a shipped name, a checkpoint or folder path, or a ``LoadedModel``."""
        if label is None:
            spec = getattr(source, "spec", None)
            label = f"{spec.name} (in memory)" if spec is not None else Path(str(source)).name
        self.model_combo.addItem(label, source)
        self.model_combo.setCurrentIndex(self.model_combo.count() - 1)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.add_model(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "DeepMedic or MONAI bundle folder")
        if path:
            self.add_model(path)

    # -- running -------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        for w in self._inputs:
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def run(self) -> Task | None:
        """Start segmenting the chosen case with the chosen model; returns the task (None if not started)."""
        if self.task is not None:
            return None
        source = self.model_combo.currentData()
        if source is None:
            error("Choose a model first.", "A shipped model, a checkpoint file or a model folder.")
            return None
        try:
            case = case_from_layers(self.viewer.layers, self.case_combo.currentText() or None)
        except KeyError as exc:
            error("There is no case to segment.", str(exc.args[0]))
            return None
        device, tta = self.device_combo.currentText(), self.tta.isChecked()
        runtime = self.runtime_combo.currentText()
        from ...core.runtimes import require

        try:
            require(runtime)
        except InferenceError as exc:
            error(f"Runtime {runtime} is not available.", str(exc))
            return None
        post = {"min_component_voxels": self.min_component.value(), "et_min_voxels": self.et_min.value()}
        self._run_post = dict(post)
        ref = next(s for ly in self.viewer.layers
                   if (s := source_of(ly)) is not None and s.case_id == case.case_id and s.role == "image")
        with_uncertainty = self.uncertainty.isChecked()

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            with gcpause.paused():  # torch, MONAI and the model: long-lived, made without a collection
                from ...core.inference import predict
                from ...core.models.registry import load_model

                model = load_model(source, device="cpu")
            seg = predict(case, model, device=device, tta=tta, probabilities=True, postprocess=post,
                          on_progress=on_progress, cancel=cancel, runtime=runtime)
            made = result_layers(seg, ref, post, with_uncertainty)  # made here, appended by the GUI
            seg.probabilities = None  # the layer keeps WT's in 8 bits; last_result need not hold the floats
            return seg, made

        self._set_running(True)
        self.status.setText(f"Segmenting {case.case_id}...")
        self._case_id = case.case_id
        self.task = start_task(work, description=f"segmenting {case.case_id}", wrap=InferenceError)
        self.task.progressed.connect(self._on_progress)
        self.task.succeeded.connect(self._on_result)
        self.task.failed.connect(lambda exc: self.status.setText(f"Failed: {exc}"))
        self.task.cancelled.connect(self._on_cancelled)
        self.task.done.connect(self._on_done)
        return self.task

    def cancel(self) -> None:
        """Ask the running inference to stop (it stops before its next window)."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling...")

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.status.setText(f"{done}/{total} {message}")

    def _on_cancelled(self) -> None:
        self.status.setText("Cancelled.")
        notify_info("Segmentation cancelled.")

    def _on_result(self, result: Any) -> None:
        """Add the run's layers (made by the worker), one per turn of the event loop."""
        seg, made = result
        self.last_result = seg
        if not any((s := source_of(ly)) is not None and s.case_id == self._case_id for ly in self.viewer.layers):
            self.status.setText(f"Case {self._case_id} was closed during the run; its result was not added.")
            return
        run_steps(self.task, self._result_steps(seg, made))

    def _result_steps(self, seg: Any, made: list[Any]) -> Any:
        self.viewer.layers.append(made[0])
        self.last_layer = made[0]
        yield
        for layer in made[1:]:  # the uncertainty map
            self.viewer.layers.append(layer)
            yield
        secs = seg.info.get("seconds")
        ran = str(seg.info.get("runtime", "torch")).split(" ")[0]
        self.status.setText(f"Done in {secs:.1f} s on {seg.info.get('device', '?')} ({ran})" if secs is not None
                            else "Done.")

    def _on_done(self) -> None:
        self.task = None
        self._set_running(False)


def result_layers(seg: Any, ref: LayerSource, post: dict[str, int], with_uncertainty: bool) -> list[Any]:
    """The napari layers of a segmentation (made off the GUI thread): the labels layer, named by
    :func:`result_name`, then the uncertainty map when asked for and present.

    The labels layer keeps the model's whole-tumour probability, 8-bit, in its
    ``metadata[PROBABILITY_KEY]`` when ``seg`` has probabilities (*Border by model confidence*).
    """
    from ...core.edit.confidence import quantise

    src = LayerSource(info=ref.info, role="prediction")
    data, kwargs, kind = labels_layer_data(seg.labels, src, f"{result_name(seg.info, post)} [{ref.case_id}]")
    if seg.probabilities is not None and "WT" in seg.probabilities:
        kwargs["metadata"][PROBABILITY_KEY] = quantise(seg.probabilities["WT"])
    out = [make_layer(data, kwargs, kind)]
    if with_uncertainty and seg.uncertainty is not None:
        usrc = LayerSource(info=ref.info, role="uncertainty")
        out.append(make_layer(seg.uncertainty, {
            "name": f"uncertainty [{ref.case_id}]", "colormap": "magma", "blending": "additive",
            "contrast_limits": (0.0, 0.5), "metadata": {"brats_seg": usrc}, **world_placement(ref.geometry)},
            "image"))
    return out


def result_name(info: dict[str, Any], post: dict[str, int]) -> str:
    """Layer name that says what produced a segmentation: model, TTA and clean-ups."""
    parts = [str(info.get("model", "prediction"))]
    if int(info.get("tta", 1) or 1) > 1:
        parts.append("TTA")
    if post.get("min_component_voxels"):
        parts.append(f"islands<{post['min_component_voxels']}")
    if post.get("et_min_voxels"):
        parts.append(f"ET<{post['et_min_voxels']}->NCR")
    return ", ".join(parts)
