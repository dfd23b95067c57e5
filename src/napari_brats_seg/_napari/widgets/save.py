"""Save widget: a labels layer to a NIfTI file in the source geometry.

The file lies voxel for voxel on the case's input files (same shape, voxel order, affine,
qform/sform), in the chosen label scheme (by default the one the layer came in). Writing over an
input file of the case is refused, and an existing file only with *Overwrite* ticked; refusals
show as error notifications. A successful save removes the layer's autosave recovery file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.layers import Labels
from napari.utils.notifications import show_error, show_info
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
from ..autosave import discard_recovery
from ..layers import source_of
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
        self.layer_combo = LayerCombo(napari_viewer, Labels)
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
            show_error("Choose a labels layer and an output file.")
            return None
        scheme = self.scheme_combo.currentText()
        meta = {"metadata": layer.metadata, "scale": tuple(layer.scale), "translate": tuple(layer.translate)}
        try:
            written = write_labels_layer(path, layer.data, meta,
                                         scheme=None if scheme == AUTO_SCHEME else scheme,
                                         overwrite=self.overwrite.isChecked())
        except BratsSegError as exc:
            show_error(f"Not saved: {exc}")
            return None
        self.last_saved = Path(written[0])
        src = source_of(layer)
        if src is not None:
            discard_recovery(src.case_id, layer.name)
        show_info(f"Saved {layer.name} to {self.last_saved}")
        return self.last_saved
