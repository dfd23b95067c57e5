"""napari reader: NIfTI files and BraTS / MSD case folders.

- A case folder (BraTS 2018-2021 ``_t1/_t1ce/_t2/_flair[/_seg]``, BraTS 2023+ ``-t1n/-t1c/-t2w/-t2f``,
  or a folder with one MSD 4D image), a list of the four BraTS-named files, or an MSD 4D file:
  four image layers plus the ground truth as a labels layer when present.
- A single 3D NIfTI file: a labels layer when it is a segmentation (``_seg``/``-seg`` name, or integer
  values of a known label scheme), else one image layer.

:func:`napari_get_reader` answers None ("not mine") quickly for anything else and never raises;
nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..core import labels as lab
from ..core.case import MODALITY_NAMES, CaseInfo
from ..core.errors import BratsSegError, CaseError
from ..core.io import classify_file, find_case_files, is_nifti_name, load_nifti, read_case, read_labels
from .layers import META_KEY, LayerSource, case_layer_data, labels_layer_data, robust_limits, world_placement

LayerData = tuple[Any, dict, str]
ReaderFunction = Callable[[Any], list[LayerData]]


def napari_get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return :func:`read` when ``path`` is something this plugin opens, else None (never raises)."""
    try:
        return read if _is_ours(path) else None
    except Exception:  # noqa: BLE001 - a reader probe must never raise for foreign paths
        return None


def _is_ours(path: str | Sequence[str]) -> bool:
    if isinstance(path, (list, tuple)):
        return len(path) > 0 and all(isinstance(p, (str, os.PathLike)) and is_nifti_name(p) for p in path) \
            and all(Path(p).is_file() for p in path)
    p = Path(path)
    if p.is_dir():
        with os.scandir(p) as it:
            if not any(e.is_file() and is_nifti_name(e.name) for e in it):
                return False
        try:
            find_case_files(p)
        except BratsSegError:
            return False
        return True
    return p.is_file() and is_nifti_name(p)


def read(path: str | Sequence[str]) -> list[LayerData]:
    """Read a case folder, a list of case files or one NIfTI file into layer-data tuples.

    Raises
    ------
    CaseError
        For a NIfTI file or case that cannot be read (napari shows the message; never empty).
    """
    _start_session()
    try:
        return _read(path)
    except MemoryError as exc:  # a bare MemoryError would show as an empty "ERROR:"
        raise CaseError(f"{path}: not enough memory to read it (the header may claim a larger image "
                        "than the file holds)") from exc


def _read(path: str | Sequence[str]) -> list[LayerData]:
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return _read(path[0])
        layers: list[LayerData] = []
        try:
            return case_layer_data(read_case([Path(p) for p in path]))
        except BratsSegError:
            # Not the files of one case: open each one by itself.
            for p in path:
                layers.extend(_read(p))
            return layers
    p = Path(path)
    if p.is_dir():
        return case_layer_data(read_case(p))
    img = nib.load(str(p))
    if len(img.shape) == 4 and img.shape[3] == 4:
        return case_layer_data(read_case(p))
    return [_read_single(p)]


def _start_session() -> None:
    """Start the plugin's session (autosave, locked reference) in the viewer the case opens in."""
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        from .session import Session

        Session.for_viewer(viewer)


def _read_single(path: Path) -> LayerData:
    """One 3D file: a labels layer for a segmentation, else an image layer."""
    cls = classify_file(path)
    layout = cls[0] if cls else "files"
    case_id = cls[1] if cls else path.name.split(".")[0]
    role = cls[2] if cls else None
    if role == "seg" or (role is None and _looks_like_labels(path)):
        internal, scheme, geo = read_labels(path, layout=layout if layout in lab.SCHEMES else None)
        info = CaseInfo(case_id=case_id, geometry=geo, layout=layout, gt_path=str(path), gt_scheme=scheme.name)
        src = LayerSource(info=info, role="ground_truth")
        return labels_layer_data(internal, src, f"{path.name.split('.')[0]}")
    data, geo = load_nifti(path)
    arr = geo.to_internal(data.astype(np.float32, copy=False))
    info = CaseInfo(case_id=case_id, geometry=geo, layout=layout, sources={role or "image": str(path)})
    src = LayerSource(info=info, role="image", modality=role)
    name = f"{MODALITY_NAMES[role]} [{case_id}]" if role else path.name.split(".")[0]
    kwargs = {"name": name, "colormap": "gray", "contrast_limits": robust_limits(arr),
              "metadata": {META_KEY: src}, **world_placement(geo)}
    return arr, kwargs, "image"


def _looks_like_labels(path: Path) -> bool:
    """An integer volume whose values fit one known label scheme unambiguously."""
    img = nib.load(str(path))
    if np.dtype(img.get_data_dtype()).kind not in "iub":
        return False
    data = np.asanyarray(img.dataobj)
    try:
        return lab.detect_scheme(data).scheme is not None
    except lab.LabelSchemeError:
        return False
