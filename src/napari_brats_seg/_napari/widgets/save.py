"""Save widget: a labels layer to a NIfTI file in the source geometry.

The file lies voxel for voxel on the case's input files (same shape, voxel order, affine,
qform/sform), in the chosen label scheme (by default the one the layer came in). Writing over an
input file of the case is refused, and an existing file only with *Overwrite* ticked; refusals and
system errors (a read-only folder, a full disk) show as error notifications that name the path. A
successful save removes the layer's autosave recovery file.

The layer defaults to the newest prediction of the current case, never to the reference.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

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
from ...core.errors import BratsSegError
from ..notify import error, info
from ..session import Session
from ..writer import write_labels_layer
from ._qt import LayerCombo

AUTO_SCHEME = "as loaded"


class SaveWidget(QWidget):
    """Dock widget that saves a labels layer.

    Public controls: ``layer_combo``, ``scheme_combo``, ``path_edit``, ``browse_button``,
    ``overwrite``, ``save_button``; :attr:`last_saved` is the last written path.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_saved: Path | None = None
        self.session = Session.for_viewer(napari_viewer)
        self.layer_combo = LayerCombo(napari_viewer, Labels, default=self.session.newest)
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
        self._apply_default()

    def _apply_default(self) -> None:
        """Follow the newest prediction when it changes."""
        default = self.session.newest()
        if default is not self._default:
            self._default = default
            self.layer_combo.set_layer(default)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", self.path_edit.text(),
                                              "NIfTI (*.nii.gz *.nii)")
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
