"""Fixtures of the model tests: a real case crop (Case and normalised model-axes tensors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_brats_seg.core.case import Case
from napari_brats_seg.core.io import read_case
from napari_brats_seg.core.preprocess import normalize, to_model_axes


@pytest.fixture(scope="session")
def crop_case(real_crop_dir: Path) -> Case:
    """The 64^3 real crop around the tumour of Brats18_2013_11_1, read as a Case (with ground truth)."""
    return read_case(real_crop_dir)


@pytest.fixture(scope="session")
def crop32(crop_case: Case) -> torch.Tensor:
    """``(1, 4, 32, 32, 32)`` float32: the crop's centre, z-scored in the brain, LPS model axes."""
    arr = normalize(crop_case.stack(), {"kind": "zscore_brain"})
    arr = to_model_axes(arr, "LPS")[:, 16:48, 16:48, 16:48]
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


@pytest.fixture(scope="session")
def slices2d(crop32: torch.Tensor) -> torch.Tensor:
    """``(2, 4, 32, 32)``: two axial slices (model axes: fixed last axis) of :func:`crop32`."""
    return crop32[0, :, :, :, [10, 20]].permute(3, 0, 1, 2).contiguous()
