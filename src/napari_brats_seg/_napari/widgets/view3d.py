"""3D widget: one click shows the tumour labels in 3D over a faint rendering of the brain.

*Back to 2D* puts back every display setting that *3D* changed (visibility, opacity, blending,
rendering, colormap of each layer), as they were when the user pressed *3D*.
"""

from __future__ import annotations

import weakref
from typing import Any

from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QSlider, QVBoxLayout, QWidget

from ...core import labels as lab
from ..layers import label_colormap, source_of, unwrap

#: Brain renderings offered (napari image ``rendering`` modes).
BRAIN_RENDERINGS = ("attenuated_mip", "translucent", "mip", "minip")
#: Layer settings :func:`show_3d` changes and :func:`show_2d` restores.
SAVED_SETTINGS = ("visible", "opacity", "blending", "rendering", "colormap", "attenuation")
#: Viewer -> the 2D settings of its layers, saved when it entered 3D through :func:`show_3d`.
_SAVED_2D: weakref.WeakKeyDictionary[Any, list[tuple[Any, dict[str, Any]]]] = weakref.WeakKeyDictionary()


def _save_2d_settings(viewer: Any) -> None:
    """Remember the display settings of every layer (once: restyling in 3D keeps the 2D ones)."""
    if viewer in _SAVED_2D:
        return
    _SAVED_2D[viewer] = [(ly, {k: getattr(ly, k) for k in SAVED_SETTINGS if hasattr(ly, k)})
                         for ly in viewer.layers if isinstance(ly, Image | Labels)]


def _restore_2d_settings(viewer: Any) -> bool:
    """Put back the settings saved by :func:`_save_2d_settings`; False when there were none."""
    saved = _SAVED_2D.pop(viewer, None)
    if saved is None:
        return False
    for layer, settings in saved:
        if layer not in viewer.layers:
            continue
        for key, value in settings.items():
            try:
                setattr(layer, key, value)
            except (ValueError, TypeError):  # e.g. a rendering the layer no longer offers
                continue
    return True


def show_3d(viewer: Any, *, rendering: str = "attenuated_mip", brain_opacity: float = 0.3,
            brain: Image | None = None, hide_edema: bool = True) -> Image | None:
    """Switch the viewer to 3D: the brain (one image layer) faint underneath, labels on top.

    Parameters
    ----------
    viewer
        The napari viewer.
    rendering
        Rendering of the brain image (:data:`BRAIN_RENDERINGS`).
    brain_opacity
        Opacity of the brain.
    brain
        The image layer to show; by default the case's FLAIR (else the first visible image).
    hide_edema
        Make edema transparent, so that the tumour core it envelops is visible (undone by
        :func:`show_2d`).

    Returns
    -------
    Image or None
        The brain layer shown.
    """
    viewer, brain = unwrap(viewer), unwrap(brain)
    _save_2d_settings(viewer)
    images = [ly for ly in viewer.layers if isinstance(ly, Image)]
    if brain is None:
        flair = [ly for ly in images if (s := source_of(ly)) is not None and s.modality == "flair"]
        visible = [ly for ly in images if ly.visible]
        brain = (flair or visible or images or [None])[-1]
    for ly in images:
        ly.visible = ly is brain
    if brain is not None:
        brain.rendering = rendering
        brain.opacity = brain_opacity
        brain.blending = "translucent_no_depth" if rendering == "translucent" else "additive"
        if rendering == "attenuated_mip":
            brain.attenuation = 0.5
    for ly in viewer.layers:
        if isinstance(ly, Labels):
            ly.rendering = "iso_categorical"
            ly.blending = "translucent"
            ly.opacity = 1.0
            if source_of(ly) is not None:
                ly.colormap = label_colormap(hidden=(lab.EDEMA,) if hide_edema else ())
    viewer.dims.ndisplay = 3
    _camera(viewer).angles = (0.0, 30.0, 60.0)
    viewer.reset_view()
    return brain


def show_2d(viewer: Any) -> None:
    """Back to the 2D slice view with the layers' settings from before :func:`show_3d`.

    Layers added while in 3D keep theirs; without a saved state every class is made visible.
    """
    viewer = unwrap(viewer)
    if not _restore_2d_settings(viewer):
        for ly in viewer.layers:
            if isinstance(ly, Labels) and source_of(ly) is not None:
                ly.colormap = label_colormap()
    viewer.dims.ndisplay = 2


class View3DWidget(QWidget):
    """Dock widget with a *Show 3D* / *Back to 2D* button, the brain rendering and its opacity.

    Public controls: ``show_button``, ``flat_button``, ``rendering_combo``, ``opacity_slider``,
    ``hide_edema``.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.show_button = QPushButton("Show tumour in 3D")
        self.flat_button = QPushButton("Back to 2D")
        self.rendering_combo = QComboBox()
        self.rendering_combo.addItems(BRAIN_RENDERINGS)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(30)
        self.hide_edema = QCheckBox("Hide edema (see the core inside)")
        self.hide_edema.setChecked(True)
        form = QFormLayout()
        form.addRow("Brain rendering", self.rendering_combo)
        form.addRow("Brain opacity", self.opacity_slider)
        form.addRow(self.hide_edema)
        lay = QVBoxLayout(self)
        lay.addWidget(self.show_button)
        lay.addLayout(form)
        lay.addWidget(self.flat_button)
        lay.addStretch(1)
        self.show_button.clicked.connect(self.show_3d)
        self.flat_button.clicked.connect(lambda: show_2d(self.viewer))
        self.rendering_combo.currentTextChanged.connect(self._restyle)
        self.opacity_slider.valueChanged.connect(self._restyle)
        self.hide_edema.toggled.connect(self._restyle)

    def show_3d(self) -> Image | None:
        """Render the case in 3D with the widget's settings."""
        return show_3d(self.viewer, rendering=self.rendering_combo.currentText(),
                       brain_opacity=self.opacity_slider.value() / 100.0,
                       hide_edema=self.hide_edema.isChecked())

    def _restyle(self, *_: Any) -> None:
        if self.viewer.dims.ndisplay == 3:
            self.show_3d()


def _camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
