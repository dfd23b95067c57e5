"""load_model dispatch, list_models / ``brats-seg models``, and spec.check_case before compute."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from napari_brats_seg.cli import main
from napari_brats_seg.core.case import Case
from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models import registry
from napari_brats_seg.core.models.checkpoint import save_checkpoint
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.registry import list_models, load_model
from napari_brats_seg.core.models.unet2d import unet2d_spec
from napari_brats_seg.core.models.unet3d import segresnet_spec, unet3d_spec


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = unet2d_spec("unet2d", name="tiny-unet2d", arch={"features": [4, 4, 8, 8, 16, 4]})
    spec.provenance = {"data": "BraTS 2018 (12 cases)", "epochs": 3}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", build_network(spec), spec)


def test_check_case_accepts_a_real_case(crop_case: Case) -> None:
    assert unet3d_spec().check_case(crop_case) == []
    assert segresnet_spec().check_case(crop_case) == []


def test_missing_modality_is_named(crop_case: Case) -> None:
    no_flair = dataclasses.replace(crop_case, images={k: v for k, v in crop_case.images.items() if k != "flair"})
    with pytest.raises(ModelError, match="has no flair"):
        segresnet_spec().check_case(no_flair)


def test_channel_count_and_dims_are_checked(crop_case: Case) -> None:
    spec = unet3d_spec()
    spec.arch["in_channels"] = 3
    with pytest.raises(ModelError, match="takes 3 input channels but lists 4"):
        spec.check_case(crop_case)
    flat = dataclasses.replace(crop_case, images={k: v[0] for k, v in crop_case.images.items()})
    with pytest.raises(ModelError, match="needs 3D images"):
        unet3d_spec().check_case(flat)
    uneven = dict(crop_case.images)
    uneven["t2"] = uneven["t2"][:, :, :10]
    with pytest.raises(ModelError, match="differ in shape"):
        unet3d_spec().check_case(dataclasses.replace(crop_case, images=uneven))
    spec = unet3d_spec(patch_size=(96, 96))
    with pytest.raises(ModelError, match="does not have 3 dimensions"):
        spec.check_case(crop_case)
    spec = unet3d_spec()
    spec.orientation = "LPX"
    with pytest.raises(ModelError, match="orientation 'LPX'"):
        spec.check_case(crop_case)
    spec = unet3d_spec()
    spec.regions = ("WT", "XX", "ET")
    with pytest.raises(ModelError, match="region outputs"):
        spec.check_case(crop_case)


def test_spacing_mismatch_is_a_warning(crop_case: Case) -> None:
    spec = unet3d_spec()
    spec.spacing = (2.0, 2.0, 2.0)
    warnings = spec.check_case(crop_case)
    assert len(warnings) == 1 and "2.0" in warnings[0]


def test_load_model_by_shipped_name(tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "tiny-unet2d.safetensors").write_bytes(tiny_ckpt.read_bytes())
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    model = load_model("tiny-unet2d")
    assert model.source == "tiny-unet2d" and model.spec.family == "unet2d"
    with pytest.raises(ModelError, match="shipped: tiny-unet2d"):
        load_model("no-such-model")
    listed = list_models()
    assert [(m["name"], m["shipped"]) for m in listed] == [("tiny-unet2d", True)]


def test_unknown_name_without_shipped_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "absent")
    with pytest.raises(ModelError, match="none are shipped"):
        load_model("unet3d-brats")
    assert list_models() == []


def test_captk_folder_is_recognised(deepmedic_dir: Path) -> None:
    assert registry._is_captk_deepmedic(deepmedic_dir)
    assert not registry._is_bundle(deepmedic_dir)


def test_cli_lists_paths_as_json_and_text(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "absent")
    assert main(["models", str(tiny_ckpt), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["family"] == "unet2d" and out[0]["channels"] == ["t1", "t1ce", "t2", "flair"]
    assert out[0]["outputs"] == ["BG", "NCR", "ED", "ET"] and out[0]["provenance"]["epochs"] == 3
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_text("hello, not weights at all; just words to fill the header bytes")
    assert main(["models", str(tiny_ckpt), str(bogus)]) == 1
    text = capsys.readouterr().out
    assert "no shipped models" in text and "tiny-unet2d" in text and "error:" in text
    assert main(["models", "--families"]) == 0
    assert "Havaei" in capsys.readouterr().out


def test_shipped_weights_are_packaged() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[3]
    conf = tomllib.loads((root / "pyproject.toml").read_text())
    packages = conf["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "src/napari_brats_seg" in packages  # the whole package folder, weights/*.safetensors included
    ignored = (root / ".gitignore").read_text()
    assert "safetensors" not in ignored
    assert root / "src" / "napari_brats_seg" / "weights" == registry.WEIGHTS_DIR
    assert np.all([p.suffix == ".safetensors" for p in registry.shipped_models().values()])


def test_captk_folder_loads_through_load_model_and_lists(deepmedic_dir: Path) -> None:
    model = load_model(deepmedic_dir)
    assert model.spec.family == "deepmedic" and model.source == str(deepmedic_dir)
    assert not model.network.training
    listed = list_models([deepmedic_dir])
    entry = [m for m in listed if not m["shipped"]][0]
    assert entry["family"] == "deepmedic" and entry["normalization"]["kind"] == "deepmedic"
    assert entry["outputs"] == ["BG", "NCR", "ED", "unused", "ET"]
