"""``brats-seg view [CASE ...]``: open napari with a case and the plugin's dock."""

from __future__ import annotations

import argparse
from typing import Any

#: Dock widgets opened by ``view`` (display names in the manifest), in order: the one workflow dock
#: (legend, then Load, Segment, Correct, Score, Save, Measure, Views and 3D as sections).
WIDGETS = ("Workflow",)
PLUGIN = "napari-brats-seg"
#: Largest window ``view`` opens (logical pixels); smaller screens get 92 % of their area.
WINDOW_SIZE = (1600, 1000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="open napari with a case (the synthetic sample when none) and the widgets")
    p.add_argument("case", nargs="*", help="case folder, MSD 4D file, BraTS-named files, or NIfTI files")
    p.add_argument("--labels", action="append", default=[], metavar="NIFTI",
                   help="extra label map(s) to open on top (e.g. a saved prediction)")
    p.add_argument("--no-widgets", action="store_true", help="do not dock the widgets")
    p.add_argument("--single-view", action="store_true",
                   help="only the axial canvas (no coronal and sagittal views under it)")
    p.add_argument("--neurological", action="store_true",
                   help="the patient's right on the image right (default: radiological, right on the left)")
    p.set_defaults(func=run)


def window_size(available: tuple[int, int] | None) -> tuple[int, int]:
    """The window size for a screen of ``available`` (width, height) logical pixels (None: unknown)."""
    if available is None:
        return WINDOW_SIZE
    return (min(WINDOW_SIZE[0], int(available[0] * 0.92)), min(WINDOW_SIZE[1], int(available[1] * 0.92)))


def open_viewer(case: list[str] | None = None, labels: list[str] | None = None, *, widgets: bool = True,
                show: bool = True, three_planes: bool = True, convention: str = "radiological",
                viewer: Any = None) -> Any:
    """Create (or fill ``viewer``) with ``case`` (or the sample case) and the plugin's dock.

    With ``widgets`` the workflow dock is docked (Load section open) and, when ``three_planes``,
    the coronal and sagittal views under the axial canvas, in the given ``convention``.
    """
    from qtpy.QtWidgets import QApplication

    if viewer is None:
        import napari

        viewer = napari.Viewer(title="napari-brats-seg", show=show)
    screen = QApplication.primaryScreen()
    geo = screen.availableGeometry() if screen is not None else None
    viewer.window.resize(*window_size((geo.width(), geo.height()) if geo is not None else None))
    dock = None
    if widgets:
        for name in WIDGETS:
            _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        if convention != "radiological":
            dock.display.convention_combo.setCurrentIndex(1)
    if case:
        viewer.open(case if len(case) > 1 else case[0], plugin=PLUGIN, stack=False)
    else:
        viewer.open_sample(PLUGIN, "synthetic_case")
    for path in labels or []:
        viewer.open(path, plugin=PLUGIN)
    if dock is not None and three_planes:
        dock.display.show_three_planes(True)
    return viewer


def run(args: argparse.Namespace) -> int:
    import napari

    open_viewer(args.case, args.labels, widgets=not args.no_widgets, three_planes=not args.single_view,
                convention="neurological" if args.neurological else "radiological")
    napari.run()
    return 0
