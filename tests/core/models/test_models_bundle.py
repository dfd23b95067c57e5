"""MONAI bundles: the real brats_mri_segmentation configuration with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import SegResNet

from napari_brats_seg.core.case import Case
from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.labels import from_internal, regions_to_labels
from napari_brats_seg.core.models.checkpoint import save_checkpoint
from napari_brats_seg.core.models.registry import list_models, load_model
from napari_brats_seg.core.preprocess import normalize, to_model_axes

# configs/inference.json of Project-MONAI/model-zoo models/brats_mri_segmentation (network, transforms,
# inferer and post-processing as published; the data-list, handler and evaluator entries left out).
INFERENCE = {
    "imports": ["$import glob", "$import os"],
    "bundle_root": ".",
    "ckpt_dir": "$@bundle_root + '/models'",
    "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    "amp": True,
    "network_def": {"_target_": "SegResNet", "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1],
                    "init_filters": 16, "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2},
    "network": "$@network_def.to(@device)",
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]},
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [240, 240, 160], "sw_batch_size": 1,
                "overlap": 0.5},
    "postprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
        {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5},
        {"_target_": "Lambdad", "keys": "pred",
         "func": "$lambda x: torch.where(x[[2]] > 0, 4, torch.where(x[[0]] > 0, 1, torch.where(x[[1]] > 0, 2, 0)))"}]},
}
# configs/metadata.json of the same bundle (version 0.3.0), descriptive fields and network_data_format.
METADATA = {
    "version": "0.3.0",
    "monai_version": "0.9.1",
    "task": "Multimodal Brain Tumor segmentation",
    "description": "A pre-trained model for volumetric (3D) segmentation of brain tumor subregions from "
                   "multimodal MRIs based on BraTS 2018 data",
    "data_source": "https://www.med.upenn.edu/sbia/brats2018/data.html",
    "image_classes": "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm",
    "label_classes": "3 channel data, channel 0 for Tumor core, channel 1 for Whole tumor, channel 2 for "
                     "Enhancing tumor",
    "eval_metrics": {"val_mean_dice": 0.8518, "val_mean_dice_tc": 0.8559, "val_mean_dice_wt": 0.9026,
                     "val_mean_dice_et": 0.7905},
    "intended_use": "This is an example, not to be used for diagnostic purposes",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 4,
                             "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32", "value_range": [],
                             "is_patch_data": True,
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                             "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32", "value_range": [0, 1],
                             "is_patch_data": True,
                             "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}},
    },
}


def _write_bundle(root: Path, state: dict | None = None, inference: dict | None = None) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(inference or INFERENCE, indent=4))
    (root / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=4))
    if state is None:
        torch.manual_seed(3)
        state = SegResNet(**{k: v for k, v in INFERENCE["network_def"].items() if k != "_target_"}).state_dict()
    torch.save(state, root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_bundle(tmp_path_factory.mktemp("bundle") / "brats_mri_segmentation")


def _bundle_input(case: Case) -> torch.Tensor:
    """The crop as the bundle reads it: T1c, T1, T2, FLAIR as stored (LPS), nonzero z-score."""
    arr = normalize(case.stack(("t1ce", "t1", "t2", "flair")), {"kind": "nonzero_channelwise"})
    return torch.from_numpy(to_model_axes(arr, "LPS")[:, 16:48, 16:48, 16:48].copy())[None]


def test_bundle_spec_reads_channels_outputs_and_preprocessing(bundle_dir: Path) -> None:
    model = load_model(bundle_dir)
    spec = model.spec
    assert spec.family == "segresnet"
    assert spec.channels == ("t1ce", "t1", "t2", "flair")
    assert spec.output == "regions" and spec.regions == ("TC", "WT", "ET")
    assert spec.orientation == "LPS"
    assert spec.normalization == {"kind": "nonzero_channelwise"}
    assert spec.patch_size == (240, 240, 160) and spec.divisible_by == 8
    assert spec.provenance["scores"]["val_mean_dice_wt"] == 0.9026
    assert not model.network.training


def test_bundle_network_equals_monai_segresnet_with_its_weights(bundle_dir: Path, crop_case: Case) -> None:
    x = _bundle_input(crop_case)
    ref = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=4,
                    out_channels=3, dropout_prob=0.2)
    ref.load_state_dict(torch.load(bundle_dir / "models" / "model.pt", weights_only=True))
    ref.eval()
    model = load_model(bundle_dir)
    with torch.no_grad():
        ours, theirs = model.network(x), ref(x)
        odd = model.network(x[..., :30, :, :27])  # not a multiple of 8: padded inside
    assert torch.equal(ours, theirs)
    assert odd.shape == (1, 3, 30, 32, 27)


def test_region_merge_is_the_bundles_postprocessing() -> None:
    func = ConfigParser({"f": INFERENCE["postprocessing"]["transforms"][2]["func"]}).get_parsed_content("f")
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(3, 6, 7, 8)).astype(np.float32))
    binary = (torch.sigmoid(logits) > 0.5).float()  # Activationsd sigmoid + AsDiscreted threshold 0.5
    theirs = func(binary)[0].numpy().astype(np.uint8)  # BraTS 2018 values 1/2/4
    tc, wt, et = (binary[i].numpy() > 0 for i in range(3))
    ours = from_internal(regions_to_labels(wt, tc, et), "brats2021")
    assert set(np.unique(theirs)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(ours, theirs)


def test_bundle_converts_to_the_checkpoint_format(bundle_dir: Path, tmp_path: Path, crop_case: Case) -> None:
    model = load_model(bundle_dir)
    path = save_checkpoint(tmp_path / "segresnet-bundle.safetensors", model.network, model.spec)
    again = load_model(path)
    x = _bundle_input(crop_case)[..., :16]
    with torch.no_grad():
        assert torch.equal(model.network(x), again.network(x))
    assert again.spec == model.spec and again.spec.crop is False
    listed = list_models([bundle_dir, path])
    assert [m["family"] for m in listed if not m["shipped"]] == ["segresnet", "segresnet"]


def test_bundle_runs_on_the_whole_volume_as_its_pipeline_does(bundle_dir: Path, real_crop_dir: Path,
                                                              tmp_path: Path) -> None:
    # GroupNorm statistics depend on the volume seen: a bundle is not cropped unless asked
    import dataclasses

    import nibabel as nib

    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.models.spec import LoadedModel

    # the real crop with a background border of 12 voxels, so that the brain's box is smaller
    for f in real_crop_dir.glob("*.nii.gz"):
        img = nib.load(str(f))
        data = np.asarray(img.dataobj).copy()
        inner = data[12:-12, 12:-12, 12:-12].copy()
        data[:] = 0
        data[12:-12, 12:-12, 12:-12] = inner
        nib.save(nib.Nifti1Image(data, img.affine, img.header), str(tmp_path / f.name))
    case = read_case(tmp_path)
    model = load_model(bundle_dir)
    assert model.spec.crop is False
    whole = predict(case, model, device="cpu", precision="fp32")
    assert whole.info["crop"] == [[0, n] for n in case.shape]
    forced = predict(case, model, device="cpu", precision="fp32", crop=True)
    assert forced.info["crop"] != whole.info["crop"]
    # the same network with crop left on (the project's default) crops
    plain = LoadedModel(dataclasses.replace(model.spec, crop=True), model.network)
    assert predict(case, plain, device="cpu", precision="fp32").info["crop"] == forced.info["crop"]


def test_bundle_errors(tmp_path: Path) -> None:
    no_weights = _write_bundle(tmp_path / "a")
    (no_weights / "models" / "model.pt").unlink()
    with pytest.raises(ModelError, match="no weights file"):
        load_model(no_weights)
    wrong = _write_bundle(tmp_path / "b", state={"convInit.conv.weight": torch.zeros(3, 3, 3, 3, 3)})
    with pytest.raises(ModelError, match="does not fit its network_def"):
        load_model(wrong)
    expr = json.loads(json.dumps(INFERENCE))
    expr["network_def"]["init_filters"] = "$__import__('os').getpid()"
    with pytest.raises(ModelError, match="only literal arguments"):
        load_model(_write_bundle(tmp_path / "c", inference=expr))
    pickled = _write_bundle(tmp_path / "d")
    torch.save({"model": Path("x")}, pickled / "models" / "model.pt")  # an arbitrary object: refused unpickled
    with pytest.raises(ModelError, match="plain state dict"):
        load_model(pickled)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ModelError, match="MONAI bundle .* or a CaPTk DeepMedic"):
        load_model(plain)


def test_other_monai_networks_load_as_the_bundle_family(tmp_path: Path, crop_case: Case) -> None:
    from monai.networks.nets import BasicUNet

    inference = json.loads(json.dumps(INFERENCE))
    inference["network_def"] = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3, "in_channels": 4,
                                "out_channels": 3, "features": [4, 4, 8, 8, 16, 4]}
    torch.manual_seed(5)
    ref = BasicUNet(spatial_dims=3, in_channels=4, out_channels=3, features=(4, 4, 8, 8, 16, 4)).eval()
    folder = _write_bundle(tmp_path / "basic", state=ref.state_dict(), inference=inference)
    model = load_model(folder)
    assert model.spec.family == "bundle" and model.spec.divisible_by == 8
    x = _bundle_input(crop_case)
    with torch.no_grad():
        assert torch.equal(model.network(x), ref(x))
        assert model.network(x[..., :30]).shape == (1, 3, 32, 32, 30)
    again = load_model(save_checkpoint(tmp_path / "basic.safetensors", model.network, model.spec))
    with torch.no_grad():
        assert torch.equal(again.network(x), ref(x))
    inference["network_def"]["_target_"] = "os.system"
    with pytest.raises(ModelError, match="not a MONAI network"):
        load_model(_write_bundle(tmp_path / "evil", state=ref.state_dict(), inference=inference))
