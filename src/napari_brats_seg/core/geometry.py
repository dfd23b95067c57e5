"""Voxel geometry: the file's orientation and the internal canonical one, and the maps between them.

The internal orientation is **LPS voxel order** (x grows to the patient's Left, y to Posterior, z to
Superior), stored as ``(z, y, x)`` arrays. This is the voxel order of BraTS files as distributed, so
networks trained on BraTS "as stored" see what they were trained on, and napari shows an axial slice
in radiological convention (patient's right on the screen's left, anterior at the top) without any
flip. Files in any other orientation (RAS, permuted axes, oblique) are re-ordered to the closest
LPS axes on read (a permutation and flips only: no resampling, no interpolation), and back on write,
so a label map written by :func:`napari_brats_seg.core.io.write_labels` lies voxel for voxel on its
source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from nibabel import orientations as nio

#: Internal voxel orientation (of the x, y, z axes before the transpose to z-y-x arrays).
INTERNAL_AXCODES = ("L", "P", "S")
#: Patient coordinates RAS (NIfTI, nibabel) <-> LPS (DICOM, ITK): x and y change sign; its own inverse.
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Geometry:
    """Where a file's voxels lie, and how to reach the internal orientation and back.

    Attributes
    ----------
    shape
        The file's spatial shape (3 axes, file voxel order).
    affine
        The file's voxel-to-world (RAS mm) affine, as nibabel reads it.
    header
        A copy of the file's NIfTI header (qform/sform and their codes included).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    header: nib.Nifti1Header = field(repr=False)

    @classmethod
    def from_image(cls, img: nib.Nifti1Image) -> Geometry:
        """The geometry of a loaded NIfTI image (its first three axes)."""
        hdr = img.header.copy()
        return cls(tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, float), hdr)

    @property
    def ornt(self) -> np.ndarray:
        """nibabel orientation transform from the file's voxel axes to internal LPS axes."""
        return nio.ornt_transform(nio.io_orientation(self.affine), nio.axcodes2ornt(INTERNAL_AXCODES))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """The file's closest orientation codes, e.g. ``('L', 'P', 'S')`` or ``('R', 'A', 'S')``."""
        return tuple(nib.aff2axcodes(self.affine))  # type: ignore[return-value]

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the file's axes."""
        return tuple(float(z) for z in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore

    @property
    def is_oblique(self) -> bool:
        """True when the voxel axes are not parallel to the world axes."""
        rot = self.affine[:3, :3] / np.asarray(self.zooms)
        return bool(np.abs(np.abs(rot) - np.round(np.abs(rot))).max() > 1e-4)

    @property
    def internal_shape(self) -> tuple[int, int, int]:
        """Shape of the internal ``(z, y, x)`` arrays."""
        lps = [0, 0, 0]
        for src, (dst, _) in enumerate(self.ornt):
            lps[int(dst)] = self.shape[src]
        return (lps[2], lps[1], lps[0])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing (mm) of the internal ``(z, y, x)`` axes."""
        lps = [0.0, 0.0, 0.0]
        for src, (dst, _) in enumerate(self.ornt):
            lps[int(dst)] = self.zooms[src]
        return (lps[2], lps[1], lps[0])

    @property
    def internal_affine(self) -> np.ndarray:
        """Affine from internal ``(z, y, x)`` indices to world RAS mm."""
        # inv_ornt_aff maps voxel indices of the reoriented array to those of the original.
        to_file = nio.inv_ornt_aff(self.ornt, self.shape)
        swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
        return self.affine @ to_file @ swap

    def to_internal(self, data: np.ndarray) -> np.ndarray:
        """Reorder a file-order array (3D, or 4D with trailing channels) to internal ``(z, y, x[, c])``."""
        arr = nio.apply_orientation(np.asanyarray(data), self.ornt)
        axes = (2, 1, 0) + tuple(range(3, arr.ndim))
        return np.ascontiguousarray(np.transpose(arr, axes))

    def from_internal(self, data: np.ndarray) -> np.ndarray:
        """Reorder an internal ``(z, y, x)`` array back to the file's voxel order (exact inverse)."""
        arr = np.transpose(np.asanyarray(data), (2, 1, 0) + tuple(range(3, np.ndim(data))))
        inverse = nio.ornt_transform(nio.axcodes2ornt(INTERNAL_AXCODES), nio.io_orientation(self.affine))
        out = nio.apply_orientation(arr, inverse)
        if out.shape[:3] != self.shape:
            raise ValueError(f"array of internal shape {np.shape(data)} does not fit file shape {self.shape}")
        return np.ascontiguousarray(out)

    def agrees_with(self, other: Geometry, atol: float = 1e-3) -> str | None:
        """None when both geometries describe the same voxel grid, else what differs, in words."""
        if self.shape != other.shape:
            return f"shape {other.shape} differs from {self.shape}"
        diff = float(np.abs(self.affine - other.affine).max())
        if diff > atol:
            return f"affine differs by up to {diff:.4g} mm (tolerance {atol} mm)"
        return None

    def same_world_grid(self, other: Geometry, atol: float = 1e-3) -> bool:
        """True when ``other`` stores the same voxels in another voxel order (axes permuted or flipped).

        Both then map to identical internal ``(z, y, x)`` arrays through :meth:`to_internal`, exactly
        (a permutation and flips, no resampling).
        """
        return (self.internal_shape == other.internal_shape
                and float(np.abs(self.internal_affine - other.internal_affine).max()) <= atol)

    def grid_difference(self, other: Geometry, atol: float = 1e-3) -> str | None:
        """None when ``other`` lies on this grid, in this voxel order or another one; else what differs.

        Unlike :meth:`agrees_with`, a file stored transposed or flipped on the same world grid is
        accepted: reading each file through its own geometry reorients it exactly.
        """
        why = self.agrees_with(other, atol)
        if why is None or self.same_world_grid(other, atol):
            return None
        if self.axcodes != other.axcodes:
            if self.internal_shape != other.internal_shape:
                after = f"shape {other.internal_shape} differs from {self.internal_shape}"
            else:
                diff = float(np.abs(self.internal_affine - other.internal_affine).max())
                after = f"affine differs by up to {diff:.4g} mm (tolerance {atol} mm)"
            return (f"stored in voxel order {''.join(other.axcodes)} instead of {''.join(self.axcodes)} "
                    f"(that alone would be fine), but even reordered its {after}")
        return why

    def describe(self) -> dict:
        """A JSON-friendly summary (shape, spacing, orientation, oblique)."""
        return {
            "shape": list(self.shape),
            "spacing_mm": [round(z, 6) for z in self.zooms],
            "orientation": "".join(self.axcodes),
            "oblique": self.is_oblique,
            "affine": np.round(self.affine, 6).tolist(),
            "qform_code": int(self.header["qform_code"]),
            "sform_code": int(self.header["sform_code"]),
        }
