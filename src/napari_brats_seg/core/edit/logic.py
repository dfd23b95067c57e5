"""Logical operations between two label maps of one case on one grid.

With ``S`` the voxels where the source holds the chosen class (or any tumour class):

============  ====================================================================
``copy``      target takes the source's class on ``S`` (overwriting what was there)
``union``     background of the target takes the source's class on ``S``
``subtract``  target voxels of the class(es) on ``S`` become background
``intersect`` target voxels of the class(es) outside ``S`` become background
============  ====================================================================

Maps of different shapes, grids (affines) or cases are refused (:func:`check_same_grid`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .. import labels as lab
from ._common import EditError, as_labels

Operation = Literal["copy", "union", "subtract", "intersect"]
OPERATIONS: tuple[str, ...] = ("copy", "union", "subtract", "intersect")


def check_same_grid(target_shape: tuple[int, ...], source_shape: tuple[int, ...],
                    target_affine: np.ndarray | None = None, source_affine: np.ndarray | None = None,
                    target_case: str | None = None, source_case: str | None = None) -> None:
    """Refuse two label maps that do not overlay voxel for voxel.

    Raises
    ------
    EditError
        Naming what differs: the case, the shape or the affine.
    """
    if target_case is not None and source_case is not None and target_case != source_case:
        raise EditError(f"the layers belong to different cases ({source_case} and {target_case})")
    if tuple(target_shape) != tuple(source_shape):
        raise EditError(f"the layers lie on different grids: shapes {tuple(source_shape)} and {tuple(target_shape)}")
    if target_affine is not None and source_affine is not None and not np.allclose(
            target_affine, source_affine, atol=1e-4):
        raise EditError("the layers lie on different grids: their voxel-to-world affines differ")


def combine(target: np.ndarray, source: np.ndarray, operation: Operation, cls: int | None = None) -> np.ndarray:
    """The target label map after ``operation`` with the source (see the module's table).

    Parameters
    ----------
    target, source
        Internal-class label maps of one shape.
    operation
        ``"copy"``, ``"union"``, ``"subtract"`` or ``"intersect"``.
    cls
        The class operated on; None: every tumour class.

    Raises
    ------
    EditError
        For another shape, an unknown operation or class.
    """
    target, source = as_labels(target), as_labels(source)
    check_same_grid(target.shape, source.shape)
    if cls is not None and int(cls) not in lab.TUMOUR_CLASSES:
        raise EditError(f"pick a tumour class, not {cls}")
    classes = lab.TUMOUR_CLASSES if cls is None else (int(cls),)
    sel = np.isin(source, classes)
    out = np.array(target, copy=True)
    if operation == "copy":
        out[sel] = source[sel]
    elif operation == "union":
        put = sel & (target == lab.BACKGROUND)
        out[put] = source[put]
    elif operation == "subtract":
        out[sel & np.isin(target, classes)] = lab.BACKGROUND
    elif operation == "intersect":
        out[~sel & np.isin(target, classes)] = lab.BACKGROUND
    else:
        raise EditError(f"unknown operation {operation!r}: use one of {', '.join(OPERATIONS)}")
    return out
