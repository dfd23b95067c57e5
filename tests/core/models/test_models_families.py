"""Every family builds, keeps the spatial size, and runs on a real case crop."""

from __future__ import annotations

import pytest
import torch

from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models.families import FAMILIES, build_network, family
from napari_brats_seg.core.models.unet2d import unet2d_spec
from napari_brats_seg.core.models.unet3d import segresnet_spec, unet3d_spec


@pytest.mark.parametrize("output,k", [("regions", 3), ("labels", 4)])
def test_unet3d_keeps_size_and_deep_supervision_only_in_training(crop32: torch.Tensor, output: str, k: int) -> None:
    torch.manual_seed(0)
    spec = unet3d_spec(output=output, filters=[4, 8, 8, 16, 16])
    net = build_network(spec)
    x = crop32[..., 1:31, :, 3:31]  # 30 x 32 x 28: not divisible by 16, padded inside
    net.train()
    with torch.no_grad():
        train_out = net(x)
    assert train_out.shape == (1, 1 + spec.arch["deep_supr_num"], k, 30, 32, 28)
    net.eval()
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, k, 30, 32, 28)
    assert torch.isfinite(out).all()
    assert spec.divisible_by == 16 and spec.dims == 3
    assert spec.regions == (("WT", "TC", "ET") if output == "regions" else ())


def test_unet3d_is_isensee_style() -> None:
    net = build_network(unet3d_spec(filters=[4, 8, 8, 16, 16]))
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"InstanceNorm3d", "LeakyReLU"} <= kinds
    assert not {"BatchNorm3d", "ReLU"} & kinds
    assert any(k == "UnetResBlock" for k in kinds)


def test_segresnet_has_the_bundle_configuration(crop32: torch.Tensor) -> None:
    spec = segresnet_spec()
    assert spec.arch == {"blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "init_filters": 16,
                         "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2}
    assert spec.channels == ("t1ce", "t1", "t2", "flair") and spec.regions == ("TC", "WT", "ET")
    net = build_network(spec).eval()
    with torch.no_grad():
        out = net(crop32[..., :28, :30, :])
    assert out.shape == (1, 3, 28, 30, 32)


@pytest.mark.parametrize("family,arch", [
    ("unet2d", {"features": [4, 4, 8, 8, 16, 4]}),
    ("attunet2d", {"channels": [4, 8, 16], "strides": [2, 2]}),
    ("resunet2d", {"decoder_channels": [16, 8, 8, 4, 4]}),
])
def test_2d_families_label_whole_slices(slices2d: torch.Tensor, family: str, arch: dict) -> None:
    torch.manual_seed(0)
    spec = unet2d_spec(family, arch=arch)
    net = build_network(spec).eval()
    x = slices2d[..., :30, :27]
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 4, 30, 27)
    assert torch.isfinite(out).all()
    assert spec.dims == 2 and spec.classes == (0, 1, 2, 3)
    if family == "resunet2d":
        encoder = net.net.encoder
        assert type(encoder).__name__ == "ResNetEncoder"
        assert sum(1 for m in encoder.modules() if type(m).__name__ == "ResNetBottleneck") == 3 + 4 + 6 + 3


def test_resunet2d_refuses_downloading_pretrained_weights() -> None:
    with pytest.raises(ModelError, match="pretrained"):
        build_network(unet2d_spec("resunet2d", arch={"pretrained": True}))


def test_unknown_family_and_dims_mismatch_are_model_errors() -> None:
    spec = unet3d_spec(filters=[4, 8, 8, 16, 16])
    spec.family = "transformer"
    with pytest.raises(ModelError, match="unknown model family 'transformer'"):
        build_network(spec)
    spec = unet2d_spec("unet2d")
    spec.dims = 3
    with pytest.raises(ModelError, match="2D"):
        build_network(spec)
    assert set(FAMILIES) >= {"unet3d", "segresnet", "cascade", "deepmedic", "unet2d", "resunet2d", "attunet2d"}


def test_bad_arch_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="segresnet"):
        build_network(segresnet_spec(init_filters=4))  # group norm with 8 groups needs multiples of 8


def test_family_table_makes_default_specs_and_declares_self_tiling() -> None:
    # one builder signature, build(spec); the default spec maker of each family makes a spec of it
    for fam in FAMILIES.values():
        if fam.spec_maker is None:
            assert fam.name == "bundle"  # a bundle's spec comes with the bundle
            with pytest.raises(ModelError, match="no default spec"):
                fam.default_spec()
            continue
        spec = fam.default_spec()
        assert spec.family == fam.name and spec.dims == fam.dims
        assert spec.self_tiling == fam.self_tiling == (fam.name == "deepmedic")
    net = family("deepmedic").build(family("deepmedic").default_spec())
    assert hasattr(net, "predict_volume") and net.n_classes == 5
    with pytest.raises(ModelError, match="unknown model family 'nope'"):
        family("nope")
    with pytest.raises(AttributeError):
        family("unet3d").dims = 2  # type: ignore[misc]  # frozen
