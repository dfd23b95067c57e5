"""``brats-seg view [CASE ...]``: open napari with a case and the plugin's widgets docked."""

from __future__ import annotations

import argparse
from typing import Any

#: Dock widgets opened by ``view`` (display names in the manifest), in order.
WIDGETS = ("Load", "Segment", "Correct", "Score", "Save", "3D")
PLUGIN = "napari-brats-seg"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="open napari with a case (the synthetic sample when none) and the widgets")
    p.add_argument("case", nargs="*", help="case folder, MSD 4D file, BraTS-named files, or NIfTI files")
    p.add_argument("--labels", action="append", default=[], metavar="NIFTI",
                   help="extra label map(s) to open on top (e.g. a saved prediction)")
    p.add_argument("--no-widgets", action="store_true", help="do not dock the widgets")
    p.set_defaults(func=run)


def open_viewer(case: list[str] | None = None, labels: list[str] | None = None, *, widgets: bool = True,
                show: bool = True) -> Any:
    """Create a viewer holding ``case`` (or the sample case) and the plugin's docked widgets."""
    import napari

    viewer = napari.Viewer(title="napari-brats-seg", show=show)
    if widgets:
        for name in WIDGETS:
            viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name not in ("Load",))
    if case:
        viewer.open(case if len(case) > 1 else case[0], plugin=PLUGIN, stack=False)
    else:
        viewer.open_sample(PLUGIN, "synthetic_case")
    for path in labels or []:
        viewer.open(path, plugin=PLUGIN)
    return viewer


def run(args: argparse.Namespace) -> int:
    import napari

    open_viewer(args.case, args.labels, widgets=not args.no_widgets)
    napari.run()
    return 0
