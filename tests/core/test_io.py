"""Reading cases in every layout and orientation, and writing label maps back voxel for voxel."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as nio

from napari_brats_seg.core import io
from napari_brats_seg.core.case import MODALITIES
from napari_brats_seg.core.errors import CaseError, LabelSchemeError, OutputExistsError

SUFFIX_2023 = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}
ROLES = ("t1", "t1ce", "t2", "flair", "seg")


def _load(path: Path) -> nib.Nifti1Image:
    return nib.load(str(path))


def _crop_file(crop: Path, role: str) -> Path:
    return crop / f"{crop.name}_{role}.nii.gz"


def _reoriented(img: nib.Nifti1Image, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Data and affine of ``img`` (stored LPS) re-stored in voxel orientation ``target``."""
    ornt = nio.ornt_transform(nio.io_orientation(img.affine), nio.axcodes2ornt(tuple(target)))
    data = nio.apply_orientation(np.asarray(img.dataobj), ornt)
    return data, img.affine @ nio.inv_ornt_aff(ornt, img.shape)


def _rotation(deg: float, centre: np.ndarray) -> np.ndarray:
    """World rotation by ``deg`` degrees about the axis (1, 2, 3) through ``centre``."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.deg2rad(deg)
    rot = np.eye(4)
    rot[:3, :3] = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)
    t1, t2 = np.eye(4), np.eye(4)
    t1[:3, 3], t2[:3, 3] = centre, -centre
    return t1 @ rot @ t2


def build_variant(kind: str, crop: Path, out: Path, save_like) -> tuple[object, Path, Path]:
    """Write a variant of the cropped real case; returns (source for read_case, seg file, reference image file)."""
    name = crop.name
    if kind == "lps_gz":
        return crop, _crop_file(crop, "seg"), _crop_file(crop, "t1")
    if kind in ("lps_nii", "ras", "permuted", "oblique"):
        folder = out / name
        ext = ".nii" if kind == "lps_nii" else ".nii.gz"
        for role in ROLES:
            img = _load(_crop_file(crop, role))
            data, aff = np.asarray(img.dataobj), img.affine
            if kind == "ras":
                data, aff = _reoriented(img, "RAS")
            elif kind == "permuted":
                data, aff = _reoriented(img, "SLA")
            elif kind == "oblique":
                aff = _rotation(7.0, (img.affine @ [32, 32, 32, 1])[:3]) @ img.affine
            save_like(data, aff, img.header, folder / f"{name}_{role}{ext}")
        return folder, folder / f"{name}_seg{ext}", folder / f"{name}_t1{ext}"
    if kind == "brats2023":
        cid = "BraTS-GLI-90001-000"
        folder = out / cid
        for role in ROLES:
            img = _load(_crop_file(crop, role))
            data = np.asarray(img.dataobj)
            if role == "seg":
                data = np.where(data == 4, 3, data)  # BraTS 2023: enhancing is 3
            save_like(data, img.affine, img.header, folder / f"{cid}-{SUFFIX_2023[role]}.nii.gz")
        return folder, folder / f"{cid}-seg.nii.gz", folder / f"{cid}-t1n.nii.gz"
    if kind == "msd":
        ref = _load(_crop_file(crop, "t1"))
        chans = [_reoriented(_load(_crop_file(crop, m)), "RAS") for m in ("flair", "t1", "t1ce", "t2")]
        data4 = np.stack([c[0] for c in chans], axis=-1).astype(np.float32)
        aff = chans[0][1]
        img_path = save_like(data4, aff, ref.header, out / "Task01_BrainTumour" / "imagesTr" / "BRATS_001.nii.gz",
                             dtype=np.float32)
        seg, seg_aff = _reoriented(_load(_crop_file(crop, "seg")), "RAS")
        msd = np.select([seg == 1, seg == 2, seg == 4], [2, 1, 3], 0).astype(np.uint8)  # MSD: 1 ED, 2 NCR, 3 ET
        seg_path = save_like(msd, seg_aff, ref.header, out / "Task01_BrainTumour" / "labelsTr" / "BRATS_001.nii.gz",
                             dtype=np.uint8)
        return img_path, seg_path, img_path
    if kind == "files":
        mapping: dict[str, Path] = {}
        for role, key in zip(ROLES, ("T1w", "T1gd", "T2", "FLAIR", "seg")):
            dst = out / "explicit" / f"scan_{key}.nii.gz"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(_crop_file(crop, role), dst)
            mapping[key] = dst
        return mapping, mapping["seg"], mapping["T1w"]
    raise ValueError(kind)


VARIANTS = ("lps_gz", "lps_nii", "ras", "permuted", "oblique", "brats2023", "msd", "files")


@pytest.fixture(scope="module")
def reference(real_crop_dir: Path):
    """The cropped real case as read from its BraTS 2018 files."""
    return io.read_case(real_crop_dir)


@pytest.mark.parametrize("kind", VARIANTS)
def test_variant_reads_to_canonical_arrays_and_writes_back_identically(
        kind: str, real_crop_dir: Path, reference, tmp_path: Path, nifti_save) -> None:
    source, seg_file, ref_file = build_variant(kind, real_crop_dir, tmp_path, nifti_save)
    case = io.read_case(source)  # type: ignore[arg-type]
    # Internal orientation is canonical: every variant gives the same arrays.
    assert case.shape == (64, 64, 64)
    for mod in MODALITIES:
        assert case.images[mod].dtype == np.float32
        np.testing.assert_array_equal(case.images[mod], reference.images[mod], err_msg=f"{kind} {mod}")
    np.testing.assert_array_equal(case.ground_truth, reference.ground_truth)
    assert case.gt_scheme is not None
    assert case.gt_scheme.name == {"brats2023": "brats2023", "msd": "msd"}.get(kind, "brats2021")
    assert case.geometry.is_oblique == (kind == "oblique")

    out = io.write_labels(case.ground_truth, case, tmp_path / "written.nii.gz", scheme=case.gt_scheme)
    written, original, image = _load(out), _load(seg_file), _load(ref_file)
    assert written.get_data_dtype() == np.uint8
    assert written.shape == original.shape
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj).astype(np.uint8))
    np.testing.assert_array_equal(written.affine, original.affine)
    np.testing.assert_array_equal(written.header.get_sform(), original.header.get_sform())
    np.testing.assert_array_equal(written.header.get_qform(), original.header.get_qform())
    # Labels are written in the images' geometry: same codes as the case's reference image.
    for code in ("qform_code", "sform_code"):
        assert int(written.header[code]) == int(image.header[code])
    assert written.header.get_xyzt_units() == image.header.get_xyzt_units()


def test_real_brats2018_full_size_round_trip(real_case_dir: Path, tmp_path: Path) -> None:
    case = io.read_case(real_case_dir)
    seg_file = real_case_dir / f"{real_case_dir.name}_seg.nii.gz"
    assert case.layout == "brats2021" and case.case_id == real_case_dir.name
    assert case.shape == (155, 240, 240) and case.spacing == (1.0, 1.0, 1.0)
    assert case.geometry.axcodes == ("L", "P", "S")
    t1 = _load(case.sources["t1"])
    # LPS files: the internal array is the file array transposed to (z, y, x).
    np.testing.assert_array_equal(case.images["t1"], np.asarray(t1.dataobj).T.astype(np.float32))
    assert set(np.unique(case.ground_truth)) == {0, 1, 2, 3}
    out = io.write_labels(case.ground_truth, case, tmp_path / "gt.nii.gz", scheme=case.gt_scheme)
    written, original = _load(out), _load(seg_file)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj).astype(np.uint8))
    np.testing.assert_array_equal(written.affine, original.affine)
    assert written.get_data_dtype() == np.uint8
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == \
        (int(t1.header["qform_code"]), int(t1.header["sform_code"]))


def test_real_brats2023_case_reads(brats2023_case_dir: Path) -> None:
    case = io.read_case(brats2023_case_dir)
    assert case.layout == "brats2023" and case.case_id == "BraTS-GLI-00001-000"
    assert case.ground_truth is None and case.gt_path is None
    assert case.sources["t1ce"].name.endswith("-t1c.nii.gz")
    assert case.sources["flair"].name.endswith("-t2f.nii.gz")
    flair = _load(case.sources["flair"])
    np.testing.assert_array_equal(case.images["flair"], np.asarray(flair.dataobj).T.astype(np.float32))
    # One file of the case stands for its folder.
    assert io.find_case_files(case.sources["t2"]).images == case.sources


def test_find_cases_expands_folders(brats2018_dir: Path, tmp_path: Path, real_crop_dir: Path, nifti_save) -> None:
    cases = io.find_cases([brats2018_dir])
    assert len(cases) == 12 and all(p.is_dir() for p in cases)
    img, _, _ = build_variant("msd", real_crop_dir, tmp_path, nifti_save)
    assert io.find_cases([tmp_path / "Task01_BrainTumour"]) == [img]


def test_explicit_seg_and_scheme_override(real_crop_dir: Path, tmp_path: Path, nifti_save) -> None:
    save_like = nifti_save
    # A seg elsewhere, in MSD values, given explicitly with its scheme.
    seg = _load(_crop_file(real_crop_dir, "seg"))
    data = np.asarray(seg.dataobj)
    msd = np.select([data == 1, data == 2, data == 4], [2, 1, 3], 0).astype(np.uint8)
    path = save_like(msd, seg.affine, seg.header, tmp_path / "other.nii.gz", dtype=np.uint8)
    with pytest.raises(CaseError, match="ambiguous"):
        io.read_case(real_crop_dir, seg=path)  # values 0-3 under brats2021 naming: which scheme?
    case = io.read_case(real_crop_dir, seg=path, scheme="msd")
    ref = io.read_case(real_crop_dir)
    np.testing.assert_array_equal(case.ground_truth, ref.ground_truth)
    assert case.gt_path == path and "given" in (case.gt_note or "")


def test_resection_cavity_is_accepted_and_said(make_case) -> None:
    folder = make_case("BraTS-style_1", seg_values=(0, 1, 2, 3, 4))
    case = io.read_case(folder)
    assert case.gt_scheme is not None and case.gt_scheme.name == "brats2023"
    assert set(np.unique(case.ground_truth)) == {0, 1, 2, 3, 4}
    assert "resection cavity" in (case.gt_note or "")


def test_affine_within_tolerance_is_accepted(make_case, tmp_path: Path, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    t2 = folder / "Tiny_1_t2.nii.gz"
    img = _load(t2)
    save_like(np.asarray(img.dataobj), img.affine + 1e-5, img.header, t2)
    assert io.read_case(folder).shape == (12, 16, 16)


# ---------------------------------------------------------------------------------------------------
# Bad input: a CaseError that names the file and the problem.


def _expect(source, *needles: str, **kw) -> CaseError:
    with pytest.raises(CaseError) as info:
        io.read_case(source, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return info.value


def test_missing_modality_says_what_was_found(make_case) -> None:
    folder = make_case()
    (folder / "Tiny_1_flair.nii.gz").unlink()
    _expect(folder, str(folder), "missing sequence(s) flair", "t1=Tiny_1_t1.nii.gz", "t2=Tiny_1_t2.nii.gz")


def test_missing_modality_in_explicit_files(make_case) -> None:
    folder = make_case()
    _expect({"t1": folder / "Tiny_1_t1.nii.gz", "t2": folder / "Tiny_1_t2.nii.gz"},
            "missing sequence(s) t1ce, flair", "given t1, t2")


def test_duplicated_modality(make_case) -> None:
    folder = make_case()
    shutil.copy(folder / "Tiny_1_t1.nii.gz", folder / "Tiny_1_t1.nii")
    _expect(folder, "more than one file", "Tiny_1_t1.nii", "Tiny_1_t1.nii.gz")
    with pytest.raises(CaseError, match="given twice"):
        io.read_case({"t1": folder / "Tiny_1_t1.nii", "T1w": folder / "Tiny_1_t1.nii.gz"})


def test_shape_mismatch(make_case, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    t2 = folder / "Tiny_1_t2.nii.gz"
    img = _load(t2)
    save_like(np.asarray(img.dataobj)[:, :, :10], img.affine, img.header, t2)
    _expect(folder, str(t2), "Tiny_1_t1.nii.gz", "shape (16, 16, 10)")


def test_affine_mismatch_beyond_tolerance(make_case, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    t1ce = folder / "Tiny_1_t1ce.nii.gz"
    img = _load(t1ce)
    aff = img.affine.copy()
    aff[0, 3] += 0.5
    save_like(np.asarray(img.dataobj), aff, img.header, t1ce)
    _expect(folder, str(t1ce), "affine differs by up to 0.5 mm")


def test_seg_off_grid(make_case, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    seg = folder / "Tiny_1_seg.nii.gz"
    img = _load(seg)
    save_like(np.asarray(img.dataobj)[1:], img.affine, img.header, seg)
    _expect(folder, str(seg), "does not lie on the images' grid")


@pytest.mark.parametrize("shape,dims", [((16, 16), "2D"), ((16, 16, 12, 2, 2), "5D"), ((16, 16, 12, 3), "4D")])
def test_wrong_dimensionality(make_case, shape, dims: str) -> None:
    folder = make_case()
    t1 = folder / "Tiny_1_t1.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.int16), np.eye(4)), str(t1))
    _expect(folder, str(t1), f"is {dims}", "3D volume is needed")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(make_case, bad: float, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    t2 = folder / "Tiny_1_t2.nii.gz"
    img = _load(t2)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[3, 4, 5] = bad
    data[1, 1, 1] = -bad
    save_like(data, img.affine, img.header, t2, dtype=np.float32)
    _expect(folder, str(t2), "2 voxels are NaN or infinite")


def test_all_zero_volume(make_case, nifti_save) -> None:
    save_like = nifti_save
    folder = make_case()
    flair = folder / "Tiny_1_flair.nii.gz"
    img = _load(flair)
    save_like(np.zeros(img.shape, np.int16), img.affine, img.header, flair)
    _expect(folder, str(flair), "every voxel is zero")


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_truncated_file(make_case, ext: str) -> None:
    folder = make_case(ext=ext)
    t1 = folder / f"Tiny_1_t1{ext}"
    raw = t1.read_bytes()
    t1.write_bytes(raw[: len(raw) * 2 // 3])
    _expect(folder, str(t1), "truncated or corrupt")


def test_not_nifti(make_case) -> None:
    folder = make_case()
    t1ce = folder / "Tiny_1_t1ce.nii.gz"
    t1ce.write_text("this is a text file, not an image\n")
    _expect(folder, str(t1ce), "not a NIfTI file")
    png = folder.parent / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    mapping = {m: folder / f"Tiny_1_{m}.nii.gz" for m in ("t1", "t2", "flair")} | {"t1ce": png}
    _expect(mapping, str(png), "not a NIfTI file")


def test_label_values_outside_every_scheme(make_case) -> None:
    folder = make_case(seg_values=(0, 1, 2, 7))
    _expect(folder, "Tiny_1_seg.nii.gz", "[0, 1, 2, 7] fit no known scheme")


def test_label_values_outside_the_given_scheme(make_case) -> None:
    folder = make_case(seg_values=(0, 1, 2, 4))
    _expect(folder, "Tiny_1_seg.nii.gz", "[4] are not part of the msd scheme", scheme="msd")


def test_ambiguous_scheme_names_the_candidates(make_case, tmp_path: Path) -> None:
    folder = make_case(seg_values=(0, 1, 2, 3))
    files = {m: folder / f"Tiny_1_{m}.nii.gz" for m in ("t1", "t1ce", "t2", "flair")}
    renamed = folder / "labels.nii.gz"
    shutil.copy(folder / "Tiny_1_seg.nii.gz", renamed)
    _expect(files | {"seg": renamed}, str(renamed), "ambiguous", "brats2023, msd", "choose the scheme")
    assert io.read_case(files | {"seg": renamed}, scheme="brats2023").gt_scheme.name == "brats2023"


def test_empty_or_unrelated_folders(tmp_path: Path) -> None:
    _expect(tmp_path / "nowhere", "no such file or folder")
    (tmp_path / "empty").mkdir()
    _expect(tmp_path / "empty", "holds no .nii")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4)), str(tmp_path / "empty" / "brain.nii.gz"))
    _expect(tmp_path / "empty" / "brain.nii.gz", "neither an MSD 4-channel image nor a BraTS-named")


# ---------------------------------------------------------------------------------------------------
# Writing: atomic, never over an input, never over an existing output unless asked.


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_never_over_an_input(make_case) -> None:
    folder = make_case()
    case = io.read_case(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for target in (case.sources["t1"], case.gt_path):
        with pytest.raises(OutputExistsError, match="input"):
            io.write_labels(case.ground_truth, case, target, overwrite=True)
    with pytest.raises(OutputExistsError, match="input"):
        io.write_labels(case.ground_truth, case.geometry, folder / "x.nii.gz", protected=[folder / "x.nii.gz"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_write_never_over_existing_output_unless_asked(make_case, tmp_path: Path) -> None:
    case = io.read_case(make_case())
    out = tmp_path / "pred.nii.gz"
    io.write_labels(case.ground_truth, case, out)
    first = out.read_bytes()
    empty = np.zeros_like(case.ground_truth)
    with pytest.raises(OutputExistsError, match="exists"):
        io.write_labels(empty, case, out)
    assert out.read_bytes() == first
    io.write_labels(empty, case, out, overwrite=True)
    assert not np.any(np.asarray(_load(out).dataobj))


def test_write_is_atomic_when_saving_fails(make_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = io.read_case(make_case())
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def refuse(src, dst):  # the rename step fails, as on a full or read-only file system
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        io.write_labels(case.ground_truth, case, out_dir / "pred.nii.gz")
    assert _listing(out_dir) == []  # no partial output, no temporary file


def test_write_refuses_what_the_scheme_cannot_store(make_case, tmp_path: Path) -> None:
    case = io.read_case(make_case(seg_values=(0, 1, 2, 3, 4)))  # resection cavity present
    with pytest.raises(Exception, match="cannot store resection cavity"):
        io.write_labels(case.ground_truth, case, tmp_path / "pred.nii.gz", scheme="brats2021")
    io.write_labels(case.ground_truth, case, tmp_path / "pred.nii.gz", scheme="brats2023")
    assert _listing(tmp_path) == ["Tiny_1", "pred.nii.gz"]


def test_write_checks_shape_and_name(make_case, tmp_path: Path) -> None:
    case = io.read_case(make_case())
    with pytest.raises(CaseError, match="does not match"):
        io.write_labels(np.zeros((3, 3, 3), np.uint8), case, tmp_path / "a.nii.gz")
    with pytest.raises(CaseError, match="must end in .nii"):
        io.write_labels(case.ground_truth, case, tmp_path / "a.png")
    assert _listing(tmp_path) == ["Tiny_1"]


def test_write_refuses_values_that_would_wrap(make_case, tmp_path: Path) -> None:
    case = io.read_case(make_case())
    bad = case.ground_truth.astype(np.int64)
    bad[0, 0, 0] = 256  # would become 0 in a plain uint8 cast
    with pytest.raises(LabelSchemeError, match="cannot store 256"):
        io.write_labels(bad, case, tmp_path / "pred.nii.gz")
    with pytest.raises(LabelSchemeError, match="non-integer"):
        io.write_labels(case.ground_truth + 0.5, case, tmp_path / "pred.nii.gz")
    assert _listing(tmp_path) == ["Tiny_1"]


def test_nifti2_and_uncoded_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    aff = np.diag([-1.2, 0.9, 3.0, 1.0])
    aff[:3, 3] = [5.0, -6.0, 7.0]
    for kind in ("nifti2", "uncoded"):
        folder = tmp_path / kind / "K_1"
        folder.mkdir(parents=True)
        for role in ROLES:
            data = rng.integers(0 if role == "seg" else 1, 3 if role == "seg" else 500, (12, 10, 8)).astype(np.int16)
            if kind == "nifti2":
                img = nib.Nifti2Image(data, aff)
            else:
                img = nib.Nifti1Image(data, None)  # no affine: qform and sform codes 0, pixdim only
                img.header.set_zooms((1.2, 0.9, 3.0))
            nib.save(img, str(folder / f"K_1_{role}.nii.gz"))
        case = io.read_case(folder)
        assert case.spacing == pytest.approx((3.0, 0.9, 1.2))
        out = io.write_labels(case.ground_truth, case, tmp_path / kind / "out.nii.gz", scheme=case.gt_scheme)
        written, original = _load(out), _load(folder / "K_1_seg.nii.gz")
        assert type(written) is type(original)
        np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj))
        np.testing.assert_array_equal(written.affine, original.affine)
        for code in ("qform_code", "sform_code"):
            assert int(written.header[code]) == int(original.header[code])


def test_written_file_has_ordinary_permissions(make_case, tmp_path: Path) -> None:
    import os

    case = io.read_case(make_case())
    out = io.write_labels(case.ground_truth, case, tmp_path / "pred.nii")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_case_info_is_the_case_header(real_crop_dir: Path) -> None:
    """read_case gives one frozen CaseInfo: id, layout, grid, inputs, ground truth and its scheme."""
    import dataclasses

    from napari_brats_seg.core.case import CaseInfo, default_scheme

    case = io.read_case(real_crop_dir)
    info = case.info
    assert isinstance(info, CaseInfo) and case.info is info  # one object per case
    assert (info.case_id, info.layout, info.geometry) == (case.case_id, case.layout, case.geometry)
    assert info.sources == {m: str(p) for m, p in case.sources.items()}
    assert info.gt_path == str(case.gt_path) and info.gt_scheme == case.gt_scheme.name == info.scheme
    assert {Path(p).resolve() for p in info.input_paths} == case.input_paths
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.layout = "msd"  # type: ignore[misc]
    nogt = dataclasses.replace(case, ground_truth=None, gt_scheme=None, gt_path=None)
    assert nogt.info is not info and nogt.info.gt_path is None and nogt.info.scheme == default_scheme(case.layout)
    assert [default_scheme(lay) for lay in ("brats2021", "brats2023", "msd", "files", "synth", "dicom")] == \
        ["brats2021", "brats2023", "msd", "brats2021", "brats2021", "brats2021"]
