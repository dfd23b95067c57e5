"""End to end: every family's LoadedModel goes through ``core.inference.predict`` on a real crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_brats_seg.core.case import Case
from napari_brats_seg.core.inference import predict
from napari_brats_seg.core.models.cascade import cascade_spec
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.spec import LoadedModel
from napari_brats_seg.core.models.unet2d import unet2d_spec
from napari_brats_seg.core.models.unet3d import segresnet_spec, unet3d_spec

SPECS = {
    "unet3d-regions": lambda: unet3d_spec(output="regions", filters=[4, 8, 8, 16, 16], patch_size=(64, 64, 64)),
    "segresnet": lambda: segresnet_spec(init_filters=8),
    "cascade-input": lambda: cascade_spec(kind="input", local_maps=4, global_maps=6),
    "attunet2d": lambda: unet2d_spec("attunet2d", arch={"channels": [4, 8, 16], "strides": [2, 2]}),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_predict_runs_every_family_on_a_real_crop(crop_case: Case, name: str) -> None:
    torch.manual_seed(0)
    spec = SPECS[name]()
    model = LoadedModel(spec=spec, network=build_network(spec).eval())
    calls: list[tuple[int, int]] = []
    seg = predict(crop_case, model, device="cpu", on_progress=lambda d, t, m: calls.append((d, t)))
    assert seg.labels.shape == crop_case.shape and seg.labels.dtype == np.uint8
    assert set(np.unique(seg.labels)) <= {0, 1, 2, 3}
    assert calls and calls[-1][0] == calls[-1][1]
