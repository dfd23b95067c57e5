"""The one checkpoint format: every family round-trips exactly; foreign and corrupt files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models.cascade import cascade_spec
from napari_brats_seg.core.models.checkpoint import load_checkpoint, read_spec, save_checkpoint
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.registry import load_model
from napari_brats_seg.core.models.spec import ModelSpec
from napari_brats_seg.core.models.unet2d import unet2d_spec
from napari_brats_seg.core.models.unet3d import segresnet_spec, unet3d_spec

SPECS = {
    "unet3d": lambda: unet3d_spec(output="labels", filters=[4, 8, 8, 16, 16]),
    "segresnet": lambda: segresnet_spec(init_filters=8),
    "cascade": lambda: cascade_spec(kind="mf", local_maps=8, global_maps=12),
    "unet2d": lambda: unet2d_spec("unet2d", arch={"features": [4, 4, 8, 8, 16, 4]}),
    "resunet2d": lambda: unet2d_spec("resunet2d"),  # the full ResNet-50 encoder (26 M parameters)
    "attunet2d": lambda: unet2d_spec("attunet2d", arch={"channels": [4, 8, 16], "strides": [2, 2]}),
}


def _tiny(tmp_path: Path) -> tuple[Path, ModelSpec]:
    spec = SPECS["unet2d"]()
    return save_checkpoint(tmp_path / "tiny.safetensors", build_network(spec), spec), spec


@pytest.mark.parametrize("family", list(SPECS))
def test_round_trip_gives_identical_outputs(tmp_path: Path, crop32: torch.Tensor, slices2d: torch.Tensor,
                                            family: str) -> None:
    torch.manual_seed(0)
    spec = SPECS[family]()
    spec.provenance = {"data": "test", "epochs": 0}
    net = build_network(spec)
    for p in net.parameters():  # move away from the initialisation so a failed load would show
        p.data.add_(0.01 * torch.randn_like(p))
    net.eval()
    x = crop32[..., :24] if spec.dims == 3 else slices2d
    with torch.no_grad():
        before = net(x)
    path = save_checkpoint(tmp_path / family, net, spec)
    assert path.suffix == ".safetensors" and path.is_file()
    assert read_spec(path) == spec
    loaded = load_model(path)
    assert loaded.spec == spec and loaded.source == str(path)
    assert not loaded.network.training
    with torch.no_grad():
        after = loaded.network(x)
    assert after.shape == before.shape == (x.shape[0], len(spec.classes or spec.regions)) + tuple(x.shape[2:])
    assert torch.equal(before, after)


def test_spec_survives_json_with_every_field(tmp_path: Path) -> None:
    path, spec = _tiny(tmp_path)
    meta = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["spec"])
    assert meta["family"] == "unet2d" and meta["channels"] == ["t1", "t1ce", "t2", "flair"]
    assert meta["orientation"] == "LPS" and meta["format_version"] == 1
    assert {"normalization", "patch_size", "spacing", "provenance", "label_scheme", "output"} <= set(meta)


def test_text_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.safetensors"
    bad.write_text("this is not a model, just some text that is long enough\n" * 4)
    with pytest.raises(ModelError, match="not a valid safetensors checkpoint"):
        load_model(bad)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path, _ = _tiny(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.safetensors"):
        load_checkpoint(cut)


def test_torch_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    pt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pt)
    with pytest.raises(ModelError, match="PyTorch pickle"):
        load_model(pt)


def test_foreign_safetensors_and_future_versions_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="without napari-brats-seg model metadata"):
        load_model(foreign)
    future = tmp_path / "future.safetensors"
    spec = SPECS["unet2d"]()
    save_file({"w": torch.zeros(3)}, str(future),
              metadata={"format": "napari-brats-seg", "format_version": "99", "spec": spec.to_json()})
    with pytest.raises(ModelError, match="format version '99'"):
        read_spec(future)


def test_weights_that_do_not_fit_the_recorded_architecture(tmp_path: Path) -> None:
    small = SPECS["unet2d"]()
    other = unet2d_spec("unet2d", arch={"features": [8, 8, 8, 8, 16, 8]})
    path = save_checkpoint(tmp_path / "mixed.safetensors", build_network(small), other)
    with pytest.raises(ModelError, match="do not fit the unet2d network"):
        load_checkpoint(path)
    wrong_family = SPECS["attunet2d"]()
    path = save_checkpoint(tmp_path / "wrong.safetensors", build_network(small), wrong_family)
    with pytest.raises(ModelError, match="do not fit the attunet2d network"):
        load_checkpoint(path)


def test_deepmedic_round_trips_through_the_format(tmp_path: Path) -> None:
    from napari_brats_seg.core.models.deepmedic import captk_spec

    torch.manual_seed(0)
    spec = captk_spec()
    net = build_network(spec)
    path = save_checkpoint(tmp_path / "dm.safetensors", net, spec)
    loaded = load_model(path)
    assert loaded.spec == spec and type(loaded.network).__name__ == "DeepMedic"
    ours, theirs = net.state_dict(), loaded.network.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
