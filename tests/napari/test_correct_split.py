"""The Correct widget's "Split the core by enhancement" section on a real case crop: Otsu's threshold
of the core, the split as ONE undo step (autosaved) equal to the core function's, the split of the
core component under a click only, and misuse refused with nothing changed or recorded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from napari.layers import Image, Labels
from scipy import ndimage
from test_correct_tools import _click, _setup, autosaved_then_undone, crop_case  # noqa: F401  (crop_case: the fixture)

from napari_brats_seg._napari import edits
from napari_brats_seg._napari.layers import META_KEY, source_of
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit.enhancement import core_mask, otsu_threshold, split_core


def _t1ce(viewer) -> np.ndarray:
    return next(np.asarray(ly.data) for ly in viewer.layers
                if isinstance(ly, Image) and source_of(ly).modality == "t1ce")


def test_split_whole_core_with_otsu_undo_and_autosave(make_napari_viewer, qtbot, crop_case) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    tools, sp = widget.tools, widget.tools.split
    assert sp.group in tools.sections and "Split the core by enhancement (T1ce)" in sp.group.text()
    t1ce = _t1ce(viewer)
    original = np.array(pred.data, copy=True)
    assert np.isin(original, (lab.NECROTIC, lab.ENHANCING)).any()
    assert sp.scope_combo.currentData() == "core" and not sp.split_button.isCheckable() and not sp.user_set

    # A user who just clicks "Split the core": Otsu's threshold of the core, shown in the status line.
    n_hist = len(pred._undo_history)
    sp.split_button.click()
    expected, thr = split_core(original, t1ce)
    assert thr == otsu_threshold(t1ce, core_mask(original))
    assert np.array_equal(pred.data, expected) and not np.array_equal(expected, original)
    n = int((expected != original).sum())
    assert tools.status.text() == f"split the core at T1ce >= {thr:.5g}: {n} voxels changed"
    assert len(pred._undo_history) == n_hist + 1
    assert sp.threshold.value() == pytest.approx(thr, abs=0.006) and not sp.user_set   # shown, still automatic
    assert np.array_equal(pred.data > 0, original > 0)                                # the tumour stays

    # The split is autosaved like a brush stroke, and so is its undo (one step: the exact previous array).
    autosaved_then_undone(viewer, qtbot, pred, crop_case.case_id, expected, original)
    assert len(pred._undo_history) == n_hist

    # "Otsu's threshold" sets the spin box; a threshold set by hand is the one used.
    sp.threshold.setValue(0.0)
    sp.user_set = False
    sp.otsu_button.click()
    assert sp.threshold.value() == pytest.approx(thr, abs=0.006) and sp.user_set
    sp.threshold.setValue(thr + 15.0)
    sp.split_button.click()
    hand, used = split_core(original, t1ce, sp.threshold.value())     # (the spin box's 2 decimals)
    assert used == pytest.approx(thr + 15.0, abs=0.006) and np.array_equal(pred.data, hand)
    assert (hand == lab.NECROTIC).sum() > (expected == lab.NECROTIC).sum()    # a higher threshold: more necrosis
    assert f"T1ce >= {used:.5g}" in tools.status.text()
    pred.undo()
    assert np.array_equal(pred.data, original)
    # A threshold set for one case is not used on another case's layer: Otsu's is, again.
    assert sp.users_threshold(pred)
    own = source_of(pred)
    pred.metadata[META_KEY] = dataclasses.replace(own, info=dataclasses.replace(own.info, case_id="Another_case"))
    assert not sp.users_threshold(pred)
    pred.metadata[META_KEY] = own


def test_split_of_the_core_component_under_a_click(make_napari_viewer, crop_case) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    tools, sp = widget.tools, widget.tools.split
    t1ce = _t1ce(viewer)
    # A second core component: a dark 3x3x3 block labelled enhancing, away from the tumour's core.
    core = core_mask(np.asarray(pred.data))
    far = ndimage.distance_transform_edt(~core) > 6
    dark = t1ce < otsu_threshold(t1ce, core)
    corner = next((z, y, x) for z, y, x in np.argwhere(far & dark)
                  if far[z:z + 3, y:y + 3, x:x + 3].all() and dark[z:z + 3, y:y + 3, x:x + 3].all()
                  and min(pred.data.shape[i] - c for i, c in enumerate((z, y, x))) >= 3)
    block = tuple(slice(c, c + 3) for c in corner)
    labels = np.array(pred.data, copy=True)
    labels[block] = lab.ENHANCING
    edits.apply_edit(pred, labels)
    before, n_hist = np.array(pred.data, copy=True), len(pred._undo_history)
    whole, _ = split_core(before, t1ce)
    assert (whole[block] == lab.NECROTIC).all()            # the whole-core split would change the block

    sp.scope_combo.setCurrentIndex(sp.scope_combo.findData("component"))
    assert sp.split_button.isCheckable() and sp.split_button.text() == "Click a core component"
    sp.split_button.click()                                # arms the click mode
    assert tools.click_mode == "split" and sp.split_button.isChecked() and pred.mode == "pan_zoom"
    assert np.array_equal(pred.data, before)               # arming changes nothing
    p = tuple(int(v) for v in np.argwhere(core)[len(np.argwhere(core)) // 2])
    _click(viewer, pred, p)
    _click(viewer, pred, p, "mouse_release")
    expected, thr = split_core(before, t1ce, point=p)
    assert np.array_equal(pred.data, expected) and not np.array_equal(expected, before)
    assert (pred.data[block] == lab.ENHANCING).all()       # the other component is untouched
    assert len(pred._undo_history) == n_hist + 1 and f"T1ce >= {thr:.5g}" in tools.status.text()
    pred.undo()
    assert np.array_equal(pred.data, before)

    tools.pick_button.click()                              # another click tool disarms the split
    assert tools.click_mode == "component" and not sp.split_button.isChecked()
    sp.split_button.click()
    assert tools.click_mode == "split" and not tools.pick_button.isChecked()
    sp.scope_combo.setCurrentIndex(sp.scope_combo.findData("core"))     # back to the whole core: disarmed
    assert tools.click_mode is None and not sp.split_button.isCheckable()


def test_split_used_wrongly_changes_nothing(make_napari_viewer, crop_case, notifications) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    tools, sp = widget.tools, widget.tools.split
    ref = next(ly for ly in viewer.layers if ly is not pred and isinstance(ly, Labels))
    original, ref_before = np.array(pred.data, copy=True), np.array(ref.data, copy=True)
    n_hist, n_ref = len(pred._undo_history), len(ref._undo_history)

    # A click outside the core (on edema) in the component scope.
    sp.scope_combo.setCurrentIndex(sp.scope_combo.findData("component"))
    sp.split_button.click()
    edema = tuple(int(v) for v in np.argwhere(original == lab.EDEMA)[0])
    _click(viewer, pred, edema)
    assert "click inside the tumour core" in tools.status.text()
    sp.split_button.click()
    assert tools.click_mode is None
    sp.scope_combo.setCurrentIndex(sp.scope_combo.findData("core"))

    # The locked ground truth.
    widget.layer_combo.set_layer(ref)
    assert tools.layer() is ref and not ref.editable
    sp.split_button.click()
    assert "read-only" in tools.status.text()

    # A layer without a core (edema only).
    edema_only = viewer.add_labels(np.where(original > 0, lab.EDEMA, 0).astype(np.uint8), name="edema only")
    widget.layer_combo.set_layer(edema_only)
    sp.split_button.click()
    assert "no tumour core" in tools.status.text()
    sp.otsu_button.click()
    assert "Otsu's threshold: there is no tumour core" in tools.status.text()

    # No T1ce of this case in the viewer.
    widget.layer_combo.set_layer(pred)
    viewer.layers.remove(next(ly for ly in viewer.layers
                              if isinstance(ly, Image) and source_of(ly).modality == "t1ce"))
    sp.split_button.click()
    assert "no T1ce image of this case" in tools.status.text()
    sp.otsu_button.click()
    assert "no T1ce image of this case" in tools.status.text() and not sp.user_set

    assert tools.layer() is pred
    assert np.array_equal(pred.data, original) and len(pred._undo_history) == n_hist
    assert np.array_equal(ref.data, ref_before) and len(ref._undo_history) == n_ref
    assert not edema_only._undo_history
    msgs = notifications()
    assert any("read-only" in m for m in msgs) and any("no T1ce image" in m for m in msgs)
    assert any("click inside the tumour core" in m for m in msgs)
