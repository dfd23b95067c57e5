"""Results back onto the source series: DICOM-SEG written with highdicom reads back frame for frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the [clinical] extra (pydicom) is not installed")
hd = pytest.importorskip("highdicom", reason="the [clinical] extra (highdicom) is not installed")

from napari_brats_seg.core.clinical import dicom, export  # noqa: E402
from napari_brats_seg.core.errors import CaseError  # noqa: E402


@pytest.fixture(scope="module")
def t1ce(dicom_study_dir: Path) -> dicom.SeriesInfo:
    return dicom.discover(dicom_study_dir / "sT1W_FS 3D_ISO_COR - 1101").series[0]


def _labels(shape: tuple[int, int, int]) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[100:130, 100:120, 80:100] = 2
    lab[110:120, 105:115, 85:95] = 1
    lab[108:112, 100:104, 90:92] = 3
    return lab


def test_dicom_seg_round_trip_is_exact(t1ce: dicom.SeriesInfo, tmp_path: Path) -> None:
    lab = _labels((240, 240, 180))
    path = export.write_dicom_seg(lab, t1ce, tmp_path / "seg.dcm", model_name="unet3d-default", model_hash="ab" * 32)
    assert not list(tmp_path.glob(".*"))  # written atomically
    assert np.array_equal(export.read_dicom_seg(path, t1ce), lab)
    ds = pydicom.dcmread(str(path))
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY" and int(ds.NumberOfFrames) == 3 * 180
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["necrotic core", "edema", "enhancing tumour"]
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "6574001"
    algo = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "unet3d-default" and "abababab" in algo.AlgorithmVersion
    # every frame references a source instance of the T1ce series, and all of them are referenced
    refs = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            for f in ds.PerFrameFunctionalGroupsSequence}
    src = {str(pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID) for p in t1ce.files}
    assert refs == src and ds.StudyInstanceUID == t1ce.study_uid
    # highdicom reads it back onto the source geometry too
    seg = hd.seg.segread(str(path))
    assert seg.get_source_image_uids()[0][1] == t1ce.uid


def test_bad_label_maps_are_refused(t1ce: dicom.SeriesInfo, tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="the series grid is \\(240, 240, 180\\)"):
        export.write_dicom_seg(np.zeros((10, 10, 10), np.uint8), t1ce, tmp_path / "a.dcm", model_name="m")
    with pytest.raises(CaseError, match="holds no tumour class"):
        export.write_dicom_seg(np.zeros((240, 240, 180), np.uint8), t1ce, tmp_path / "b.dcm", model_name="m")
    assert list(tmp_path.iterdir()) == []
