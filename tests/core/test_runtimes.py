"""core.runtimes: ONNX Runtime and OpenVINO agree with torch fp32, exports are cached, absence is clear.

Networks are tiny seeded DynUNets from the registry; the real case is a crop around the tumour of a
BraTS 2018 case, at a size no multiple of the network's stride (the backends pad and crop). A runtime
that is not installed skips its tests with the reason (``napari-brats-seg[fast]`` installs both).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _crop import tumour_window
from _tiny_unet import tiny_unet3d

from napari_brats_seg.core import inference
from napari_brats_seg.core.errors import Cancelled
from napari_brats_seg.core.inference import predict
from napari_brats_seg.core.io import read_case
from napari_brats_seg.core.models.cascade import build_cascade, cascade_spec
from napari_brats_seg.core.models.spec import LoadedModel
from napari_brats_seg.core.models.unet3d import unet3d_spec
from napari_brats_seg.core.progress import CancelToken
from napari_brats_seg.core.runtimes import RuntimeNotInstalled, available_runtimes, choice, cpu, export
from napari_brats_seg.core.runtimes.cache import entry_key

EXPORTED = ("onnxruntime", "openvino")
CROP = (34, 30, 26)  # not a multiple of the tiny network's stride (4)


@pytest.fixture(autouse=True)
def _all_runtimes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every installed runtime visible (tests/conftest.py hides them), a fresh export cache, nothing loaded."""
    monkeypatch.delenv(cpu.ENV_RUNTIMES, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("BRATS_SEG_CACHE_DIR", str(cache))
    monkeypatch.setattr(choice, "_notified", set())
    choice.forget_loaded()
    yield cache
    choice.forget_loaded()


def _need(runtime: str) -> None:
    if runtime not in available_runtimes():
        pytest.skip(f"{runtime} is not installed (pip install 'napari-brats-seg[fast]')")


def tiny_model(patch: tuple[int, int, int] | None = None, seed: int = 0) -> LoadedModel:
    """A seeded 3-level DynUNet (4, 4, 8 filters, instance norm), labels output."""
    return tiny_unet3d("labels", patch, seed, filters=(4, 4, 8))


@pytest.fixture(scope="module")
def crop_dir(real_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cid = real_case_dir.name
    sl, shift = tumour_window(real_case_dir / f"{cid}_seg.nii.gz", CROP)
    out = tmp_path_factory.mktemp("rt_crop") / "Rt_1"
    out.mkdir()
    for suffix in ("t1", "t1ce", "t2", "flair"):
        img = nib.load(str(real_case_dir / f"{cid}_{suffix}.nii.gz"))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[sl], img.affine @ shift), str(out / f"Rt_1_{suffix}.nii.gz"))
    return out


@pytest.mark.parametrize("runtime", EXPORTED)
def test_tiny_network_gives_torch_fp32_logits_and_labels(runtime: str, _all_runtimes: Path) -> None:
    _need(runtime)
    model = tiny_model()
    backend = choice.select(runtime, model.spec, model.network)
    assert backend.name == runtime and runtime in backend.label
    gen = torch.Generator().manual_seed(1)
    for shape in ((32, 32, 32), (21, 30, 17)):  # one export serves any shape, padded to the stride
        x = torch.randn((1, 4) + shape, generator=gen)
        with torch.inference_mode():
            ref = model.network(x)
        out = backend(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert float((out - ref).abs().max()) < 1e-3 * max(1.0, float(ref.abs().max()))
        assert torch.equal(out.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("runtime", EXPORTED)
def test_real_crop_labels_match_torch_fp32_and_the_runtime_is_recorded(runtime: str, crop_dir: Path) -> None:
    _need(runtime)
    case, model = read_case(crop_dir), tiny_model()
    ref = predict(case, model, device="cpu", precision="fp32", runtime="torch")
    seg = predict(case, model, device="cpu", precision="fp32", runtime=runtime)
    assert ref.info["runtime"].startswith("torch ") and seg.info["runtime"].startswith(f"{runtime} ")
    assert seg.info["dtype"] == "fp32"
    assert len(np.unique(ref.labels)) > 1  # labels that can disagree
    assert np.array_equal(seg.labels, ref.labels)


@pytest.mark.parametrize("runtime", EXPORTED)
def test_export_is_cached_and_a_corrupt_entry_is_rebuilt(runtime: str, _all_runtimes: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _need(runtime)
    calls = []
    real_export = export.export_onnx

    def counting(*args, **kwargs):
        calls.append(1)
        return real_export(*args, **kwargs)

    monkeypatch.setattr(export, "export_onnx", counting)
    model = tiny_model()
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.inference_mode():
        ref = model.network(x)
    choice.select(runtime, model.spec, model.network)
    assert len(calls) == 1
    choice.forget_loaded()  # a new process: only the disk cache is left
    choice.select(runtime, model.spec, model.network)
    assert len(calls) == 1, "the second select exported again"
    entries = [p for p in _all_runtimes.joinpath("runtimes").iterdir() if not p.name.startswith(".")]
    assert all((p / "meta.json").is_file() for p in entries)
    name = export.ONNX_FILE if runtime == "onnxruntime" else export.OPENVINO_FILE
    files = [p / name for p in entries if (p / name).is_file()]
    assert files
    for f in files:
        f.write_bytes(b"not a model")
    if runtime == "openvino":  # its ONNX source too: both are rebuilt
        for p in entries:
            if (p / export.ONNX_FILE).is_file():
                (p / export.ONNX_FILE).write_bytes(b"\x00garbage")
    choice.forget_loaded()
    backend = choice.select(runtime, model.spec, model.network)
    assert len(calls) == 2
    assert torch.allclose(backend(x), ref, atol=1e-3)


def test_cache_key_names_weights_runtime_version_cpu_and_shape() -> None:
    spec = tiny_model().spec
    base = choice._fields("openvino", spec, "abc", True, None, "fp32")
    assert {"weights", "runtime", "version", "cpu", "shape"} <= set(base)
    keys = {entry_key(base), entry_key({**base, "weights": "abd"}), entry_key({**base, "cpu": base["cpu"] + "-other"}),
            entry_key({**base, "version": "0"}), entry_key(choice._fields("openvino", spec, "abc", False,
                                                                         (8, 8, 8), "fp32"))}
    assert len(keys) == 5


def test_forcing_an_absent_runtime_is_a_one_line_error(crop_dir: Path) -> None:
    model = tiny_model()
    with pytest.raises(RuntimeNotInstalled) as err:
        choice.select("openvino", model.spec, model.network, available=("torch",))
    msg = str(err.value)
    assert "\n" not in msg and "openvino" in msg and 'pip install "napari-brats-seg[fast]"' in msg
    with pytest.raises(Exception, match="unknown runtime"):
        choice.choose("tensorrt", model.spec)


def test_cli_runtime_absent_is_a_clear_error(crop_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from napari_brats_seg.cli import main

    env = dict(os.environ, BRATS_SEG_RUNTIMES="torch")
    out = tmp_path / "out.nii.gz"
    res = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "segment", str(crop_dir), "-o", str(out),
                          "--runtime", "onnxruntime"], capture_output=True, text=True, env=env, timeout=120)
    monkeypatch.setenv(cpu.ENV_RUNTIMES, "torch")
    rc = main(["evaluate", "unet3d-default", str(crop_dir), "--runtime", "openvino"])
    evaluate_err = capsys.readouterr().err
    for code, stderr, command, runtime in ((res.returncode, res.stderr, "segment", "onnxruntime"),
                                           (rc, evaluate_err, "evaluate", "openvino")):
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in stderr
        assert f"brats-seg {command}: error: runtime '{runtime}' is not installed" in lines[0]
        assert 'pip install "napari-brats-seg[fast]"' in lines[0]
    assert not out.exists()


def test_auto_falls_back_to_torch_with_one_notice(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    spec = tiny_model().spec
    monkeypatch.setitem(choice.AUTO_TABLE, cpu.cpu_kind(), {"unet3d": "openvino"})
    with caplog.at_level(logging.WARNING, logger="napari_brats_seg.runtimes"):
        assert choice.choose("auto", spec, available=("torch",)) == "torch"
        assert choice.choose("auto", spec, available=("torch",)) == "torch"
    notes = [r.getMessage() for r in caplog.records if r.name == "napari_brats_seg.runtimes"]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "openvino" in notes[0] and "not installed" in notes[0] and "napari-brats-seg[fast]" in notes[0]
    if "openvino" in available_runtimes():
        assert choice.choose("auto", spec) == "openvino"
    # the 2D cascade is looked up like the 3D families
    cascade = tiny_cascade().spec
    monkeypatch.setitem(choice.AUTO_TABLE, cpu.cpu_kind(), {"cascade": "onnxruntime"})
    assert choice.choose("auto", cascade, available=("torch", "onnxruntime")) == "onnxruntime"
    monkeypatch.setitem(choice.AUTO_TABLE, cpu.cpu_kind(), {})
    assert choice.choose("auto", cascade, available=("torch", "onnxruntime")) == "torch"  # not measured here
    # Families not measured, self-tiling networks and GPUs stay on torch whatever the table says.
    other = unet3d_spec("x")
    other.family = "bundle"
    assert choice.choose("auto", other, available=("torch", "openvino")) == "torch"


def test_cpu_kind_honours_the_onednn_isa_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu.flag_kind({"avx2", "fma"}) == "avx2"
    assert cpu.flag_kind({"avx2", "fma", "avx512f"}) == "avx512"
    assert cpu.flag_kind({"avx2", "fma", "avx512f", "avx512_bf16"}) == "avx512_bf16"
    assert cpu.flag_kind({"avx512_bf16", "amx_bf16"}) == "amx"
    assert cpu.flag_kind(set()) == "other"
    native = cpu.cpu_kind()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.cpu_kind() == ("other" if native == "other" else "avx2")
    summary = cpu.cpu_summary()
    assert summary["isa_limit"] == "AVX2" and summary["kind"] == cpu.cpu_kind()


def test_runtimes_override_hides_installed_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu.ENV_RUNTIMES, "torch")
    assert available_runtimes() == ("torch",)
    monkeypatch.setenv(cpu.ENV_RUNTIMES, "torch,openvino")
    assert set(available_runtimes()) <= {"torch", "openvino"} and "onnxruntime" not in available_runtimes()


@pytest.mark.parametrize("runtime", EXPORTED)
def test_cancel_between_windows_under_an_exported_runtime(runtime: str, crop_dir: Path) -> None:
    _need(runtime)
    case, model = read_case(crop_dir), tiny_model(patch=(16, 16, 16))
    token, seen = CancelToken(), []

    def progress(done: int, total: int, message: str) -> None:
        seen.append((done, total))
        if done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        predict(case, model, device="cpu", runtime=runtime, on_progress=progress, cancel=token)
    assert seen[-1][0] == 2 and seen[-1][0] < seen[-1][1]


def test_checking_a_runtime_imports_nothing_heavy() -> None:
    """The Segment widget checks the runtime in the GUI thread: the check must not import ONNX Runtime or
    OpenVINO (their import stalled the event loop for a third of a second)."""
    import importlib.util
    import os

    named = [r for r in ("openvino", "onnxruntime") if importlib.util.find_spec(r) is not None]
    code = ("import sys\nfrom napari_brats_seg.core.runtimes import require\n"
            f"for r in {['auto', 'torch', *named]!r}: require(r)\n"
            "print('openvino' in sys.modules, 'onnxruntime' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "BRATS_SEG_RUNTIMES"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_without_the_exporter_the_runtimes_count_as_absent(monkeypatch) -> None:
    """ONNX Runtime and OpenVINO start from torch.onnx.export's file, which needs the onnx package: without
    it they are not offered (auto runs torch), and asking for one by name says how to install them."""
    from napari_brats_seg.core.runtimes import choice, cpu

    monkeypatch.delenv("BRATS_SEG_RUNTIMES", raising=False)
    monkeypatch.setattr(cpu, "EXPORTER", "no_such_exporter_package")
    cpu._importable.cache_clear()
    try:
        assert cpu.installed_runtimes() == ("torch",) and cpu.available_runtimes() == ("torch",)
        with pytest.raises(choice.RuntimeNotInstalled, match=r"napari-brats-seg\[fast\]"):
            choice.require("openvino")
    finally:
        cpu._importable.cache_clear()


def tiny_cascade() -> LoadedModel:
    """A seeded Havaei input cascade with 4 local and 4 global maps (the shipped one has 32 and 64)."""
    spec = cascade_spec("tiny-cascade", kind="input", local_maps=4, global_maps=4, n_classes=4)
    torch.manual_seed(0)
    return LoadedModel(spec, build_cascade(spec).eval())


@pytest.mark.parametrize("runtime", EXPORTED)
def test_the_cascade_runs_on_one_export_with_the_labels_of_torch(runtime: str, crop_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The 2D cascade is exported once with dynamic axes: any slice size and batch, the labels of torch fp32
    on a real crop, and under OpenVINO one compiled shape for the case (its last slice batch filled)."""
    _need(runtime)
    calls = []
    real_export = export.export_onnx
    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: (calls.append(1), real_export(*a, **k))[1])
    model = tiny_cascade()
    backend = choice.select(runtime, model.spec, model.network)
    gen = torch.Generator().manual_seed(2)
    for shape in ((3, 4, 21, 30), (8, 4, 32, 32)):
        x = torch.randn(shape, generator=gen)
        with torch.inference_mode():
            ref = model.network(x)
        out = backend(x)
        assert out.shape == ref.shape and float((out - ref).abs().max()) < 1e-3 * max(1.0, float(ref.abs().max()))
    case = read_case(crop_dir)
    ref_seg = predict(case, model, device="cpu", precision="fp32", runtime="torch")
    seg = predict(case, model, device="cpu", precision="fp32", runtime=runtime)
    assert seg.info["runtime"].startswith(f"{runtime} ") and seg.info["mode"] == "slices"
    assert len(np.unique(ref_seg.labels)) > 1
    assert np.array_equal(seg.labels, ref_seg.labels)
    assert len(calls) == 1  # one export for every shape
    if runtime == "openvino":
        n = seg.info["windows"]  # slice batches
        assert n > 1 and len(backend._compiled) == 3  # the two shapes above, one for the whole case


def test_openvino_keeps_its_compiled_shapes_in_the_cache_entry(crop_dir: Path, _all_runtimes: Path) -> None:
    """A later process loads OpenVINO's compiled shape from the export's cache entry: same labels."""
    _need("openvino")
    case, model = read_case(crop_dir), tiny_model(patch=(16, 16, 16))
    first = predict(case, model, device="cpu", precision="fp32", runtime="openvino")
    blobs = [p for p in _all_runtimes.joinpath("runtimes").glob(f"*/{choice.COMPILED_DIR}/*") if p.is_file()]
    assert blobs, "no compiled model was cached"
    choice.forget_loaded()  # as a new process would
    again = predict(case, model, device="cpu", precision="fp32", runtime="openvino")
    assert np.array_equal(again.labels, first.labels)


@pytest.mark.parametrize("runtime", EXPORTED)
def test_batched_windows_under_an_exported_runtime_give_torch_fp32_labels(runtime: str, crop_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Sliding windows batched per pass (the last batch filled for OpenVINO): torch fp32's labels."""
    _need(runtime)
    case, model = read_case(crop_dir), tiny_model(patch=(16, 16, 16))
    ref = predict(case, model, device="cpu", precision="fp32", runtime="torch")
    monkeypatch.setattr(inference, "WINDOW_BATCH", 3)
    seg = predict(case, model, device="cpu", precision="fp32", runtime=runtime)
    assert seg.info["mode"] == "sliding window" and seg.info["windows"] == ref.info["windows"] > 3
    assert np.array_equal(seg.labels, ref.labels)
