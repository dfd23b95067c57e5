"""Post-processing: decoding, region merges, small components, small ET; hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import InferenceError
from napari_brats_seg.core.postprocess import (
    check_options,
    check_recorded,
    clean_labels,
    keep_largest_component,
    labels_from_softmax,
    merge_options,
    merge_regions,
    region_probabilities,
    relabel_small_et,
    remove_small_components,
)


def test_softmax_argmax_skips_unused_channels():
    # channel 3 (class -1) has the highest score everywhere but must never be chosen
    prob = np.array([[0.1, 0.5], [0.3, 0.1], [0.2, 0.05], [0.9, 0.9], [0.25, 0.2]], np.float32)[:, None, :]
    out = labels_from_softmax(prob, (0, 1, 2, -1, 3))
    np.testing.assert_array_equal(out, [[1, 0]])
    with pytest.raises(InferenceError, match="5 output channels"):
        labels_from_softmax(prob, (0, 1, 2, 3))


def test_region_merge_union_and_intersection():
    wt = np.array([1, 1, 1, 0, 0, 1], bool)
    tc = np.array([0, 1, 1, 1, 0, 1], bool)
    et = np.array([0, 0, 1, 1, 1, 0], bool)
    union = merge_regions({"WT": wt, "TC": tc, "ET": et}, keep_hierarchy=True)
    np.testing.assert_array_equal(union, [2, 1, 3, 3, 3, 1])
    inter = merge_regions({"WT": wt, "TC": tc, "ET": et}, keep_hierarchy=False)
    np.testing.assert_array_equal(inter, [2, 1, 3, 0, 0, 1])
    for out in (union, inter):  # ET inside TC inside WT either way
        m = lab.region_masks(out)
        assert np.all(m["WT"][m["TC"]]) and np.all(m["TC"][m["ET"]])


def test_region_probabilities_of_softmax_and_sigmoid_outputs():
    soft = np.array([[0.4], [0.1], [0.3], [0.2]], np.float32)  # bg, NCR, ED, ET
    p = region_probabilities(soft, "labels", (0, 1, 2, 3))
    assert p["WT"][0] == pytest.approx(0.6) and p["TC"][0] == pytest.approx(0.3) and p["ET"][0] == pytest.approx(0.2)
    sig = np.array([[0.2], [0.7], [0.4]], np.float32)  # TC, WT, ET with TC < ET
    nested = region_probabilities(sig, "regions", ("TC", "WT", "ET"), keep_hierarchy=True)
    assert nested["TC"][0] == pytest.approx(0.4) and nested["WT"][0] == pytest.approx(0.7)
    raw = region_probabilities(sig, "regions", ("TC", "WT", "ET"), keep_hierarchy=False)
    assert raw["TC"][0] == pytest.approx(0.2)


def test_small_components_are_removed_whole():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels
    labels[2:4, 2:4, 2:4] = 3
    labels[8, 8, 8] = 1  # 1 voxel
    labels[7, 7, 7] = 2  # touches the voxel above diagonally: one 26-connected component of 2
    out = remove_small_components(labels, 3)
    assert out[8, 8, 8] == 0 and out[7, 7, 7] == 0
    np.testing.assert_array_equal(out[:6, :6, :6], labels[:6, :6, :6])
    kept = remove_small_components(labels, 2)
    np.testing.assert_array_equal(kept, labels)


def test_small_enhancing_tumour_becomes_necrotic():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:4, 1:4, 1:4] = 2
    labels[2, 2, 2:4] = 3  # 2 ET voxels
    out = relabel_small_et(labels, 3)
    assert not (out == 3).any() and (out == 1).sum() == 2
    np.testing.assert_array_equal(relabel_small_et(labels, 2), labels)  # 2 is not below 2


def test_clean_labels_order_and_option_checks():
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[0:4, 0:4, 0:4] = 2
    labels[0, 0, 0:3] = 3
    labels[7, 7, 7] = 3  # an isolated ET voxel, removed first, leaving 3 ET voxels
    out = clean_labels(labels, {"min_component_voxels": 2, "et_min_voxels": 4})
    assert out[7, 7, 7] == 0 and (out == 3).sum() == 0 and (out == 1).sum() == 3
    assert check_options(None) == {"et_min_voxels": 0, "min_component_voxels": 0, "keep_hierarchy": True,
                                   "keep_largest": False}
    with pytest.raises(InferenceError, match=">= 0"):
        check_options({"et_min_voxels": -1})
    with pytest.raises(InferenceError, match="whole number"):
        check_options({"min_component_voxels": "many"})


def _nested_blob(labels: np.ndarray, lo: int, hi: int) -> None:
    """A cube of edema around a core of necrosis inside enhancing tumour."""
    labels[lo:hi, lo:hi, lo:hi] = lab.EDEMA
    labels[lo + 1:hi - 1, lo + 1:hi - 1, lo + 1:hi - 1] = lab.ENHANCING
    labels[lo + 2:hi - 2, lo + 2:hi - 2, lo + 2:hi - 2] = lab.NECROTIC


def test_keep_largest_removes_the_smaller_blob_and_keeps_the_nesting():
    labels = np.zeros((20, 20, 20), np.uint8)
    _nested_blob(labels, 1, 9)  # 512 voxels, all three classes
    labels[14:17, 14:17, 14:17] = lab.ENHANCING  # 27 voxels, apart from the first
    labels[0, 19, 0] = 4  # resection cavity: not tumour, left alone
    out = keep_largest_component(labels)
    assert not out[12:, 12:, 12:].any()
    np.testing.assert_array_equal(out[:12, :12, :12], labels[:12, :12, :12])  # classes inside kept as they were
    assert out[0, 19, 0] == 4
    assert clean_labels(labels, {"keep_largest": True}).tolist() == out.tolist()
    np.testing.assert_array_equal(clean_labels(labels), labels)  # off by default


def test_keep_largest_leaves_one_blob_and_empty_maps_unchanged():
    labels = np.zeros((12, 12, 12), np.uint8)
    np.testing.assert_array_equal(keep_largest_component(labels), labels)
    _nested_blob(labels, 2, 10)
    labels[10, 10, 10] = lab.EDEMA  # touches the cube's corner: 26-connected, the same component
    np.testing.assert_array_equal(keep_largest_component(labels), labels)


def test_keep_largest_runs_before_the_small_et_rule():
    labels = np.zeros((16, 16, 16), np.uint8)
    labels[0:6, 0:6, 0:6] = lab.EDEMA
    labels[2, 2, 2:4] = lab.ENHANCING  # 2 ET voxels in the kept component
    labels[10:13, 10:13, 10:13] = lab.ENHANCING  # 27 ET voxels in a smaller component
    out = clean_labels(labels, {"keep_largest": True, "et_min_voxels": 3})
    assert not out[8:, 8:, 8:].any() and (out == lab.ENHANCING).sum() == 0 and (out == lab.NECROTIC).sum() == 2


def test_recorded_options_are_strict_and_merged_per_key():
    assert check_recorded({"keep_largest": True}) == {"keep_largest": True}
    for bad, match in (({"keep_largest": "yes"}, "true or false"), ({"keep_biggest": True}, "unknown"),
                       ({"min_component_voxels": 2.5}, "whole number"), ({"et_min_voxels": True}, "whole number"),
                       (["keep_largest"], "mapping")):
        with pytest.raises(InferenceError, match=match):
            check_recorded(bad)
    # the Segment widget's explicit dict leaves keep_largest out: the recorded choice stays
    merged = merge_options({"keep_largest": True}, {"min_component_voxels": 0, "et_min_voxels": 0})
    assert merged["keep_largest"] is True
    assert merge_options({"keep_largest": True}, {"keep_largest": False})["keep_largest"] is False
    assert merge_options(None, None) == check_options(None)
