"""A QC picture of a prepared case: each sequence in three planes with the brain-mask outline.

Usage: ``python scripts/prepare_qc.py CASE_DIR OUT.png`` (CASE_DIR written by ``brats-seg prepare``).
Views are radiological: axial and coronal with the patient's right on the image left, superior up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np


def main(case_dir: str, out: str) -> None:
    case = Path(case_dir)
    cid = case.name
    ims = {r: np.asarray(nib.load(str(case / f"{cid}_{r}.nii.gz")).dataobj) for r in ("t1", "t1ce", "t2", "flair")}
    mask = ims["t1ce"] > 0
    c = [s // 2 for s in mask.shape]
    # arrays are (i: to the patient's left, j: to posterior, k: to superior)
    views = [lambda a: a[:, :, c[2]].T, lambda a: a[:, c[1], :].T[::-1], lambda a: a[c[0], :, :].T[::-1]]
    fig, ax = plt.subplots(3, 4, figsize=(12, 9))
    for col, (role, arr) in enumerate(ims.items()):
        hi = np.percentile(arr[mask], 99.5) if mask.any() else 1.0
        for row, view in enumerate(views):
            a = ax[row, col]
            a.imshow(view(arr), cmap="gray", vmin=0, vmax=hi)
            a.contour(view(mask), levels=[0.5], colors="r", linewidths=0.6)
            a.set_xticks([])
            a.set_yticks([])
        ax[0, col].set_title(role.upper())
    for row, name in enumerate(("axial", "coronal", "sagittal")):
        ax[row, 0].set_ylabel(name)
    fig.suptitle(f"{cid}: prepared on the 1 mm grid (R on the image left, superior up); red: brain mask")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:3])
