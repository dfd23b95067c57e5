"""Compare widget on two real case crops: side by side on the baseline grid, the change table, the warnings."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from scipy import ndimage

pytest.importorskip("SimpleITK", reason="registration needs SimpleITK (the [clinical] extra)")
PLUGIN = "napari-brats-seg"


def crop_case(src: Path, out_root: Path, size: int) -> Path:
    """A ``size``^3 crop of a real case around its tumour, written as an uncompressed BraTS case."""
    seg = nib.load(str(src / f"{src.name}_seg.nii.gz"))
    c = np.round(ndimage.center_of_mass(np.asarray(seg.dataobj) > 0)).astype(int)
    box = tuple(slice(int(np.clip(ci - size // 2, 0, s - size)), int(np.clip(ci - size // 2, 0, s - size)) + size)
                for ci, s in zip(c, seg.shape, strict=True))
    out = out_root / src.name
    out.mkdir(parents=True)
    for m in ("t1", "t1ce", "t2", "flair", "seg"):
        nib.save(nib.load(str(src / f"{src.name}_{m}.nii.gz")).slicer[box], str(out / f"{src.name}_{m}.nii"))
    return out


def test_two_cases_side_by_side(make_napari_viewer, qtbot, brats2018_dir: Path, tmp_path: Path) -> None:
    a = crop_case(brats2018_dir / "Brats18_TCIA02_135_1", tmp_path, 96)
    b = crop_case(brats2018_dir / "Brats18_CBICA_AQN_1", tmp_path, 96)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare")
    widget.compare_button.click()
    assert "Choose" in widget.status.text()
    widget.baseline_edit.setText(str(a))
    widget.followup_edit.setText(str(b))
    qtbot.mouseClick(widget.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.computed == 1, timeout=120_000)

    layers = widget.layers
    kinds = [Image, Labels, Image, Labels]
    assert len(layers) == 4 and all(isinstance(x, k) for x, k in zip(layers, kinds, strict=True))
    assert {x.name for x in layers} <= {x.name for x in viewer.layers}
    assert widget.grid.enabled and widget.grid.stride == 2
    base_shape = layers[0].data.shape
    assert all(x.data.shape == base_shape for x in layers)  # the follow-up on the baseline grid
    assert all(np.allclose(x.scale, layers[0].scale) and np.allclose(x.translate, layers[0].translate)
               for x in layers)
    assert not layers[3].editable and np.any(layers[3].data == 3)
    fu = widget.result.to_dict()["followups"][0]
    assert widget.table.item(0, 0).text() == "SPD mm²"
    assert widget.table.item(3, 0).text() == "ET mL"
    assert widget.table.item(3, 2).text() == f"{fu['volumes']['ET']['current_ml']:.2f}"
    assert widget.category_label.text().startswith(f"RANO (suggestion): {fu['category']['suggestion']}")
    assert "different patients" in widget.warnings_label.text()  # two real patients given as a pair
    assert "steroids" in widget.reader_label.text()

    # Comparing again replaces the four layers rather than piling up more.
    qtbot.mouseClick(widget.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.computed == 2, timeout=120_000)
    assert len(viewer.layers) == 4
