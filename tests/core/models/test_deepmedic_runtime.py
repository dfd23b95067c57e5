"""DeepMedic's runtimes: its three graphs equal the torch steps; OpenVINO gives torch's labels; fallbacks."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_deepmedic import tiny_deepmedic as _tiny
from _tiny_deepmedic import volume as _volume

from napari_brats_seg.core import io
from napari_brats_seg.core.errors import Cancelled
from napari_brats_seg.core.inference import predict
from napari_brats_seg.core.models import deepmedic as dm
from napari_brats_seg.core.models.deepmedic import fast, graphs, runtime
from napari_brats_seg.core.progress import CancelToken
from napari_brats_seg.core.runtimes import RuntimeNotInstalled

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("onnx") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO (the [fast] extra) is not installed")


@pytest.fixture
def all_runtimes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every installed runtime allowed (the suite restricts to torch), exports in a fresh cache."""
    monkeypatch.delenv("BRATS_SEG_RUNTIMES", raising=False)
    monkeypatch.setenv("BRATS_SEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"




def test_graphs_compute_what_the_torch_steps_compute() -> None:
    net = _tiny(3)
    parts = fast.TorchParts(net, torch.device("cpu"))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 21, 19, 23, generator=gen)
    lrs = [torch.randn((3, 4) + (net.subsampled_input_size(f),) * 3, generator=gen) for f in net.factors]
    k, m = net.fc.blocks[0].weight.shape[-1], 9
    c_sub = sum(p.blocks[-1].weight.shape[0] for p in net.subsampled)
    x_n = torch.randn(2, 7, m + k - 1, m + k - 1, m + k - 1, generator=gen)
    y_sub, u_c = torch.randn(2, 8, m, m, m, generator=gen), torch.randn(2, c_sub, m, m, m, generator=gen)
    with torch.no_grad():
        want_n, got_n = parts.normal(x), graphs.NormalGraph(net)(x)[0]
        (want_y, want_outs), (got_y, *got_outs) = parts.subsampled(lrs), graphs.SubsampledGraph(net)(*lrs)
        want_fc, got_fc = parts.fc(x_n, y_sub, u_c, (k - 1) // 2), graphs.FcGraph(net)(x_n, y_sub, u_c)
    for want, got in [(want_n, got_n), (want_y, got_y), *zip(want_outs, got_outs), (want_fc, got_fc)]:
        assert want is not None and got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())


@needs_openvino
def test_openvino_gives_the_torch_labels_on_a_tiny_network(all_runtimes: Path) -> None:
    net = _tiny(5)
    x = torch.from_numpy(_volume())[None]
    brain = torch.from_numpy(np.any(x[0].numpy() != -1.5, axis=0))
    want = net.predict_volume(x)[0]
    assert net.use_runtime("openvino").startswith("openvino ") and net.runtime == "openvino"
    assert any(all_runtimes.rglob("fc.xml"))  # exported into the export cache
    seen: list[tuple[int, int]] = []
    got = net.predict_volume(x, on_progress=lambda d, t, m="": seen.append((d, t)))[0]
    assert (got - want).abs()[:, brain].max().item() < 1e-4 * max(1.0, want.abs().max().item())
    assert torch.equal(got.argmax(0)[brain], want.argmax(0)[brain])
    assert seen[-1][0] == seen[-1][1] == seen[0][1]  # an exact total, reached
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        net.predict_volume(x, cancel=token)
    assert net.use_runtime("torch").startswith("torch ") and net.runtime == "torch"
    assert torch.equal(net.predict_volume(x)[0], want)  # back on today's path, bit for bit


@needs_openvino
def test_openvino_gives_the_torch_labels_on_a_real_crop(all_runtimes: Path, real_crop_dir: Path,
                                                         deepmedic_dir: Path) -> None:
    model = dm.load_captk_deepmedic(deepmedic_dir)
    case = io.read_case(real_crop_dir)
    on_torch = predict(case, model, precision="fp32", runtime="torch")
    on_openvino = predict(case, model, precision="fp32", runtime="openvino")
    assert on_torch.info["runtime"].startswith("torch ")
    assert on_openvino.info["runtime"].startswith("openvino ") and on_openvino.info["runtime"].endswith(" fp32")
    assert (on_torch.labels > 0).sum() > 1000  # the crop holds tumour, so the comparison means something
    assert np.array_equal(on_openvino.labels, on_torch.labels)


def test_without_openvino_auto_runs_torch_with_one_notice(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    # the suite's $BRATS_SEG_RUNTIMES=torch: OpenVINO counts as absent
    monkeypatch.setattr("napari_brats_seg.core.runtimes.choice._notified", set())
    monkeypatch.setattr(runtime, "AUTO_TABLE", {"avx2": "openvino"})  # a table that picks it
    monkeypatch.setattr("napari_brats_seg.core.runtimes.cpu.cpu_kind", lambda: "avx2")
    net = _tiny(6)
    x = torch.from_numpy(_volume((30, 31, 29)))[None]
    want = net.predict_volume(x)
    with caplog.at_level(logging.WARNING, logger="napari_brats_seg.runtimes"):
        assert net.use_runtime("auto").startswith("torch ")
        assert net.use_runtime("auto").startswith("torch ")
    notices = [r for r in caplog.records if "not installed" in r.getMessage()]
    assert len(notices) == 1 and "openvino" in notices[0].getMessage()
    assert net.runtime == "torch" and torch.equal(net.predict_volume(x), want)
    with pytest.raises(RuntimeNotInstalled, match="openvino"):
        net.use_runtime("openvino")


def test_auto_keeps_torch_on_a_gpu_and_where_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    have = ("torch", "openvino")
    assert runtime.choose_runtime("auto", "cuda", available=have) == "torch"
    monkeypatch.setattr("napari_brats_seg.core.runtimes.cpu.cpu_kind", lambda: "avx2")
    assert runtime.choose_runtime("auto", "cpu", available=have) == runtime.AUTO_TABLE.get("avx2", "torch")
    monkeypatch.setattr(runtime, "AUTO_TABLE", {"avx2": "openvino"})
    assert runtime.choose_runtime("auto", "cpu", available=have) == "openvino"
    monkeypatch.setattr("napari_brats_seg.core.runtimes.cpu.cpu_kind", lambda: "avx512_bf16")
    assert runtime.choose_runtime("auto", "cpu", available=have) == runtime.AUTO_TABLE.get("avx512_bf16", "torch")
    assert runtime.choose_runtime("torch", "cpu", available=have) == "torch"
    assert not runtime.supports_graphs(_tiny(0, fc_padding="mirror"))
