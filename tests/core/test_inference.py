"""predict(): geometry in every orientation, progress, cancellation, TTA, modes, errors, OOM fallback.

Networks are tiny seeded DynUNets from the registry (a few thousand weights), cases are 32x32x24
crops around the tumour of a real BraTS 2018 case, so the whole module runs in seconds.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _crop import tumour_window
from _tiny_unet import tiny_unet3d
from nibabel import orientations as nio

from napari_brats_seg.core import device as device_mod
from napari_brats_seg.core import inference as inference_mod
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.device import Precision, choose_precision, resolve_device
from napari_brats_seg.core.errors import Cancelled, InferenceError, ModelError
from napari_brats_seg.core.inference import (
    SLICE_BATCH,
    NetworkOutput,
    Segmentation,
    plan_windows,
    predict,
    to_case_grid,
)
from napari_brats_seg.core.io import read_case, write_labels
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.spec import LoadedModel, ModelSpec
from napari_brats_seg.core.models.unet2d import unet2d_spec
from napari_brats_seg.core.passes import WINDOW_BATCH, Runner, activate, batch_size, pass_3d
from napari_brats_seg.core.placement import prepare
from napari_brats_seg.core.progress import CancelToken
from napari_brats_seg.core.runtimes.backends import TorchBackend

CROP = (32, 32, 24)
SUFFIXES = ("t1", "t1ce", "t2", "flair", "seg")


def tiny_model(output: str = "labels", patch: tuple[int, int, int] | None = None, seed: int = 0) -> LoadedModel:
    """A seeded 3-level DynUNet (4 filters) from the registry."""
    return tiny_unet3d(output, patch, seed)


def _save(data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header, path: Path) -> None:
    img = nib.Nifti1Image(np.asarray(data), affine, header.copy())
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _rotation_z(deg: float) -> np.ndarray:
    t = math.radians(deg)
    r = np.eye(4)
    r[:2, :2] = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    return r


@pytest.fixture(scope="module")
def variant_dirs(real_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 32x32x24 crop around the tumour of a real case, stored as LPS, RAS, permuted and oblique."""
    cid = real_case_dir.name
    sl, shift = tumour_window(real_case_dir / f"{cid}_seg.nii.gz", CROP)
    root = tmp_path_factory.mktemp("variants")
    perm_ornt = np.array([[1, 1], [2, -1], [0, 1]])  # file axes become (y, -z, x) of the source
    out: dict[str, Path] = {}
    for variant in ("lps", "ras", "permuted", "oblique"):
        name = f"V{variant}"
        for suffix in SUFFIXES:
            img = nib.load(str(real_case_dir / f"{cid}_{suffix}.nii.gz"))
            data = np.asarray(img.dataobj)[sl]
            aff = img.affine @ shift
            if variant == "ras":
                ornt = nio.ornt_transform(nio.io_orientation(aff), nio.axcodes2ornt(("R", "A", "S")))
                data, aff = nio.apply_orientation(data, ornt), aff @ nio.inv_ornt_aff(ornt, data.shape)
            elif variant == "permuted":
                data, aff = nio.apply_orientation(data, perm_ornt), aff @ nio.inv_ornt_aff(perm_ornt, data.shape)
            elif variant == "oblique":
                aff = _rotation_z(12.0) @ aff
            _save(data, aff, img.header, root / name / f"{name}_{suffix}.nii.gz")
        out[variant] = root / name
    return out


@pytest.fixture(scope="module")
def crop_case(variant_dirs: dict[str, Path]):
    return read_case(variant_dirs["lps"])


def test_geometry_and_identical_predictions_in_every_orientation(variant_dirs, tmp_path):
    model = tiny_model("labels")
    preds = {}
    for variant, folder in variant_dirs.items():
        case = read_case(folder)
        seg = predict(case, model, device="cpu")
        assert seg.labels.shape == case.shape and seg.labels.dtype == np.uint8
        out = write_labels(seg.labels, case, tmp_path / f"{variant}.nii.gz")
        src = nib.load(str(case.sources["t1"]))
        written = nib.load(str(out))
        assert written.shape == src.shape
        np.testing.assert_allclose(written.affine, src.affine, atol=1e-6)
        # reading the written file back as internal labels gives the prediction again
        back = case.geometry.to_internal(lab.to_internal(np.asarray(written.dataobj), "brats2021"))
        np.testing.assert_array_equal(back, seg.labels)
        preds[variant] = seg.labels
    assert len(np.unique(preds["lps"])) >= 2  # the seeded network gives non-trivial labels
    for variant in ("ras", "permuted", "oblique"):
        np.testing.assert_array_equal(preds[variant], preds["lps"], err_msg=variant)


def test_sliding_window_progress_is_exact_and_cancel_stops_within_one_batch(crop_case):
    model = tiny_model("labels", patch=(16, 16, 16))
    calls: list[int] = []  # windows per forward pass
    model.network.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    seen: list[tuple[int, int]] = []
    seg = predict(crop_case, model, device="cpu", on_progress=lambda d, t, m: seen.append((d, t)))
    # model axes (x, y, z) of the brain-cropped 32x32x24 crop: windows planned up front
    crop_xyz = [sl.stop - sl.start for sl in _box(seg)][::-1]  # model axes (x, y, z) of the LPS model
    padded = [max(4 * math.ceil(s / 4), 16) for s in crop_xyz]
    expected = len(plan_windows(padded, (16, 16, 16)))
    assert expected > WINDOW_BATCH and seg.info["mode"] == "sliding window"
    assert seen[0] == (0, expected) and seen[-1] == (expected, expected)
    assert [d for d, _ in seen] == list(range(expected + 1)) and {t for _, t in seen} == {expected}
    size = batch_size(expected, WINDOW_BATCH)  # balanced batches, one forward pass each
    assert sum(calls) == expected == seg.info["windows"] and len(calls) == math.ceil(expected / WINDOW_BATCH)
    assert calls[:-1] == [size] * (len(calls) - 1) and 0 < calls[-1] <= size

    calls.clear()
    seen.clear()
    token = CancelToken()

    def cancel_after_three(done: int, total: int, msg: str) -> None:
        seen.append((done, total))
        if done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        predict(crop_case, model, device="cpu", on_progress=cancel_after_three, cancel=token)
    assert calls == [size]  # no forward pass after the cancel: only the batch that held window 3 ran
    assert seen[-1] == (3, expected)  # and no progress reported after it


def test_batched_windows_give_the_labels_of_one_window_per_pass(crop_case, monkeypatch):
    """Batching the windows changes how many windows a pass takes, nothing else: the same labels and
    probabilities (to float rounding) as one window per pass, on a real crop, for each batch size."""
    model = tiny_model("regions", patch=(16, 16, 16))
    monkeypatch.setattr(inference_mod, "WINDOW_BATCH", 1)
    one = predict(crop_case, model, device="cpu", precision="fp32", probabilities=True)
    assert one.info["windows"] > 4 and len(np.unique(one.labels)) >= 2
    for batch in (3, 4, 16):
        monkeypatch.setattr(inference_mod, "WINDOW_BATCH", batch)
        calls: list[int] = []
        hook = model.network.register_forward_hook(lambda m, args, out, calls=calls: calls.append(args[0].shape[0]))
        seg = predict(crop_case, model, device="cpu", precision="fp32", probabilities=True)
        hook.remove()
        assert max(calls) == batch_size(one.info["windows"], batch) and sum(calls) == one.info["windows"]
        np.testing.assert_array_equal(seg.labels, one.labels, err_msg=f"batch {batch}")
        for r in ("WT", "TC", "ET"):
            np.testing.assert_allclose(seg.probabilities[r], one.probabilities[r], atol=1e-5)


def test_window_batch_is_sized_to_the_available_memory(crop_case, monkeypatch):
    """Where a batch of windows does not fit the available memory, fewer windows go per pass."""
    from napari_brats_seg.core import memory

    model = tiny_model("labels", patch=(16, 16, 16))
    calls: list[int] = []
    model.network.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    # 16^3 voxels x 4 filters x 34 B = 0.56 MB a window: 1.5 MiB (80 %: 1.26 MB) hold two
    monkeypatch.setenv(memory.ENV_MEMORY_LIMIT, "1.5M")
    seg = predict(crop_case, model, device="cpu", precision="fp32")
    assert seg.info["mode"] == "sliding window" and max(calls) == 2 and sum(calls) == seg.info["windows"]


def test_batch_size_balances_the_batches():
    assert batch_size(27, 4) == 4 and batch_size(8, 4) == 4 and batch_size(9, 4) == 3
    assert batch_size(70, 8) == 8 and batch_size(65, 8) == 8 and batch_size(3, 8) == 3 and batch_size(1, 4) == 1
    for n in range(1, 40):
        for most in (1, 3, 4, 8):
            size = batch_size(n, most)
            assert size <= most and math.ceil(n / size) == math.ceil(n / most)


def test_a_fixed_batch_backend_gets_one_batch_size(crop_case):
    """A backend that compiles per shape (OpenVINO) is given every batch filled to one size, and the
    filling is dropped: the same labels as the torch backend."""
    model = tiny_model("labels", patch=(16, 16, 16))
    shapes: list[tuple[int, ...]] = []

    class FixedBatch(TorchBackend):
        fixed_batch = True

        def __call__(self, x):
            shapes.append(tuple(x.shape))
            return super().__call__(x)

    ref = predict(crop_case, model, device="cpu", precision="fp32")
    spec = model.spec
    x, placement = prepare(crop_case, spec)
    run = Runner(model.network, torch.device("cpu"), Precision("fp32"), None, None,
                 FixedBatch(model.network, torch.device("cpu"), Precision("fp32")))
    window = tuple(spec.patch_size)
    n = len(plan_windows(x.shape[1:], window))
    assert n % batch_size(n, WINDOW_BATCH) != 0  # the last batch is short and gets filled
    logits = pass_3d(run, x, window, 0.5, "")
    assert len(set(shapes)) == 1 and run.units == n
    out = NetworkOutput(activate(logits, spec.output), None, None, 1, window, torch.device("cpu"), Precision("fp32"),
                        run.units, "sliding window")
    labels, _, _ = to_case_grid(out, placement, spec)
    np.testing.assert_array_equal(labels, ref.labels)


def _box(seg: Segmentation) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in seg.info["crop"])


def test_tta_regions_probabilities_and_uncertainty(crop_case):
    model = tiny_model("regions")
    with torch.no_grad():  # shift the outputs so every region fires somewhere
        model.network.net.output_block.conv.conv.bias.copy_(torch.tensor([0.3, 0.1, -0.1]))
    seen: list[tuple[int, int]] = []
    seg = predict(crop_case, model, device="cpu", tta=True, probabilities=True,
                  on_progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (8, 8) and seg.info["tta"] == 8
    assert set(seg.probabilities) == {"WT", "TC", "ET"}
    p = seg.probabilities
    for r in ("WT", "TC", "ET"):
        assert p[r].shape == crop_case.shape and p[r].dtype == np.float32
        assert p[r].min() >= 0 and p[r].max() <= 1
    assert np.all(p["WT"] >= p["TC"]) and np.all(p["TC"] >= p["ET"])  # hierarchy kept
    masks = lab.region_masks(seg.labels)
    np.testing.assert_array_equal(masks["ET"], p["ET"] > 0.5)
    np.testing.assert_array_equal(masks["WT"], p["WT"] > 0.5)
    assert seg.uncertainty is not None and seg.uncertainty.shape == crop_case.shape
    assert seg.uncertainty.min() >= 0 and seg.uncertainty.max() <= 0.5
    assert seg.uncertainty.max() > 0  # flips of a random network disagree somewhere


def test_two_d_model_runs_by_slice_batches(crop_case):
    spec = unet2d_spec("unet2d", "tiny2d", arch={"features": [4, 4, 4, 4, 4, 4]})
    torch.manual_seed(0)
    model = LoadedModel(spec, build_network(spec).eval())
    seen: list[tuple[int, int]] = []
    seg = predict(crop_case, model, device="cpu", on_progress=lambda d, t, m: seen.append((d, t)))
    n_slices = _box(seg)[0].stop - _box(seg)[0].start
    assert seg.info["mode"] == "slices"
    assert seen[-1] == (math.ceil(n_slices / SLICE_BATCH),) * 2
    assert seg.labels.shape == crop_case.shape


class SelfTiling(torch.nn.Module):
    """A network with the predict_volume protocol: three 'tiles' along the first axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(4, 4, 1)
        self.tiles_run = 0

    def forward(self, x):  # pragma: no cover - predict() must not call it
        raise AssertionError("forward called instead of predict_volume")

    def predict_volume(self, x, on_progress=None, cancel=None):
        parts = []
        for i, chunk in enumerate(torch.tensor_split(x, 3, dim=2)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            parts.append(self.conv(chunk))
            self.tiles_run += 1
            if on_progress:
                on_progress(i + 1, 3, "tile")
        return torch.cat(parts, dim=2)


def test_predict_volume_protocol_is_used_with_progress_and_cancel(crop_case):
    torch.manual_seed(0)
    net = SelfTiling().eval()
    model = LoadedModel(ModelSpec(name="self", family="deepmedic"), net)
    seen: list[tuple[int, int]] = []
    seg = predict(crop_case, model, device="cpu", tta=True, on_progress=lambda d, t, m: seen.append((d, t)))
    assert seg.info["mode"] == "predict_volume" and net.tiles_run == 24
    assert seen[-1] == (24, 24) and {t for _, t in seen} == {24}  # exact total from the first report
    token = CancelToken()
    net.tiles_run = 0
    with pytest.raises(Cancelled):
        predict(crop_case, model, device="cpu",
                on_progress=lambda d, t, m: token.cancel() if d == 1 else None, cancel=token)
    assert net.tiles_run == 1


class Placed(SelfTiling):
    """Also takes where its input lies in the whole image, as DeepMedic's predict_volume does."""

    def predict_volume(self, x, on_progress=None, cancel=None, *, origin=None, image_shape=None):
        self.place = (origin, image_shape, tuple(x.shape[2:]))
        return super().predict_volume(x, on_progress, cancel)


def test_predict_volume_learns_where_the_brain_crop_lies(crop_case):
    images = {m: a.copy() for m, a in crop_case.images.items()}
    for a in images.values():
        a[:10] = 0  # no brain in the lowest 10 axial slices (z) ...
        a[:, :, :10] = 0  # ... nor in the first 10 columns (x)
    case = type(crop_case)(crop_case.case_id, images, crop_case.geometry)
    net = Placed().eval()
    seg = predict(case, LoadedModel(ModelSpec(name="placed", family="deepmedic"), net), device="cpu")
    origin, image_shape, size = net.place
    assert image_shape == (32, 32, 24)  # model axes (x, y, z) of the LPS model
    assert origin == (10 - 4, 0, 10 - 4) and size == (32 - 6, 32, 24 - 6)  # brain box minus the margin
    assert seg.info["crop"] == [[6, 24], [0, 32], [6, 32]]


class Broken(torch.nn.Module):
    def __init__(self, kind: str, limit: int = 32) -> None:
        super().__init__()
        self.kind, self.limit = kind, limit
        self.conv = torch.nn.Conv3d(4, 4, 1)

    def forward(self, x):
        if self.kind == "shape":
            return self.conv(x)[..., :-1]
        if self.kind == "oom" and max(x.shape[2:]) > self.limit:
            raise torch.OutOfMemoryError("CPU: out of memory (simulated allocation failure)")
        if self.kind == "error":
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        return self.conv(x)


def test_errors_are_typed_and_clear(crop_case):
    spec = ModelSpec(name="bad", family="unet3d")
    with pytest.raises(InferenceError, match="keep the batch and spatial sizes"):
        predict(crop_case, LoadedModel(spec, Broken("shape")), device="cpu")
    with pytest.raises(InferenceError, match="mat1 and mat2") as info:
        predict(crop_case, LoadedModel(spec, Broken("error")), device="cpu")
    assert not isinstance(info.value, RuntimeError)
    pd = ModelSpec(name="needs-pd", family="unet3d", channels=("t1", "t1ce", "t2", "pd"))
    with pytest.raises(ModelError, match="pd"):
        predict(crop_case, LoadedModel(pd, Broken("ok")), device="cpu")
    with pytest.raises(InferenceError, match="produced 4 channels"):
        predict(crop_case, LoadedModel(ModelSpec(name="k", family="unet3d", classes=(0, 1, 2)), Broken("ok")),
                device="cpu")
    with pytest.raises(InferenceError, match="unknown postprocess option"):
        predict(crop_case, LoadedModel(spec, Broken("ok")), postprocess={"min_size": 3})
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="no CUDA"):
            resolve_device("cuda")


def test_out_of_memory_retries_with_smaller_windows(real_crop_dir, crop_case):
    case = read_case(real_crop_dir)  # 64^3: the whole-volume pass "runs out of memory"
    spec = ModelSpec(name="oom", family="unet3d", divisible_by=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg = predict(case, LoadedModel(spec, Broken("oom")), device="cpu")
    assert seg.info["fallbacks"] and "retrying with (32, 32, 32)" in seg.info["fallbacks"][0]
    assert any("out of memory" in str(w.message) for w in caught)
    assert seg.info["mode"] == "sliding window" and seg.labels.shape == case.shape
    # nothing smaller to try on the CPU: a clear InferenceError, not a RuntimeError
    with pytest.raises(InferenceError, match="out of memory"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict(crop_case, LoadedModel(spec, Broken("oom", limit=16)), device="cpu")


def test_cpu_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    assert choose_precision(cpu, "cascade", 2).dtype == "fp32"  # not validated: fp32
    monkeypatch.setattr(device_mod, "BF16_VALIDATED_FAMILIES", frozenset({"segresnet"}))
    auto = choose_precision(cpu, "segresnet", 3)
    assert auto.dtype == ("bf16" if device_mod.cpu_has_native_bf16() else "fp32")
    assert choose_precision(cpu, "segresnet", 2).dtype == "fp32"  # 2D nets are never auto-bf16
    assert choose_precision(cpu, "segresnet", 3, "fp32").dtype == "fp32"
    forced = choose_precision(cpu, "cascade", 3, "bf16")
    assert forced.dtype == "bf16" and forced.channels_last


def test_bf16_and_fp32_agree_on_the_tiny_network(crop_case):
    model = tiny_model("labels")
    a = predict(crop_case, model, device="cpu", precision="fp32", probabilities=True)
    b = predict(crop_case, model, device="cpu", precision="bf16", probabilities=True)
    assert a.info["dtype"] == "fp32" and b.info["dtype"] == "bf16+channels_last_3d"
    assert np.abs(a.probabilities["WT"] - b.probabilities["WT"]).max() < 0.05
    assert next(model.network.parameters()).is_contiguous()  # memory format restored afterwards


def test_model_trained_at_another_spacing_runs_resampled_and_returns_the_case_grid(crop_case):
    """A 2 mm model on a 1 mm case: run at 2 mm, labels and maps back on the case's own grid."""
    model = tiny_model(output="regions")
    model.spec.spacing = (2.0, 2.0, 2.0)
    calls: list[tuple[int, int]] = []
    seg = predict(crop_case, model, probabilities=True, on_progress=lambda d, t, m: calls.append((d, t)))
    assert seg.info["resampled"]["spacing_zyx"] == [2.0, 2.0, 2.0]
    assert seg.info["resampled"]["shape_zyx"] == [s // 2 for s in crop_case.shape]
    assert seg.labels.shape == crop_case.shape and seg.labels.dtype == np.uint8
    assert set(seg.probabilities) == {"WT", "TC", "ET"}
    assert all(p.shape == crop_case.shape for p in seg.probabilities.values())
    # labels are the hierarchy decoding of the returned (full-resolution) probabilities
    expected = lab.regions_to_labels(*(seg.probabilities[r] > 0.5 for r in ("WT", "TC", "ET")))
    assert np.array_equal(seg.labels, expected)
    assert calls and calls[-1][0] == calls[-1][1]
    # the same model declared at the case's spacing runs on the case's grid directly
    model.spec.spacing = (1.0, 1.0, 1.0)
    assert "resampled" not in predict(crop_case, model).info


def test_a_whole_volume_pass_is_sized_to_the_available_memory(real_crop_dir, monkeypatch):
    """On a machine with little free memory the whole-volume pass becomes sliding windows, and says so."""
    from napari_brats_seg.core import memory

    case = read_case(real_crop_dir)
    model = tiny_model("labels")  # no patch size: a whole-volume pass
    monkeypatch.delenv(memory.ENV_MEMORY_LIMIT, raising=False)
    free = predict(case, model, device="cpu", precision="fp32", crop=False)
    assert free.info["mode"] == "whole volume" and not free.info["fallbacks"]
    monkeypatch.setenv(memory.ENV_MEMORY_LIMIT, "20M")  # 64^3 voxels x 4 filters x 34 B = 36 MB > 80 % of 20 MB
    assert memory.available_bytes() == 20 << 20
    tight = predict(case, model, device="cpu", precision="fp32", crop=False)
    assert tight.info["mode"] == "sliding window" and tight.labels.shape == case.shape
    assert "available; using sliding windows of (32, 32, 32)" in tight.info["fallbacks"][0]
    monkeypatch.setenv(memory.ENV_MEMORY_LIMIT, "1.5G")
    assert memory.available_bytes() <= int(1.5 * (1 << 30))
    monkeypatch.setenv(memory.ENV_MEMORY_LIMIT, "lots")  # unreadable: ignored
    assert memory.available_bytes() is None or memory.available_bytes() > 20 << 20
