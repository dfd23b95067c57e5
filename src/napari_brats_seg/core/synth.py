"""Synthetic BraTS-like cases with ground truth, deterministic for a seed.

A phantom is a skull-stripped brain (zero outside it, as in BraTS) with cerebrospinal fluid (CSF:
a sulcal layer, the interhemispheric fissure and two lateral ventricles), a folded cortical grey
matter (GM) ribbon, deep grey nuclei and white matter (WM), and one glioma: a necrotic core inside an
enhancing rim inside edema, each boundary irregular, of random size and position (sometimes with a
small satellite lesion). Each sequence has its own tissue contrast, as in real MRI:

=========  =====  =====  =====  =====  =========  ========
sequence   CSF    GM     WM     edema  enhancing  necrotic
=========  =====  =====  =====  =====  =========  ========
T1         0.30   0.72   1.00   0.62   0.80       0.40
T1ce       0.32   0.75   1.00   0.65   1.55       0.35
T2         1.00   0.62   0.45   0.85   0.70       0.95
FLAIR      0.18   0.72   0.58   1.00   0.85       0.55
=========  =====  =====  =====  =====  =========  ========

(means relative to the sequence's scale, jittered per case) then partial-volume blur, a smooth
multiplicative bias field, Rician noise, and rounding to int16 (every brain voxel >= 1).

:func:`synth_case` returns an in-memory :class:`~.case.Case` (LPS, 1 mm, internal classes);
:func:`write_cases` writes cases in the BraTS 2018-2021, BraTS 2023 or MSD Task01 layout, in LPS,
RAS or an oblique orientation, which :func:`~.io.read_case` reads back to the same arrays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from . import labels as lab
from .case import MODALITIES, Case
from .errors import CaseError, OutputExistsError
from .geometry import Geometry
from .io import MSD_CHANNELS, PathLike, save_image, write_labels

LAYOUTS = ("brats2021", "brats2023", "msd")
ORIENTATIONS = ("LPS", "RAS", "oblique")

# Tissue indices of the phantom (not label classes).
_CSF, _GM, _WM, _ED, _ET, _NCR = range(1, 7)
#: Mean intensity of each tissue per sequence, relative to the sequence's scale.
CONTRAST: dict[str, dict[int, float]] = {
    "t1": {_CSF: 0.30, _GM: 0.72, _WM: 1.00, _ED: 0.62, _ET: 0.80, _NCR: 0.40},
    "t1ce": {_CSF: 0.32, _GM: 0.75, _WM: 1.00, _ED: 0.65, _ET: 1.55, _NCR: 0.35},
    "t2": {_CSF: 1.00, _GM: 0.62, _WM: 0.45, _ED: 0.85, _ET: 0.70, _NCR: 0.95},
    "flair": {_CSF: 0.18, _GM: 0.72, _WM: 0.58, _ED: 1.00, _ET: 0.85, _NCR: 0.55},
}
_FILE_SUFFIX = {
    "brats2021": {"t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "flair": "_flair", "seg": "_seg"},
    "brats2023": {"t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "flair": "-t2f", "seg": "-seg"},
}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], cells: int) -> np.ndarray:
    """A smooth random field (zero mean, unit-ish amplitude): coarse noise, linearly upsampled."""
    coarse = tuple(max(2, min(cells, s // 2)) for s in shape)
    grid = rng.standard_normal(coarse).astype(np.float32)
    field = ndimage.zoom(grid, [s / c for s, c in zip(shape, coarse)], order=1, mode="nearest",
                         grid_mode=True)
    return field[: shape[0], : shape[1], : shape[2]]


def _lps_affine(shape_xyz: tuple[int, int, int]) -> np.ndarray:
    """1 mm LPS affine whose world origin is the volume centre (voxel axes x->L, y->P, z->S)."""
    x, y, z = ((s - 1) / 2.0 for s in shape_xyz)
    return np.array([[-1.0, 0, 0, x], [0, -1.0, 0, y], [0, 0, 1.0, -z], [0, 0, 0, 1]])


def _ras_affine(shape_xyz: tuple[int, int, int]) -> np.ndarray:
    """1 mm RAS affine on the same world grid as :func:`_lps_affine`."""
    x, y, z = ((s - 1) / 2.0 for s in shape_xyz)
    return np.array([[1.0, 0, 0, -x], [0, 1.0, 0, -y], [0, 0, 1.0, -z], [0, 0, 0, 1]])


def _oblique_affine(shape_xyz: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """The LPS affine rotated by 4-10 degrees about a random axis through the world origin."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(4.0, 10.0))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(4)
    rot[:3, :3] = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    return rot @ _lps_affine(shape_xyz)


def _header(shape_xyz: Sequence[int], affine: np.ndarray, dtype: type = np.int16) -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(tuple(shape_xyz))
    hdr.set_data_dtype(dtype)
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    return hdr


def _geometry(shape_xyz: tuple[int, int, int], affine: np.ndarray) -> Geometry:
    hdr = _header(shape_xyz, affine)
    # Read the affine back through the header so that it is exactly what a written file will hold.
    return Geometry(tuple(shape_xyz), np.asarray(hdr.get_best_affine(), float), hdr)


def _ball(dist: np.ndarray, radius: float, wobble: np.ndarray, amount: float) -> np.ndarray:
    """Voxels whose distance, stretched by a smooth wobble, is inside ``radius``: an irregular blob."""
    return dist * (1.0 + amount * wobble) < radius


def _anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map (internal z-y-x) and normalised coordinates of a brain in a volume of ``shape``."""
    zi, yi, xi = (np.arange(s, dtype=np.float32) - (s - 1) / 2.0 for s in shape)
    semi = np.array([0.40 * shape[0], 0.44 * shape[1], 0.40 * shape[2]]) * rng.uniform(0.93, 1.03, 3)
    w = (zi / semi[0])[:, None, None]
    v = (yi / semi[1])[None, :, None]
    u = (xi / semi[2])[None, None, :]
    r = np.sqrt(u * u + v * v + w * w)
    brain = (r < 1.0 + 0.05 * _smooth_field(rng, shape, 5)) & (w > -0.85)
    depth = 1.0 - r  # ~0 at the brain surface, 1 at its centre
    gyri = _smooth_field(rng, shape, 14)
    tissue = np.full(shape, _WM, dtype=np.uint8)
    tissue[depth < 0.17 + 0.07 * gyri] = _GM
    tissue[depth < 0.035 + 0.03 * np.maximum(gyri, 0)] = _CSF
    tissue[(np.abs(u) < 0.025) & (depth < 0.45) & (w > -0.2)] = _CSF  # interhemispheric fissure
    for side in (-1.0, 1.0):
        deep = ((u - side * 0.22) / 0.12) ** 2 + ((v + 0.02) / 0.16) ** 2 + ((w + 0.05) / 0.16) ** 2 < 1
        tissue[deep] = _GM  # thalamus / basal ganglia
        vent = ((u - side * 0.10) / 0.075) ** 2 + ((v - 0.0) / 0.38) ** 2 + ((w - 0.12) / 0.16) ** 2 < 1
        tissue[vent] = _CSF
    tissue[~brain] = 0
    return tissue, np.stack(np.broadcast_arrays(w, v, u))


def _tumour(rng: np.random.Generator, tissue: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Internal-class label map of a glioma (and sometimes a satellite lesion) inside the brain."""
    shape = tissue.shape
    brain = tissue > 0
    size = float(min(shape))
    labels = np.zeros(shape, dtype=np.uint8)
    grid = np.indices(shape, dtype=np.float32, sparse=True)

    def lesion(centre: np.ndarray, r_ed: float, with_core: bool) -> None:
        dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
        r_tc = r_ed * rng.uniform(0.6, 0.85)
        ed = _ball(dist, r_ed, _smooth_field(rng, shape, 8), 0.35)
        tc = _ball(dist, r_tc, _smooth_field(rng, shape, 8), 0.2) & ed
        labels[ed & brain] = lab.EDEMA
        labels[tc & brain] = lab.ENHANCING
        if with_core:
            nec = _ball(dist, r_tc * rng.uniform(0.6, 0.85), _smooth_field(rng, shape, 8), 0.2)
            labels[nec & tc & brain] = lab.NECROTIC

    # Main tumour: centre in the brain, off-centre in one hemisphere, away from the surface.
    candidates = np.argwhere(brain & (np.sqrt((coords**2).sum(0)) < 0.6) & (np.abs(coords[2]) > 0.15))
    if len(candidates) == 0:
        candidates = np.argwhere(brain)
    if len(candidates) == 0:
        raise CaseError(f"volume shape {shape[::-1]} is too small for a synthetic brain")
    centre = candidates[rng.integers(len(candidates))].astype(np.float32)
    lesion(centre, size * rng.uniform(0.14, 0.3), with_core=True)
    if rng.random() < 0.3:  # a satellite: small enhancing lesion with edema, elsewhere
        far = np.argwhere(brain & (labels == 0))
        if len(far):
            sat = far[rng.integers(len(far))].astype(np.float32)
            if np.linalg.norm(sat - centre) > size * 0.35:
                lesion(sat, size * rng.uniform(0.06, 0.1), with_core=False)
    # Every tumour class present, even for tiny volumes: seed the missing ones at the centre.
    c = tuple(int(round(x)) for x in centre)
    for cls, rad in ((lab.EDEMA, 2), (lab.ENHANCING, 1), (lab.NECROTIC, 0)):
        if not np.any(labels == cls):
            sl = tuple(slice(max(0, i - rad), i + rad + 1) for i in c)
            labels[sl] = np.where(brain[sl], cls, labels[sl])
    return labels


def _render(rng: np.random.Generator, tissue: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sequence int16-valued float32 images of a tissue + label map."""
    shape = tissue.shape
    full = tissue.copy()
    full[labels == lab.EDEMA] = _ED
    full[labels == lab.ENHANCING] = _ET
    full[labels == lab.NECROTIC] = _NCR
    brain = tissue > 0
    texture = _smooth_field(rng, shape, 24)
    images: dict[str, np.ndarray] = {}
    for mod in MODALITIES:
        lut = np.zeros(8, dtype=np.float32)
        for t, mean in CONTRAST[mod].items():
            lut[t] = mean * rng.uniform(0.95, 1.05)
        img = lut[full] * (1.0 + 0.04 * texture)
        img = ndimage.gaussian_filter(img, 0.6)
        img *= np.exp(0.12 * _smooth_field(rng, shape, 3))  # bias field
        sigma = 0.03
        img = np.sqrt((img + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
        scale = rng.uniform(350.0, 1100.0)
        out = np.clip(np.round(img * scale), 1, np.iinfo(np.int16).max).astype(np.float32)
        out[~brain] = 0
        images[mod] = out
    return images


def synth_case(seed: int = 0, shape: Sequence[int] = (96, 96, 64), *, case_id: str | None = None) -> Case:
    """A synthetic BraTS-like case in memory, deterministic for ``seed``.

    Parameters
    ----------
    seed
        Random seed; the same seed and shape always give the same case.
    shape
        Volume size in file order ``(x, y, z)``; internal arrays are ``(z, y, x)``. At least 16 per axis.
    case_id
        Identifier; ``synth-<seed>`` by default.

    Returns
    -------
    Case
        Layout ``"synth"``, LPS 1 mm geometry, four int16-valued float32 images (zero outside the
        brain), ``ground_truth`` in internal classes with every tumour class present, no
        ``gt_scheme`` (nothing was read).
    """
    shape_xyz = tuple(int(s) for s in shape)
    if len(shape_xyz) != 3 or min(shape_xyz) < 16:
        raise CaseError(f"synthetic shape must be three sizes >= 16 (x, y, z); got {tuple(shape)}")
    rng = np.random.default_rng(seed)
    internal = shape_xyz[::-1]
    tissue, coords = _anatomy(rng, internal)
    labels = _tumour(rng, tissue, coords)
    images = _render(rng, tissue, labels)
    geo = _geometry(shape_xyz, _lps_affine(shape_xyz))  # type: ignore[arg-type]
    return Case(case_id or f"synth-{seed}", images, geo, "synth", {}, dict.fromkeys(MODALITIES, geo),
                ground_truth=labels)


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of a set made with ``seed`` (sets of different seeds do not overlap)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _case_id(layout: str, seed: int, index: int) -> str:
    if layout == "brats2021":
        return f"Synth{seed}_{index:03d}"
    if layout == "brats2023":
        return f"BraTS-SYN-{seed:05d}-{index:03d}"
    return f"BRATS_S{seed}_{index:03d}"


def write_cases(out_dir: PathLike, n: int, seed: int, layout: str = "brats2021",
                shape: Sequence[int] = (96, 96, 64), orientation: str = "LPS", *,
                overwrite: bool = False) -> list[Path]:
    """Write ``n`` synthetic cases with ground truth in a BraTS or MSD layout.

    Parameters
    ----------
    out_dir
        Folder to write into (created).
    n, seed
        Number of cases and the seed of the set; case ``i`` uses :func:`case_seed` ``(seed, i)``.
    layout
        ``"brats2021"`` (``<id>/<id>_t1.nii.gz`` ... ``_seg``, labels 1/2/4), ``"brats2023"``
        (``<id>/<id>-t1n.nii.gz`` ... ``-seg``, labels 1/2/3) or ``"msd"`` (``imagesTr/<id>.nii.gz``
        4D FLAIR, T1w, T1gd, T2w; ``labelsTr/<id>.nii.gz`` labels 1 edema, 2 NCR, 3 ET; ``dataset.json``).
    shape
        Volume size in file order ``(x, y, z)``.
    orientation
        ``"LPS"`` (as BraTS stores), ``"RAS"`` (x and y flipped) or ``"oblique"`` (LPS rotated by
        4-10 degrees about a random axis). Reading back gives the same internal arrays in all three.
    overwrite
        Replace existing files of the same names.

    Returns
    -------
    list of Path
        What :func:`~.io.read_case` takes: the case folders, or for MSD the 4D image files.

    Raises
    ------
    CaseError
        Unknown layout or orientation, or a bad shape.
    OutputExistsError
        A file exists and ``overwrite`` is False.
    """
    if layout not in LAYOUTS:
        raise CaseError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    orient = {o.lower(): o for o in ORIENTATIONS}.get(str(orientation).lower())
    if orient is None:
        raise CaseError(f"unknown orientation {orientation!r}; choose one of {', '.join(ORIENTATIONS)}")
    if n < 0 or seed < 0:
        raise CaseError(f"the number of cases and the seed must be >= 0 (got {n}, {seed})")
    root = Path(out_dir)
    shape_xyz = tuple(int(s) for s in shape)
    written: list[Path] = []
    for i in range(n):
        cid = _case_id(layout, seed, i)
        case = synth_case(case_seed(seed, i), shape_xyz, case_id=cid)
        rng = np.random.default_rng(case_seed(seed, i) + 1)
        affine = {"LPS": _lps_affine, "RAS": _ras_affine}.get(orient)
        geo = _geometry(shape_xyz, affine(shape_xyz) if affine else _oblique_affine(shape_xyz, rng))
        if layout == "msd":
            img_path = root / "imagesTr" / f"{cid}.nii.gz"
            data = np.stack([geo.from_internal(case.images[m]) for m in MSD_CHANNELS], axis=-1)
            hdr = _header(data.shape, geo.affine)
            save_image(nib.Nifti1Image(data.astype(np.int16), geo.affine, hdr), img_path, overwrite=overwrite)
            assert case.ground_truth is not None
            write_labels(case.ground_truth, geo, root / "labelsTr" / f"{cid}.nii.gz", scheme="msd",
                         overwrite=overwrite)
            written.append(img_path)
            continue
        folder = root / cid
        suffix = _FILE_SUFFIX[layout]
        for m in MODALITIES:
            data = geo.from_internal(case.images[m]).astype(np.int16)
            save_image(nib.Nifti1Image(data, geo.affine, geo.header.copy()),
                       folder / f"{cid}{suffix[m]}.nii.gz", overwrite=overwrite)
        assert case.ground_truth is not None
        write_labels(case.ground_truth, geo, folder / f"{cid}{suffix['seg']}.nii.gz", scheme=layout,
                     overwrite=overwrite)
        written.append(folder)
    if layout == "msd" and n:
        _write_msd_json(root, written, overwrite)
    return written


def _write_msd_json(root: Path, images: list[Path], overwrite: bool) -> None:
    path = root / "dataset.json"
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: file exists (ask to overwrite)")
    meta = {
        "name": "BRATS (synthetic, napari-brats-seg)",
        "tensorImageSize": "4D",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": len(images),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{p.name}", "label": f"./labelsTr/{p.name}"} for p in images],
        "test": [],
    }
    path.write_text(json.dumps(meta, indent=2))
