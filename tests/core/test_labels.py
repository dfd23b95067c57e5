"""Label schemes, conversions, regions and scheme detection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import LabelSchemeError

#: Stored value of (necrotic, edema, enhancing) in each scheme, written out by hand.
STORED = {
    "internal": (1, 2, 3),
    "brats2021": (1, 2, 4),
    "brats2023": (1, 2, 3),
    "msd": (2, 1, 3),
}


def _internal_map(seed: int = 0, shape=(9, 10, 11)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=shape).astype(np.uint8)


def _stored(internal: np.ndarray, scheme: str) -> np.ndarray:
    ncr, ed, et = STORED[scheme]
    return np.select([internal == 1, internal == 2, internal == 3], [ncr, ed, et], 0).astype(np.uint8)


@pytest.mark.parametrize("src,dst", list(itertools.permutations(STORED, 2)))
def test_every_conversion_pair(src: str, dst: str) -> None:
    internal = _internal_map()
    out = lab.convert(_stored(internal, src), src, dst)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _stored(internal, dst))


@pytest.mark.parametrize("scheme", list(STORED))
def test_round_trip_through_each_scheme(scheme: str) -> None:
    internal = _internal_map(1)
    stored = lab.from_internal(internal, scheme)
    np.testing.assert_array_equal(stored, _stored(internal, scheme))
    np.testing.assert_array_equal(lab.to_internal(stored, scheme), internal)
    # int16 / float files with integer values convert the same way
    np.testing.assert_array_equal(lab.to_internal(stored.astype(np.int16), scheme), internal)
    np.testing.assert_array_equal(lab.to_internal(stored.astype(np.float32), scheme), internal)


def test_scheme_aliases() -> None:
    assert lab.get_scheme("BraTS2018") is lab.BRATS2021
    assert lab.get_scheme("brats-2024") is lab.BRATS2023
    assert lab.get_scheme("MSD_Task01") is lab.MSD
    assert lab.get_scheme("internal") is lab.INTERNAL
    with pytest.raises(LabelSchemeError, match="unknown label scheme 'brats2015'"):
        lab.get_scheme("brats2015")
    assert lab.BRATS2021.value_of(lab.ENHANCING) == 4 and lab.MSD.value_of(lab.EDEMA) == 1
    with pytest.raises(LabelSchemeError, match="no value for resection cavity"):
        lab.MSD.value_of(lab.RESECTION)


def test_bad_values_are_listed() -> None:
    with pytest.raises(LabelSchemeError, match=r"label values \[3\] are not part of the brats2021"):
        lab.to_internal(np.array([0, 1, 2, 3, 4]), "brats2021")
    with pytest.raises(LabelSchemeError, match=r"\[-1, 300\]"):
        lab.to_internal(np.array([0, -1, 300]), "brats2023")
    with pytest.raises(LabelSchemeError, match="non-integer"):
        lab.to_internal(np.array([0.0, 1.5]), "msd")
    with pytest.raises(LabelSchemeError, match="cannot store resection cavity"):
        lab.from_internal(np.array([0, 4], np.uint8), "brats2021")
    # brats2023 stores the 2024 resection cavity as 4
    np.testing.assert_array_equal(lab.from_internal(np.array([0, 3, 4], np.uint8), "brats2023"), [0, 3, 4])


def test_region_masks_by_hand() -> None:
    internal = np.array([0, 1, 2, 3, 4], np.uint8)
    masks = lab.region_masks(internal)
    assert list(masks) == ["WT", "TC", "ET"] == list(lab.REGIONS)
    np.testing.assert_array_equal(masks["WT"], [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(masks["TC"], [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(masks["ET"], [0, 0, 0, 1, 0])  # the resection cavity is in no region


def test_region_masks_agree_with_monai() -> None:
    from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

    internal = _internal_map(2)
    tc, wt, et = np.asarray(ConvertToMultiChannelBasedOnBratsClasses()(_stored(internal, "brats2021")))
    masks = lab.region_masks(internal)
    np.testing.assert_array_equal(masks["WT"], wt)
    np.testing.assert_array_equal(masks["TC"], tc)
    np.testing.assert_array_equal(masks["ET"], et)


def test_regions_to_labels_keeps_the_hierarchy() -> None:
    internal = _internal_map(3)
    m = lab.region_masks(internal)
    np.testing.assert_array_equal(lab.regions_to_labels(m["WT"], m["TC"], m["ET"]), internal)
    # Inconsistent masks: ET outside TC and WT, TC outside WT.
    wt = np.array([1, 1, 0, 0, 0, 1], bool)
    tc = np.array([0, 1, 1, 0, 0, 0], bool)
    et = np.array([0, 0, 0, 1, 0, 1], bool)
    out = lab.regions_to_labels(wt, tc, et)
    np.testing.assert_array_equal(out, [lab.EDEMA, lab.NECROTIC, lab.NECROTIC, lab.ENHANCING, 0, lab.ENHANCING])
    again = lab.region_masks(out)
    assert np.all(again["ET"] <= again["TC"]) and np.all(again["TC"] <= again["WT"])


def test_one_set_of_names_and_colours() -> None:
    assert lab.CLASS_NAMES[lab.NECROTIC].startswith("necrotic")
    assert lab.CLASS_NAMES[lab.EDEMA] == "edema"
    assert lab.CLASS_NAMES[lab.ENHANCING].startswith("enhancing")
    colours = [lab.CLASS_COLOURS[c] for c in (1, 2, 3, 4)]
    assert len(set(colours)) == 4 and all(c[3] == 1.0 for c in colours)
    assert lab.CLASS_COLOURS[0][3] == 0.0  # background transparent
    assert set(lab.REGION_CLASSES) == set(lab.REGIONS)


@pytest.mark.parametrize("values,layout,expected,rc", [
    ({0, 1, 2, 4}, None, "brats2021", False),
    ({0, 4}, None, "brats2021", False),
    ({0, 1, 2, 3, 4}, None, "brats2023", True),
    ({0, 1, 2, 3}, "brats2023", "brats2023", False),
    ({0, 1, 2, 3}, "msd", "msd", False),
    ({0, 1, 2}, "brats2021", "brats2021", False),
    ({0, 1, 2, 4}, "brats2023", "brats2023", True),  # BraTS 2024 case without enhancing tumour
    ({0, 1, 2, 4}, "msd", "brats2021", False),  # 4 is impossible in MSD: the values decide
    ({0}, None, "brats2023", False),
])
def test_detect_scheme(values, layout, expected: str, rc: bool) -> None:
    det = lab.detect_scheme(values, layout)
    assert det.scheme is not None and det.scheme.name == expected
    assert det.has_resection_cavity == rc
    assert ("resection cavity" in det.reason) == rc


@pytest.mark.parametrize("values,layout,candidates", [
    ({0, 1, 2, 3}, None, ("brats2023", "msd")),
    ({0, 1, 2}, None, ("brats2021", "brats2023", "msd")),
    ({0, 1, 2, 3}, "brats2021", ("brats2023", "msd")),
])
def test_detect_scheme_ambiguous(values, layout, candidates) -> None:
    det = lab.detect_scheme(np.array(sorted(values), np.uint8), layout)
    assert det.scheme is None
    assert tuple(c.name for c in det.candidates) == candidates
    assert "ambiguous" in det.reason and "choose the scheme" in det.reason
    assert ", ".join(candidates) in det.reason
    if layout:
        assert f"do not fit the {layout} naming" in det.reason


def test_detect_scheme_rejects_unknown_values() -> None:
    with pytest.raises(LabelSchemeError, match=r"\[0, 1, 5\] fit no known scheme"):
        lab.detect_scheme({0, 1, 5})


def test_unique_values_fast_path_and_general_path() -> None:
    assert lab.unique_values(np.array([[0, 4], [4, 2]], np.uint8)) == {0, 2, 4}
    assert lab.unique_values(np.array([-3, 1000], np.int32)) == {-3, 1000}
