"""Patient orientation of 2D views and positions in the patient frame (R/L, A/P, S/I).

Layers lie in LPS world millimetres with axes ``(z, y, x)``: world axis 0 grows towards the
patient's **S**\\ uperior, axis 1 towards **P**\\ osterior, axis 2 towards the patient's **L**\\ eft
(see :func:`..layers.world_placement`). napari draws the first displayed axis downwards and the
second to the right unless the camera says otherwise, so an axial slice is right as it comes
(anterior at the top, the patient's right on the image left) but coronal and sagittal reformats
come out upside down. napari 0.9's camera has a per-axis ``orientation`` (``up``/``down``,
``left``/``right``) that flips the *view*, not the data: layers keep their world coordinates, so
the cursor, measurements, painting and saving are unchanged. :func:`orient_view` sets it from the
displayed axes, and :func:`follow_orientation` keeps it right when the user rolls or transposes the
dimensions.

Conventions: *radiological* (3D Slicer's and ITK-SNAP's default) shows the patient's right on the
image left in axial and coronal views, as if facing the patient; *neurological* shows it on the
right. Both show superior at the top of coronal and sagittal views, anterior at the top of axial
views and anterior on the left of sagittal views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The two display conventions.
CONVENTIONS = ("radiological", "neurological")
#: Names of the planes shown by each pair of displayed world axes.
PLANES = {(1, 2): "axial", (0, 2): "coronal", (0, 1): "sagittal"}
#: World axes displayed (vertical, horizontal) in each plane.
PLANE_AXES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}
#: ``dims.order`` of a 3D viewer showing each plane (the sliced axis first).
PLANE_ORDER = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
#: Letters of the negative / positive direction of each world axis (LPS).
AXIS_LETTERS = (("I", "S"), ("A", "P"), ("R", "L"))


def orientation_2d(vertical_axis: int, horizontal_axis: int,
                   convention: str = "radiological") -> tuple[str, str]:
    """Camera ``orientation2d`` that shows two world axes in the patient's usual orientation.

    Parameters
    ----------
    vertical_axis, horizontal_axis
        The world axes (0 S, 1 P, 2 L) drawn vertically and horizontally.
    convention
        ``"radiological"`` or ``"neurological"``.

    Returns
    -------
    tuple of str
        ``(vertical, horizontal)``: ``"up"``/``"down"`` and ``"left"``/``"right"``, the direction
        in which each axis grows on screen.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    # Superior up; posterior down (anterior at the top of axial views); left down when transposed.
    vertical = "up" if vertical_axis == 0 else "down"
    if horizontal_axis == 2:  # the patient's left grows to the right in radiological views
        horizontal = "right" if convention == "radiological" else "left"
    else:  # posterior to the right: sagittal views face the viewer's left; superior to the right
        horizontal = "right"
    return vertical, horizontal


def displayed_plane(viewer: Any) -> str | None:
    """``"axial"``, ``"coronal"`` or ``"sagittal"``: what a 2D viewer shows (None in 3D or nD)."""
    if viewer.dims.ndim != 3 or viewer.dims.ndisplay != 2:
        return None
    return PLANES.get(tuple(sorted(viewer.dims.displayed)))


#: 3D camera orientation per convention. LPS axes in napari's ``(z, y, x)`` order are left-handed
#: in napari's sense (S x P = R), so napari's default ``("towards", "down", "right")`` would draw a
#: mirror image. Radiological: seen from the feet (superior away), anterior up, the patient's right
#: on the left, like the axial slices; neurological: seen from above, the patient's right on the right.
ORIENTATION_3D = {"radiological": ("away", "down", "right"), "neurological": ("towards", "down", "left")}


def orient_view(viewer: Any, convention: str = "radiological") -> None:
    """Set the camera orientation of ``viewer`` for the axes it displays.

    In 2D as the convention says; in 3D :data:`ORIENTATION_3D` (never a mirror image).
    """
    if viewer.dims.ndim != 3:
        return
    if viewer.dims.ndisplay == 3:
        if tuple(viewer.dims.displayed) == (0, 1, 2):
            camera(viewer).orientation = ORIENTATION_3D[convention]
        return
    v_axis, h_axis = viewer.dims.displayed
    camera(viewer).orientation2d = orientation_2d(v_axis, h_axis, convention)


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


class OrientationFollower:
    """Keeps a viewer's 2D camera in the patient orientation of a convention.

    Re-orients on every change of the displayed axes (the *roll* and *transpose* buttons,
    2D/3D toggles, a first layer that adds the dimensions).

    Parameters
    ----------
    viewer
        The viewer (or a ``ViewerModel``) to follow.
    convention
        ``"radiological"`` (default) or ``"neurological"``.
    """

    def __init__(self, viewer: Any, convention: str = "radiological") -> None:
        self.viewer = viewer
        self.convention = convention
        for ev in (viewer.dims.events.order, viewer.dims.events.ndisplay, viewer.dims.events.ndim):
            ev.connect(self.update)
        self.update()

    def set_convention(self, convention: str) -> None:
        """Switch convention and re-orient."""
        orientation_2d(0, 2, convention)  # validates
        self.convention = convention
        self.update()

    def update(self, _event: Any = None) -> None:
        """Re-orient the camera for the axes displayed now."""
        orient_view(self.viewer, self.convention)

    def disconnect(self) -> None:
        """Stop following."""
        for ev in (self.viewer.dims.events.order, self.viewer.dims.events.ndisplay,
                   self.viewer.dims.events.ndim):
            ev.disconnect(self.update)


def follow_orientation(viewer: Any, convention: str = "radiological") -> OrientationFollower:
    """Orient ``viewer`` now and whenever its displayed axes change; returns the follower."""
    return OrientationFollower(viewer, convention)


def patient_position(world: Sequence[float]) -> str:
    """A world point (LPS mm, ``(z, y, x)``) in the patient frame, e.g. ``"R 12.0  A 34.5  S 20.0 mm"``.

    The letters name the side of the origin the point lies on: R/L (x), A/P (y), S/I (z).
    """
    z, y, x = (float(v) for v in list(world)[-3:])
    parts = []
    for value, axis in ((x, 2), (y, 1), (z, 0)):
        neg, pos = AXIS_LETTERS[axis]
        letter = pos if value >= 0 else neg
        parts.append(f"{letter} {abs(value):.1f}")
    return "  ".join(parts) + " mm"


def plane_position(world: Sequence[float], plane: str) -> str:
    """The position of a slice of ``plane`` through ``world``, e.g. ``"axial S 20.0 mm"``."""
    sliced = ({0, 1, 2} - set(PLANE_AXES[plane])).pop()
    value = float(list(world)[-3:][sliced])
    neg, pos = AXIS_LETTERS[sliced]
    return f"{plane} {pos if value >= 0 else neg} {abs(value):.1f} mm"


def world_to_voxel(layer: Any, world: Sequence[float]) -> tuple[int, ...] | None:
    """The voxel of ``layer`` under a world point (None when outside the layer)."""
    idx = np.round(np.asarray(layer.world_to_data(np.asarray(world, dtype=float)))).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(layer.data.shape)):
        return None
    return tuple(int(i) for i in idx)
