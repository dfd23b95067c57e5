"""napari writer: a labels layer to NIfTI, on the grid of the case it came from.

The layer holds internal classes; the file gets the source file's shape, voxel order, affine and
qform/sform, and the values of the layer's label scheme (the scheme the ground truth came in, or the
layout's; ``brats2021`` otherwise), so a ground truth opened and saved unchanged is identical voxel
for voxel. A labels layer without a source (drawn from scratch) is written as an LPS-ordered file
whose affine comes from the layer's ``scale`` and ``translate``. Input files of the case are never
written over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..core.geometry import Geometry
from ..core.io import write_labels
from .layers import LayerSource, source_of


def geometry_from_placement(shape: tuple[int, int, int], scale: Any, translate: Any) -> Geometry:
    """A file geometry (LPS voxel order) for a ``(z, y, x)`` layer placed in mm by scale/translate."""
    sz, sy, sx = (float(s) for s in scale)
    tz, ty, tx = (float(t) for t in translate)
    # file voxel axes i->L (x), j->P (y), k->S (z); world is RAS: R = -L, A = -P.
    affine = np.array([[-sx, 0, 0, -tx], [0, -sy, 0, -ty], [0, 0, sz, tz], [0, 0, 0, 1]], float)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((shape[2], shape[1], shape[0]))
    hdr.set_qform(affine, 1)
    hdr.set_sform(affine, 1)
    hdr.set_xyzt_units("mm")
    return Geometry((shape[2], shape[1], shape[0]), affine, hdr)


def write_labels_layer(path: str, data: Any, meta: dict, *, scheme: str | None = None,
                       overwrite: bool = True) -> list[str]:
    """Write one labels layer (napari single-layer writer signature).

    Parameters
    ----------
    path
        Output ``.nii`` or ``.nii.gz`` (``.nii.gz`` is appended to other names).
    data
        The layer's internal-class label map ``(z, y, x)``.
    meta
        The layer's attributes (``metadata``, ``scale``, ``translate``) as napari passes them.
    scheme
        Label scheme of the file; the layer's own when None.
    overwrite
        Replace an existing output that is not an input (napari's save dialog has already asked).

    Returns
    -------
    list of str
        The written path.

    Raises
    ------
    OutputExistsError
        The path is one of the case's input files (or exists and ``overwrite`` is False).
    """
    out = Path(path)
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        out = out.with_name(out.name + ".nii.gz")
    arr = np.asarray(data)
    src: LayerSource | None = source_of(meta.get("metadata", {}) or {})
    if src is not None:
        geo, protected, sch = src.geometry, src.input_paths, scheme or src.scheme
    else:
        ndim = arr.ndim
        geo = geometry_from_placement(arr.shape, meta.get("scale", (1.0,) * ndim),
                                      meta.get("translate", (0.0,) * ndim))
        protected, sch = [], scheme or "brats2021"
    written = write_labels(arr, geo, out, scheme=sch, overwrite=overwrite, protected=protected)
    return [str(written)]
