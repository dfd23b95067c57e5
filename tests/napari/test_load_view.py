"""Load widget (file roles, geometry check, background read), 3D view, and ``brats-seg view``."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt

from napari_brats_seg._napari.layers import case_layer_data, source_of
from napari_brats_seg._napari.widgets._qt import add_layer_data
from napari_brats_seg.core import labels as lab

PLUGIN = "napari-brats-seg"


def test_load_widget_roles_geometry_and_load(make_napari_viewer, qtbot, small_case_dir: Path, tmp_path: Path
                                            ) -> None:
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    # A stray file of another grid in the folder, to be picked by mistake.
    t1 = next(small_case_dir.glob("*_t1.nii.gz"))
    img = nib.load(str(t1))
    stray = small_case_dir / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:-2], img.affine), str(stray))

    files = widget.inspect(str(small_case_dir))
    assert files is not None and files.layout == "brats2021"
    assert widget.role_combo("t1").currentText() == t1.name
    assert widget.role_combo("seg").currentText().endswith("_seg.nii.gz")
    assert widget.geometry_label.text().startswith("Geometry OK") and widget.load_button.isEnabled()

    # The user picks the wrong file for T1: the geometry check names it and Load is disabled.
    widget.role_combo("t1").setCurrentText(stray.name)
    assert "Geometry differs" in widget.geometry_label.text() and "T1" in widget.geometry_label.text()
    assert not widget.load_button.isEnabled()
    # The same file for two sequences is refused too.
    widget.role_combo("t1").setCurrentText(widget.role_combo("t2").currentText())
    assert not widget.load_button.isEnabled()
    widget.role_combo("t1").setCurrentText(t1.name)
    assert widget.load_button.isEnabled()

    qtbot.mouseClick(widget.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == 5, timeout=30_000)
    assert sum(isinstance(ly, Image) for ly in viewer.layers) == 4
    gt = viewer.layers[-1]
    assert isinstance(gt, Labels) and source_of(gt).gt_path.endswith("_seg.nii.gz")
    qtbot.waitUntil(lambda: widget.task is None, timeout=10_000)
    assert widget.load_button.isEnabled()


def test_load_widget_reports_an_unusable_folder(make_napari_viewer, tmp_path: Path, notifications) -> None:
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    (tmp_path / "nothing").mkdir()
    assert widget.inspect(str(tmp_path / "nothing")) is None
    assert "Cannot use this" in widget.geometry_label.text() and not widget.load_button.isEnabled()
    assert any("no .nii" in m for m in notifications())


def test_3d_button_renders_label_colours(make_napari_viewer, qtbot, small_case) -> None:
    viewer = make_napari_viewer(show=True)
    add_layer_data(viewer, case_layer_data(small_case))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "3D")
    qtbot.mouseClick(widget.show_button, Qt.MouseButton.LeftButton)
    assert viewer.dims.ndisplay == 3
    brain = [ly for ly in viewer.layers if isinstance(ly, Image) and ly.visible]
    assert len(brain) == 1 and source_of(brain[0]).modality == "flair"
    assert brain[0].rendering == "attenuated_mip"

    def hues(shot: np.ndarray) -> dict[int, int]:
        """Pixels of each class's hue (the shaded iso-surface darkens colours but keeps the hue)."""
        rgb = shot[..., :3].reshape(-1, 3).astype(float)
        norms = np.linalg.norm(rgb, axis=1)
        bright = norms > 60
        out = {}
        for cls in (lab.NECROTIC, lab.EDEMA, lab.ENHANCING):
            colour = np.array(lab.CLASS_COLOURS[cls][:3])
            cos = (rgb[bright] @ colour) / (norms[bright] * np.linalg.norm(colour))
            out[cls] = int(np.count_nonzero(cos > 0.995))
        return out

    # Edema hidden (default): the enhancing core it envelops shows (the necrosis is inside that ring).
    core = hues(viewer.screenshot(canvas_only=True, flash=False))
    assert core[lab.ENHANCING] > 200 and core[lab.EDEMA] < 10
    widget.hide_edema.setChecked(False)
    whole = hues(viewer.screenshot(canvas_only=True, flash=False))
    assert whole[lab.EDEMA] > 200
    qtbot.mouseClick(widget.flat_button, Qt.MouseButton.LeftButton)
    assert viewer.dims.ndisplay == 2
    gt = viewer.layers[-1]
    assert np.allclose(gt.colormap.map(np.array([lab.EDEMA]))[0], lab.CLASS_COLOURS[lab.EDEMA])


def test_view_command_docks_every_widget(qtbot) -> None:
    from napari_brats_seg import cli
    from napari_brats_seg.commands.view import WIDGETS, open_viewer

    assert "view" in cli.build_parser()._subparsers._group_actions[0].choices
    viewer = open_viewer(None, show=False)
    try:
        assert set(WIDGETS) <= {name.split(" (")[0] for name in viewer.window.dock_widgets}
        assert any(isinstance(ly, Labels) for ly in viewer.layers)
        assert sum(isinstance(ly, Image) for ly in viewer.layers) == 4
    finally:
        viewer.close()


def test_load_widget_accepts_a_file_stored_transposed(make_napari_viewer, qtbot, small_case_dir: Path,
                                                      tmp_path: Path) -> None:
    """A sequence stored in another voxel order on the same world grid loads, as the reader accepts it."""
    import shutil

    from napari_brats_seg.core.io import read_case

    case_dir = tmp_path / small_case_dir.name
    shutil.copytree(small_case_dir, case_dir)
    for stray in case_dir.glob("other_grid*"):
        stray.unlink()
    t2 = next(case_dir.glob("*_t2.nii.gz"))
    img = nib.load(str(t2))
    data = np.asanyarray(img.dataobj)
    swap = img.affine[:, [1, 0, 2, 3]]  # voxel axes i and j exchanged: the same voxels, stored transposed
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data.transpose(1, 0, 2)), swap, img.header), str(t2))
    expected = read_case(small_case_dir).images["t2"]

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    assert widget.inspect(str(case_dir)) is not None
    text = widget.geometry_label.text()
    assert text.startswith("Geometry OK") and "another voxel order" in text and "T2" in text
    assert widget.load_button.isEnabled()
    qtbot.mouseClick(widget.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == 5, timeout=30_000)
    t2_layer = next(ly for ly in viewer.layers if isinstance(ly, Image) and source_of(ly).modality == "t2")
    np.testing.assert_array_equal(np.asarray(t2_layer.data), expected)
