"""Fixtures of the napari tests: isolated data directory, small synthetic cases, tiny seeded models.

Run under a real X server: ``xvfb-run -a -s "-screen 0 1600x1200x24" python3 -m pytest tests/napari``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

PLUGIN = "napari-brats-seg"
#: Small shape of the synthetic cases (z, y, x).
SMALL = (48, 64, 64)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own plugin data directory (autosave recovery files)."""
    d = tmp_path / "data-dir"
    monkeypatch.setenv("NAPARI_BRATS_SEG_DATA_DIR", str(d))
    return d


@pytest.fixture
def notifications() -> Callable[[], list[str]]:
    """A function returning the messages of the napari notifications dispatched since the test began."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    return lambda: [str(n.message) for n in notification_manager.records[start:]]


@pytest.fixture(scope="session")
def small_case():
    """A seeded synthetic case of shape (48, 64, 64) with ground truth (in memory)."""
    from napari_brats_seg.core.synth import synth_case

    return synth_case(3, (64, 64, 48), case_id="synthetic-small")


@pytest.fixture(scope="session")
def small_case_nogt(small_case):
    """The small synthetic case without a ground truth (a case as it comes from the scanner)."""
    from dataclasses import replace

    return replace(small_case, case_id="synthetic-nogt", ground_truth=None, gt_scheme=None, gt_path=None)


@pytest.fixture(scope="session")
def tiny_case():
    """A seeded synthetic case of shape (32, 48, 48): a handful of 32^3 windows for the tiny models."""
    from napari_brats_seg.core.synth import synth_case

    return synth_case(4, (48, 48, 32), case_id="synthetic-tiny")


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread during the test (the CI machine's 2 cores are shared), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_case_dir(tmp_path: Path) -> Path:
    """One synthetic case written as a BraTS 2021 folder (4 sequences + seg) in tmp_path."""
    from napari_brats_seg.core.synth import write_cases

    return write_cases(tmp_path / "cases", 1, seed=5, layout="brats2021", shape=(64, 64, 48))[0]


@pytest.fixture
def load_viewer(make_napari_viewer, qtbot):
    """``load_viewer(case_dir, timeout_ms=60_000)``: a new viewer, ``case_dir`` loaded through the Load
    widget (its task done, or failed), and that widget: ``(viewer, widget)``."""

    def load(case_dir: Path, timeout_ms: int = 60_000):
        viewer = make_napari_viewer()
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
        widget.inspect(str(case_dir))
        task = widget.load()
        with qtbot.waitSignal(task.done, timeout=timeout_ms):
            pass
        return viewer, widget

    return load


@pytest.fixture
def segment_viewer(make_napari_viewer, tiny_case):
    """A viewer with :func:`tiny_case` open and the Segment widget docked: ``(viewer, widget)``."""
    from napari_brats_seg._napari.layers import case_layer_data
    from napari_brats_seg._napari.widgets._qt import add_layer_data

    viewer = make_napari_viewer()
    add_layer_data(viewer, case_layer_data(tiny_case))
    _, widget = viewer.window.add_plugin_dock_widget("napari-brats-seg", "Segment")
    return viewer, widget


@pytest.fixture
def tiny_model():
    """Factory of seeded tiny models: see :func:`make_tiny_model`."""
    return make_tiny_model


def make_tiny_model(*, channels: tuple[str, ...] = ("t1", "t1ce", "t2", "flair"), in_channels: int | None = None,
               delay_s: float = 0.0, seed: int = 0):
    """A seeded tiny 3D U-Net (labels output, 32^3 windows), optionally slowed down per window.

    ``in_channels`` different from ``len(channels)`` makes a model that does not fit any case.
    """
    import torch

    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.spec import LoadedModel
    from napari_brats_seg.core.models.unet3d import unet3d_spec

    spec = unet3d_spec("tiny", output="labels", filters=[4, 4, 8, 8, 8], channels=channels,
                       patch_size=(32, 32, 32), deep_supervision=False)
    if in_channels is not None:
        spec.arch["in_channels"] = in_channels
    torch.manual_seed(seed)
    net = build_network(spec) if in_channels is None else torch.nn.Identity()
    if delay_s:
        net = _Slow(net, delay_s)
    return LoadedModel(spec, net.eval(), "memory")


def _slow_class():
    import torch

    class Slow(torch.nn.Module):
        """A network that takes ``delay_s`` per forward call (to test responsiveness and cancel)."""

        def __init__(self, inner: torch.nn.Module, delay_s: float) -> None:
            super().__init__()
            self.inner, self.delay_s = inner, delay_s

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(self.delay_s)
            return self.inner(x)

    return Slow


def _Slow(inner, delay_s):
    return _slow_class()(inner, delay_s)
