"""Save widget: a labels layer to a NIfTI file in the source geometry.

The file lies voxel for voxel on the case's input files (same shape, voxel order, affine,
qform/sform), in the chosen label scheme (by default the one the layer came in). Writing over an
input file of the case is refused, and an existing file only with *Overwrite* ticked; refusals and
system errors (a read-only folder, a full disk) show as error notifications that name the path. A
successful save removes the layer's autosave recovery file.

The layer defaults to the newest prediction of the current case, never to the reference.

For a prepared case (its folder holds ``prepare.json``: a DICOM study or raw scans prepared by
``brats-seg prepare`` or the Load widget) *Write as* also offers the label map on the native grid of
the source T1ce (NIfTI) and a DICOM-SEG referencing the source T1ce series
(:func:`core.clinical.export.export_prepared`, in the background). The same refusals hold, and
nothing is written into the source study's folder.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core import labels as lab
from ...core.errors import BratsSegError, CaseError
from ..layers import source_of
from ..notify import error, info
from ..session import Session
from ..worker import Task, start_task
from ..writer import write_labels_layer
from ._qt import LayerCombo

AUTO_SCHEME = "as loaded"
#: What the layer can be written as: key -> menu text (the last two for prepared cases only).
TARGETS = {"case": "NIfTI on the case grid", "native": "NIfTI on the native T1ce grid",
           "dicom_seg": "DICOM-SEG (on the source T1ce series)"}


class SaveWidget(QWidget):
    """Dock widget that saves a labels layer.

    Public controls: ``layer_combo``, ``target_combo`` (data: a key of :data:`TARGETS`),
    ``scheme_combo``, ``path_edit``, ``browse_button``, ``overwrite``, ``save_button``;
    :attr:`last_saved` is the last written path, :attr:`task` a running export (None when idle).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_saved: Path | None = None
        self.task: Task | None = None
        self.session = Session.for_viewer(napari_viewer)
        self.layer_combo = LayerCombo(napari_viewer, Labels, default=self.session.newest)
        self.target_combo = QComboBox()
        self.scheme_combo = QComboBox()
        self.scheme_combo.addItems([AUTO_SCHEME, *lab.SCHEMES])
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("output .nii.gz")
        self.browse_button = QPushButton("...")
        self.overwrite = QCheckBox("Overwrite an existing file (never an input)")
        self.save_button = QPushButton("Save")

        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Labels layer", self.layer_combo)
        form.addRow("Write as", self.target_combo)
        form.addRow("Label scheme", self.scheme_combo)
        form.addRow("File", row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.overwrite)
        lay.addWidget(self.save_button)
        lay.addStretch(1)

        self.browse_button.clicked.connect(self._browse)
        self.save_button.clicked.connect(self.save)
        self.session.defaults_changed.connect(self._apply_default)
        self._default: Any = None
        self.layer_combo.currentIndexChanged.connect(self._update_targets)
        self._apply_default()
        self._update_targets()

    def _apply_default(self) -> None:
        """Follow the newest prediction when it changes."""
        default = self.session.newest()
        if default is not self._default:
            self._default = default
            self.layer_combo.set_layer(default)

    def _update_targets(self, _index: int = 0) -> None:
        """Offer the native grid and DICOM-SEG when the layer's case is a prepared case."""
        current = self.target_combo.currentData()
        keys = ["case"] + (["native", "dicom_seg"] if prepared_case(self.layer_combo.layer()) else [])
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        for k in keys:
            self.target_combo.addItem(TARGETS[k], k)
        self.target_combo.setCurrentIndex(max(0, self.target_combo.findData(current)))
        self.target_combo.blockSignals(False)

    def set_target(self, key: str) -> bool:
        """Choose what to write (a key of :data:`TARGETS`); False when it is not offered for the layer."""
        i = self.target_combo.findData(key)
        if i >= 0:
            self.target_combo.setCurrentIndex(i)
        return i >= 0

    def _browse(self) -> None:
        dicom = self.target_combo.currentData() == "dicom_seg"
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", self.path_edit.text(),
                                              "DICOM (*.dcm)" if dicom else "NIfTI (*.nii.gz *.nii)")
        if path:
            self.path_edit.setText(path)
            self.overwrite.setChecked(Path(path).exists())  # the dialog has asked already

    def save(self) -> Path | None:
        """Write the chosen layer; returns the path, or None after an error notification."""
        layer = self.layer_combo.layer()
        path = self.path_edit.text().strip()
        if layer is None or not path:
            error("Choose a labels layer and an output file.")
            return None
        scheme = self.scheme_combo.currentText()
        if self.target_combo.currentData() in ("native", "dicom_seg"):
            return self._export(layer, path, self.target_combo.currentData(), scheme)
        meta = {"metadata": layer.metadata, "scale": tuple(layer.scale), "translate": tuple(layer.translate)}
        try:
            written = write_labels_layer(path, layer.data, meta,
                                         scheme=None if scheme == AUTO_SCHEME else scheme,
                                         overwrite=self.overwrite.isChecked())
        except BratsSegError as exc:
            error("The labels were not saved.", str(exc))
            return None
        except OSError as exc:
            error("The labels were not saved.", os_error_text(exc, path))
            return None
        self.last_saved = Path(written[0])
        self.session.mark_saved(layer)
        info("The labels were saved.", f"'{layer.name}' to {self.last_saved}")
        return self.last_saved


    def _export(self, layer: Any, path: str, target: str, scheme: str) -> Task | None:
        """Write a prepared case's labels on the native T1ce grid or as DICOM-SEG, in the background."""
        if self.task is not None:
            return None
        case_dir = prepared_case(layer)
        src = source_of(layer)
        if case_dir is None or src is None:
            error("The labels were not saved.", "Only a prepared case's labels go back onto its source series.")
            return None
        out = _with_suffix(Path(path), target)
        problem = _refusal(out, src, case_dir, self.overwrite.isChecked())
        if problem:
            error("The labels were not saved.", problem)
            return None
        import nibabel as nib

        labels = nib.Nifti1Image(src.geometry.from_internal(np.asarray(layer.data, np.uint8)), src.geometry.affine)
        kw = {"native": out if target == "native" else None, "dicom_seg": out if target == "dicom_seg" else None,
              "model_name": layer.name.split(" [")[0],
              "native_scheme": src.scheme if scheme == AUTO_SCHEME else scheme}

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            from ...core.clinical.export import export_prepared

            return export_prepared(case_dir, labels, **kw)

        def saved(_written: Any) -> None:
            self.last_saved = out
            self.session.mark_saved(layer)
            info("The labels were saved.", f"'{layer.name}' as {TARGETS[target]} to {out}")

        self.save_button.setEnabled(False)
        self.task = start_task(work, description=f"writing {TARGETS[target]}", wrap=CaseError,
                               on_success=saved, on_done=self._export_done)
        return self.task

    def _export_done(self) -> None:
        self.task = None
        self.save_button.setEnabled(True)


def prepared_case(layer: Any) -> Path | None:
    """The folder of ``layer``'s case when it is a prepared case (it holds ``prepare.json``), else None."""
    src = source_of(layer) if layer is not None else None
    t1ce = src.sources.get("t1ce") if src is not None else None
    if not t1ce:
        return None
    folder = Path(t1ce).parent
    return folder if (folder / "prepare.json").is_file() else None


def _with_suffix(out: Path, target: str) -> Path:
    if target == "dicom_seg":
        return out if out.suffix.lower() == ".dcm" else out.with_name(out.name + ".dcm")
    return out if out.name.lower().endswith((".nii", ".nii.gz")) else out.with_name(out.name + ".nii.gz")


def _refusal(out: Path, src: Any, case_dir: Path, overwrite: bool) -> str | None:
    """Why ``out`` must not be written (an input, inside the source study, exists), or None."""
    from ...core.clinical.prepare import read_record

    target = out.resolve()
    if target in {p.resolve() for p in src.input_paths} or target == (case_dir / "prepare.json").resolve():
        return f"{out}: it is an input file of the case; choose another file."
    root = ((read_record(case_dir) or {}).get("sequences", {}).get("t1ce", {})).get("study_root")
    if root and target.is_relative_to(Path(root).resolve()):
        return f"{out}: it is inside the source DICOM study ({root}); nothing is written there."
    if out.exists() and not overwrite:
        return f"{out}: the file exists; tick Overwrite to replace it."
    if not out.parent.is_dir():
        return f"{out.parent}: the folder does not exist."
    return None


#: Plain words for the system errors a save meets.
OS_ERRORS = {
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "permission denied (the folder is not writable)",
    errno.EROFS: "the folder is on a read-only file system",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EEXIST: "a file stands where a folder of the path should be",
    errno.EISDIR: "the path is a folder",
    errno.ENAMETOOLONG: "the file name is too long",
}


def os_error_text(exc: OSError, path: str) -> str:
    """``<path>: <what went wrong, in words>`` for a system error of a save."""
    where = exc.filename or path
    why = OS_ERRORS.get(exc.errno or -1) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{where}: {why}."
