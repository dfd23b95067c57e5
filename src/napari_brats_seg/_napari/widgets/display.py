"""Views widget: patient orientation, three-plane layout, position in mm, scale bar, window/level.

Opening it (``brats-seg view`` always does) orients the main canvas for the patient (superior at
the top of coronal and sagittal reformats, the patient's right on the image left in the
radiological convention), turns napari's scale bar on, writes the slice and cursor positions in
the patient frame (``R 12.0  A 34.5  S 20.0 mm``) on the canvas and in the widget, and gives every
uncertainty map a perceptual colormap with a colour bar.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..layers import CONTRAST_PRESETS, contrast_preset, source_of, uncertainty_style, unwrap
from ..orientation import CONVENTIONS, OrientationFollower, displayed_plane, patient_position, plane_position
from ..orthoview import ThreePlaneView
from ._qt import LayerCombo

THREE_PLANE_DOCK = "Coronal and sagittal"


def style_uncertainty(layer: Any) -> None:
    """Perceptual colormap, 0-0.5 range, translucent blending and a colour bar for an uncertainty map."""
    for key, value in uncertainty_style().items():
        setattr(layer, key, value)
    layer.colorbar.visible = True


class DisplayWidget(QWidget):
    """Display settings of a reading session.

    Public controls: ``convention_combo`` (radiological / neurological), ``three_planes``
    (coronal and sagittal views docked under the axial canvas), ``scale_bar``, ``image_combo``
    and ``preset_combo`` (window/level of one sequence), ``all_button`` (the preset on every
    sequence), ``position_label``. :attr:`three_plane` is the :class:`ThreePlaneView` while shown.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer = unwrap(napari_viewer)
        self.three_plane: ThreePlaneView | None = None
        self._three_dock: Any = None
        self.follower = OrientationFollower(napari_viewer)
        self.convention_combo = QComboBox()
        self.convention_combo.addItems([c.capitalize() for c in CONVENTIONS])
        self.convention_combo.setToolTip("Radiological: the patient's right on the image left (as 3D Slicer and "
                                         "ITK-SNAP). Neurological: the patient's right on the right.")
        self.three_planes = QCheckBox("Show coronal and sagittal views")
        self.scale_bar = QCheckBox("Scale bar")
        self.image_combo = LayerCombo(napari_viewer, Image)
        self.preset_combo = QComboBox()
        for key, (label, _) in CONTRAST_PRESETS.items():
            self.preset_combo.addItem(label, key)
        self.all_button = QPushButton("Apply to every sequence")
        self.position_label = QLabel("")
        self.position_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Orientation", self.convention_combo)
        form.addRow(self.three_planes)
        form.addRow(self.scale_bar)
        form.addRow("Sequence", self.image_combo)
        form.addRow("Window", self.preset_combo)
        form.addRow(self.all_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.position_label)
        self.convention_combo.currentIndexChanged.connect(self._on_convention)
        self.three_planes.toggled.connect(self.show_three_planes)
        self.scale_bar.toggled.connect(self._on_scale_bar)
        self.preset_combo.activated.connect(lambda _i: self.apply_preset())
        self.all_button.clicked.connect(lambda: self.apply_preset(every=True))
        napari_viewer.dims.events.point.connect(self._update_position)
        napari_viewer.dims.events.order.connect(self._update_position)
        napari_viewer.dims.events.ndisplay.connect(self._update_position)
        napari_viewer.cursor.events.position.connect(self._update_position)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        for layer in napari_viewer.layers:
            self._style(layer)
        self.scale_bar.setChecked(True)
        self._on_scale_bar(True)
        text = napari_viewer.canvas.overlays.text
        text.visible, text.font_size, text.position = True, 10, "top_left"
        self._update_position()

    # -- orientation and layout --------------------------------------------------------------------
    @property
    def convention(self) -> str:
        """``"radiological"`` or ``"neurological"``."""
        return CONVENTIONS[self.convention_combo.currentIndex()]

    def _on_convention(self, _index: int) -> None:
        self.follower.set_convention(self.convention)
        if self.three_plane is not None:
            self.three_plane.set_convention(self.convention)

    def show_three_planes(self, on: bool = True) -> ThreePlaneView | None:
        """Dock (or remove) the coronal and sagittal views under the axial canvas."""
        if self.three_planes.isChecked() != on:
            self.three_planes.setChecked(on)  # re-enters through the toggled signal
            return self.three_plane
        if on and self.three_plane is None:
            self.three_plane = ThreePlaneView(self.viewer, self.convention)
            self._three_dock = self.viewer.window.add_dock_widget(
                self.three_plane, name=THREE_PLANE_DOCK, area="bottom")
            self.three_plane.watch_window()
            self.viewer.dims.order = (0, 1, 2)  # the main canvas is the axial view
        elif not on and self.three_plane is not None:
            self.three_plane.close_views()
            self.viewer.window.remove_dock_widget(self._three_dock)
            self.three_plane, self._three_dock = None, None
        return self.three_plane

    def _on_scale_bar(self, on: bool) -> None:
        self.viewer.canvas.overlays.scale_bar.visible = bool(on)

    # -- window / level ------------------------------------------------------------------------------
    def apply_preset(self, preset: str | None = None, *, every: bool = False) -> dict[str, tuple[float, float]]:
        """Apply a window/level preset (``auto``, ``brain``, ``tumour``) to the chosen sequence or all.

        Returns layer name -> the contrast limits set.
        """
        if preset is not None:
            self.preset_combo.setCurrentIndex(list(CONTRAST_PRESETS).index(preset))
        key = self.preset_combo.currentData()
        chosen = self.image_combo.layer()
        targets = [ly for ly in self.viewer.layers if isinstance(ly, Image) and self._is_sequence(ly)] if every \
            else [chosen] if chosen is not None else []
        out = {}
        for layer in targets:
            src = source_of(layer)
            limits = contrast_preset(layer.data, key, src.modality if src is not None else None)
            layer.contrast_limits = limits
            out[layer.name] = limits
        return out

    @staticmethod
    def _is_sequence(layer: Any) -> bool:
        src = source_of(layer)
        return src is not None and src.role == "image"

    # -- policies on new layers ------------------------------------------------------------------
    def _on_inserted(self, event: Any) -> None:
        self._style(event.value)

    @staticmethod
    def _style(layer: Any) -> None:
        src = source_of(layer)
        if src is not None and src.role == "uncertainty" and isinstance(layer, Image):
            style_uncertainty(layer)

    # -- position --------------------------------------------------------------------------------
    def _update_position(self, _event: Any = None) -> None:
        point = tuple(self.viewer.dims.point)
        if len(point) != 3:
            self.position_label.setText("")
            self.viewer.canvas.overlays.text.text = ""
            return
        plane = displayed_plane(self.viewer)
        slice_text = plane_position(point, plane) if plane else "3D"
        cursor = tuple(self.viewer.cursor.position)
        over = getattr(self.viewer, "mouse_over_canvas", True)
        cursor_text = patient_position(cursor) if len(cursor) == 3 and over else "-"
        self.position_label.setText(f"Slice: {slice_text}<br>Linked point: {patient_position(point)}<br>"
                                    f"Mouse: {cursor_text}")
        self.viewer.canvas.overlays.text.text = (f"{slice_text}\npoint {patient_position(point)}" if plane
                                                 else "")
