"""Views a radiologist reads: orientation of the three planes, linked cursor and position in mm,
scale bar, window/level presets, uncertainty colormap, 3D -> 2D, the workflow dock (issue 13, 4-10).

Every test drives a real viewer under Xvfb through the widgets' public controls and, for the
orientation, looks at the rendered pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_brats_seg._napari.layers import (
    META_KEY,
    LayerSource,
    case_layer_data,
    contrast_preset,
    world_placement,
)
from napari_brats_seg._napari.orientation import patient_position
from napari_brats_seg._napari.widgets._qt import add_layer_data

PLUGIN = "napari-brats-seg"


def _marker_case(small_case):
    """An image of ``small_case``'s grid, black but for a red block superior, anterior and right.

    Internal axes (z, y, x) grow towards S, P and L: the block sits at high z, low y, low x.
    """
    shape = small_case.images["flair"].shape
    data = np.zeros(shape, np.float32)
    z0, y0, x0 = int(shape[0] * 0.7), int(shape[1] * 0.15), int(shape[2] * 0.15)
    data[z0:z0 + 6, y0:y0 + 8, x0:x0 + 8] = 1.0
    src = LayerSource.of_case(small_case, "image", modality="flair")
    centre = (z0 + 3, y0 + 4, x0 + 4)
    return data, {"name": "marker", "contrast_limits": (0.0, 1.0), "colormap": "red", "metadata": {META_KEY: src},
                  **world_placement(small_case.geometry)}, centre


def _bright_centroid(shot: np.ndarray) -> tuple[float, float]:
    """(row, column) of the red marker's pixels as fractions of the picture (text is white, the cross cyan)."""
    rgb = shot[..., :3].astype(int)
    ys, xs = np.nonzero((rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80))
    assert ys.size > 20, "the marker is not on the picture"
    return float(ys.mean() / shot.shape[0]), float(xs.mean() / shot.shape[1])


def test_three_planes_show_superior_up_and_patient_right_on_the_left(make_napari_viewer, qtbot, small_case):
    viewer = make_napari_viewer(show=True)
    data, kwargs, centre = _marker_case(small_case)
    marker = viewer.add_image(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Views")
    widget.three_planes.setChecked(True)  # the coronal and sagittal views dock under the axial one
    views = widget.three_plane
    assert views is not None and set(views.models) == {"coronal", "sagittal"}
    views.set_point(tuple(marker.data_to_world(centre)))
    qtbot.wait(50)

    def where(plane: str) -> tuple[float, float]:
        if plane == "axial":
            return _bright_centroid(viewer.screenshot(canvas_only=True, flash=False))
        views.models[plane].reset_view()
        return _bright_centroid(views.qt_viewers[plane].screenshot(flash=False))

    # Radiological: anterior at the top of the axial view, superior at the top of coronal and
    # sagittal views, the patient's right on the image left, anterior on the left of the sagittal.
    row, col = where("axial")
    assert row < 0.5 and col < 0.5
    row, col = where("coronal")
    assert row < 0.5 and col < 0.5
    row, col = where("sagittal")
    assert row < 0.5 and col < 0.5

    # Neurological: the patient's right goes to the image right; superior stays up.
    widget.convention_combo.setCurrentText("Neurological")
    row, col = where("axial")
    assert row < 0.5 and col > 0.5
    row, col = where("coronal")
    assert row < 0.5 and col > 0.5
    row, col = where("sagittal")
    assert row < 0.5 and col < 0.5

    # 3D: never a mirror image. LPS axes are left-handed in napari's (z, y, x) sense; seen from the
    # feet (radiological) the marker is where the axial slice shows it.
    viewer.dims.ndisplay = 3
    assert str(viewer.scene.camera.handedness) == "left"
    viewer.scene.camera.angles = (0.0, 0.0, 0.0)
    viewer.reset_view()
    row, col = where("axial")
    assert row < 0.5 and col > 0.5  # still neurological here: seen from above, the right on the right
    viewer.dims.ndisplay = 2

    # The main canvas rolled to a coronal reformat is upright too (napari's roll-dims button).
    widget.convention_combo.setCurrentText("Radiological")
    widget.three_planes.setChecked(False)
    assert widget.three_plane is None
    viewer.dims.order = (1, 0, 2)
    viewer.reset_view()
    row, col = where("axial")  # the main canvas, now coronal
    assert row < 0.5 and col < 0.5


def test_linked_cursor_position_in_mm_and_scale_bar(make_napari_viewer, qtbot, small_case):
    viewer = make_napari_viewer(show=True)
    add_layer_data(viewer, case_layer_data(small_case))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Views")
    assert widget.scale_bar.isChecked() and viewer.canvas.overlays.scale_bar.visible
    widget.scale_bar.setChecked(False)
    assert not viewer.canvas.overlays.scale_bar.visible
    widget.scale_bar.setChecked(True)

    widget.three_planes.setChecked(True)
    views = widget.three_plane
    gt = viewer.layers[-1]
    target = tuple(float(v) for v in gt.data_to_world((30, 20, 40)))
    # Moving the axial slice moves the linked point of the side views.
    views.set_point(target)
    for model in views.models.values():
        assert np.allclose(model.dims.point, target, atol=1.0)
    # Moving the coronal view's slider moves the main viewer's point (the linked cursor).
    coronal = views.models["coronal"]
    moved = list(coronal.dims.point)
    moved[1] += 6.0
    coronal.dims.point = tuple(moved)
    assert viewer.dims.point[1] == pytest.approx(coronal.dims.point[1])
    assert views.models["sagittal"].dims.point[1] == pytest.approx(coronal.dims.point[1])

    # A click (no drag) in the sagittal view moves the cursor there.
    qtv = views.qt_viewers["sagittal"]
    canvas = qtv.canvas.native
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.rect().center())
    qtbot.wait(50)
    assert not np.allclose(viewer.dims.point, moved, atol=0.5)
    assert viewer.dims.point[2] == pytest.approx(moved[2])  # the sagittal slice itself is unchanged

    # Positions read in the patient frame with letters, not voxel indices or LPS signs.
    text = patient_position(viewer.dims.point)
    assert text in widget.position_label.text()
    z, y, x = viewer.dims.point
    assert text == (f"{'L' if x >= 0 else 'R'} {abs(x):.1f}  {'P' if y >= 0 else 'A'} {abs(y):.1f}  "
                    f"{'S' if z >= 0 else 'I'} {abs(z):.1f} mm")
    assert viewer.canvas.overlays.text.visible and "axial" in viewer.canvas.overlays.text.text
    assert patient_position((-20.0, 34.5, -12.0)) == "R 12.0  P 34.5  I 20.0 mm"


def test_window_level_presets_per_sequence(make_napari_viewer, small_case):
    viewer = make_napari_viewer()
    add_layer_data(viewer, case_layer_data(small_case))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Views")
    flair = next(ly for ly in viewer.layers if ly.name.startswith("FLAIR"))
    t1 = next(ly for ly in viewer.layers if ly.name.startswith("T1 "))
    widget.image_combo.set_layer(flair)
    seen = {}
    for key in ("brain", "tumour", "auto"):
        widget.preset_combo.setCurrentIndex(widget.preset_combo.findData(key))
        widget.preset_combo.activated.emit(widget.preset_combo.currentIndex())
        seen[key] = tuple(flair.contrast_limits)
        assert seen[key] == pytest.approx(contrast_preset(flair.data, key, "flair"))
    assert len(set(seen.values())) == 3
    # The tumour window darkens normal parenchyma: its lower limit is well above the brain window's.
    assert seen["tumour"][0] > seen["brain"][0]
    # One click applies the preset to every sequence, each with its own percentiles.
    widget.preset_combo.setCurrentIndex(widget.preset_combo.findData("tumour"))
    widget.all_button.click()
    assert tuple(t1.contrast_limits) == pytest.approx(contrast_preset(t1.data, "tumour", "t1"))


def test_legend_volumes_follow_paint_and_undo(make_napari_viewer, qtbot, small_case):
    viewer = make_napari_viewer()
    add_layer_data(viewer, case_layer_data(small_case))
    gt = viewer.layers[-1]
    _, legend = viewer.window.add_plugin_dock_widget(PLUGIN, "Legend")
    assert legend.layer is gt and "ground truth" in legend.title.text()
    ml = float(np.prod(small_case.geometry.spacing)) / 1000.0
    counts = np.bincount(np.asarray(gt.data).ravel(), minlength=5)
    assert legend.volumes["ED"] == pytest.approx(counts[2] * ml)
    assert legend.volumes["WT"] == pytest.approx(counts[1:4].sum() * ml)
    assert legend.volumes["TC"] == pytest.approx((counts[1] + counts[3]) * ml)
    row = {legend.table.item(r, 0).text(): legend.table.item(r, 1).text() for r in range(legend.table.rowCount())}
    assert row["edema (ED)"] == f"{counts[2] * ml:.2f}"
    assert not legend.table.item(0, 0).icon().isNull()  # the class colour swatch

    before = legend.volumes["ET"]
    gt.brush_size = 6
    gt.selected_label = 3
    gt.mode = "paint"
    gt.paint((2, 2, 2), 3)  # napari's brush (records undo history, emits the paint event)
    qtbot.waitUntil(lambda: legend.volumes["ET"] > before, timeout=3000)
    painted = legend.volumes["ET"]
    gt.undo()  # no paint event: the legend follows the data change anyway
    qtbot.waitUntil(lambda: legend.volumes["ET"] == pytest.approx(before), timeout=3000)
    gt.redo()
    qtbot.waitUntil(lambda: legend.volumes["ET"] == pytest.approx(painted), timeout=3000)

    # The legend follows the active labels layer.
    other = viewer.add_labels(np.zeros_like(gt.data), name="empty", scale=gt.scale, translate=gt.translate)
    viewer.layers.selection.active = other
    assert legend.layer is other and legend.volumes["WT"] == 0.0


def test_uncertainty_map_perceptual_colormap_and_colour_bar(make_napari_viewer, small_case):
    viewer = make_napari_viewer(show=True)
    add_layer_data(viewer, case_layer_data(small_case))
    for ly in viewer.layers:
        ly.visible = ly.name.startswith("FLAIR")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Views")
    flair = next(ly for ly in viewer.layers if ly.name.startswith("FLAIR"))
    flair.contrast_limits = (0.0, 1e-6)  # the brain shows white: the worst case for an overlay
    unc = np.zeros(flair.data.shape, np.float32)
    shape = unc.shape
    unc[:, : shape[1] // 2, :] = 0.5  # maximal disagreement on the anterior half
    src = LayerSource(info=small_case.info, role="uncertainty")
    # As the Segment widget adds it: magma, additive.
    layer = viewer.add_image(unc, name="uncertainty", colormap="magma", blending="additive",
                             contrast_limits=(0.0, 1.0), metadata={META_KEY: src},
                             **world_placement(small_case.geometry))
    assert layer.colormap.name.startswith("magma")
    assert tuple(layer.contrast_limits) == (0.0, 0.5)
    assert layer.colorbar.visible and layer.blending == "translucent"
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    h, w = shot.shape[:2]
    top = shot[int(h * 0.3), w // 2]  # anterior half (uncertainty 0.5) over white brain
    bottom = shot[int(h * 0.7), w // 2]  # posterior half (uncertainty 0): the brain shows through
    assert top.sum() < 3 * 235 and top.max() - top.min() > 80, f"the uncertainty saturates to white: {top}"
    assert bottom.min() > 200, f"zero uncertainty hides the anatomy: {bottom}"


def test_back_to_2d_restores_opacity_and_blending(make_napari_viewer, qtbot, small_case):
    viewer = make_napari_viewer(show=True)
    add_layer_data(viewer, case_layer_data(small_case))
    flair = next(ly for ly in viewer.layers if ly.name.startswith("FLAIR"))
    t2 = next(ly for ly in viewer.layers if ly.name.startswith("T2"))
    gt = viewer.layers[-1]
    flair.opacity, flair.blending = 0.9, "translucent"
    t2.visible, t2.opacity = True, 0.5
    gt.opacity = 0.45
    before = {ly.name: (ly.visible, ly.opacity, ly.blending) for ly in viewer.layers}
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "3D")
    qtbot.mouseClick(widget.show_button, Qt.MouseButton.LeftButton)
    assert viewer.dims.ndisplay == 3 and gt.opacity == 1.0 and flair.opacity == pytest.approx(0.3)
    widget.opacity_slider.setValue(50)  # restyling in 3D does not forget the 2D settings
    qtbot.mouseClick(widget.flat_button, Qt.MouseButton.LeftButton)
    assert viewer.dims.ndisplay == 2
    assert {ly.name: (ly.visible, ly.opacity, ly.blending) for ly in viewer.layers} == before


def test_view_command_opens_one_dock_in_workflow_order(make_napari_viewer, qtbot):
    from napari_brats_seg._napari.widgets.dock import SECTIONS
    from napari_brats_seg.commands.view import open_viewer

    # What ``brats-seg view`` does, in the test's viewer.
    viewer = open_viewer(None, viewer=make_napari_viewer(show=True))
    docks = dict(viewer.window.dock_widgets)
    dock = docks["Workflow (napari-brats-seg)"]
    titles = [dock.sections[attr].text() for attr, *_ in SECTIONS]
    assert [t.split(" ", 1)[-1] for t in titles[:5]] == ["Load a case", "Segment", "Correct", "Score", "Save"]
    assert dock.sections["load"].isExpanded()
    assert not any(dock.sections[a].isExpanded() for a, *_ in SECTIONS[1:])
    qtbot.wait(50)
    for section in dock.sections.values():  # no title cut to "Loa..."
        button = section.toggleButton()
        assert button.fontMetrics().horizontalAdvance(section.text()) < button.width()
    assert "Coronal and sagittal" in docks  # the three-plane layout is on
    _, _, width, height = viewer.window.geometry()
    assert width >= 1200 and height >= 800
    assert len(dock.legend.volumes) > 0  # the sample's ground truth

    # 3D as a toggle.
    dock.toggle_3d.click()
    assert viewer.dims.ndisplay == 3
    dock.toggle_3d.click()
    assert viewer.dims.ndisplay == 2

    # The Score table's columns (volumes included) fit without scrolling.
    dock.open_section("score", only=True)
    qtbot.wait(50)
    table = dock.score.table
    assert table.horizontalScrollBar().maximum() == 0
    header = table.horizontalHeader()
    for c in range(table.columnCount()):
        text = table.horizontalHeaderItem(c).text()
        assert header.sectionSize(c) >= header.fontMetrics().horizontalAdvance(text) + 4, text
