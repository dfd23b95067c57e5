"""DeepMedic's runtimes: its fast path's three graphs (:mod:`.graphs`) on OpenVINO, or everything on torch.

DeepMedic tiles itself (:meth:`~.network.DeepMedic.predict_volume`), so the generic runtimes layer
(:mod:`napari_brats_seg.core.runtimes`), which runs a whole network per window, keeps it on torch.
Here the three steps of :func:`~.fast.run_tiles` (normal pathway per slab, subsampled pathways per
batch of tiles, FC layers per unit) run as OpenVINO graphs, exported once per weights, OpenVINO
version and CPU kind into the runtimes' export cache (:mod:`napari_brats_seg.core.runtimes.cache`),
with dynamic batch and spatial axes so that one compilation serves every slab and batch. OpenVINO
fuses each convolution with the batch norm, PReLU and residual add around it. The tile plan, the
cutting of the subsampled inputs, their repetition and the writing of the labels stay in numpy/torch,
so progress and cancellation work as on torch.

- :func:`choose_runtime`: ``"auto"`` -> the runtime of :data:`AUTO_TABLE` for this CPU kind when
  installed (else torch, with one logged notice); a named runtime that is not installed is an error.
- :func:`parts_for`: the object :func:`~.fast.run_tiles` calls for the three steps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import InferenceError

if TYPE_CHECKING:  # pragma: no cover
    from .network import DeepMedic

#: CPU kind -> the runtime ``"auto"`` runs DeepMedic on (measured: bench/bench_deepmedic.py, README
#: "DeepMedic / Speed"); kinds not listed run on torch. Empty: on the idle development machine, AVX2
#: paths forced, OpenVINO fp32 was slower than torch fp32 (same labels), so auto keeps torch.
AUTO_TABLE: dict[str, str] = {}
#: The runtimes DeepMedic runs on.
RUNTIMES: tuple[str, ...] = ("torch", "openvino")
#: Bumped when the graphs or their export change (older cache entries are then not reused).
GRAPHS_VERSION = 1
_FILES = ("normal", "subsampled", "fc")


def choose_runtime(runtime: str, device: torch.device | str = "cpu", available: Sequence[str] | None = None) -> str:
    """The runtime DeepMedic runs on: ``"torch"`` or ``"openvino"``.

    Parameters
    ----------
    runtime
        ``"auto"``, ``"torch"``, ``"openvino"`` (``"onnxruntime"``: torch, with a notice).
    device
        Where torch runs; OpenVINO runs on the CPU only (auto keeps a GPU on torch).
    available
        The installed runtimes (default :func:`~napari_brats_seg.core.runtimes.cpu.available_runtimes`).

    Raises
    ------
    napari_brats_seg.core.runtimes.RuntimeNotInstalled
        A runtime named that is not installed.
    InferenceError
        An unknown name, or OpenVINO asked for with a GPU device.
    """
    from ...runtimes.choice import INSTALL_HINT, notice_once, require
    from ...runtimes.cpu import available_runtimes, cpu_kind

    key = require(runtime, available)
    dev = torch.device(device)
    if key == "auto":
        if dev.type != "cpu":
            return "torch"
        kind = cpu_kind()
        pick = AUTO_TABLE.get(kind, "torch")
        if pick != "torch" and pick not in (available_runtimes() if available is None else available):
            notice_once(f"dm-missing:{pick}", "runtime %s (fastest measured for DeepMedic on this %s CPU) is not "
                    "installed; running DeepMedic on torch (%s)", pick, kind, INSTALL_HINT)
            return "torch"
        return pick
    if key == "onnxruntime":
        notice_once("dm-onnxruntime", "DeepMedic runs on torch or openvino, not onnxruntime; running it on torch")
        return "torch"
    if key == "openvino" and dev.type != "cpu":
        raise InferenceError(f"runtime 'openvino' runs on the CPU; use device cpu (or runtime torch on {dev})")
    return key


def _example_inputs(net: DeepMedic) -> dict[str, tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(0)
    c = net.normal.blocks[0].weight.shape[1]
    c_n = net.normal.blocks[-1].weight.shape[0]
    c_fc = net.fc.blocks[0].weight.shape[0]
    c_sub = sum(p.blocks[-1].weight.shape[0] for p in net.subsampled)
    k = net.fc.blocks[0].weight.shape[-1]
    m = 5
    return {
        "normal": (torch.randn(1, c, 2 + net.rec_field, 3 + net.rec_field, 4 + net.rec_field, generator=gen),),
        "subsampled": tuple(torch.randn((2, c) + (net.subsampled_input_size(f),) * 3, generator=gen)
                            for f in net.factors),
        "fc": (torch.randn(2, c_n, m + k - 1, m + k - 1, m + k - 1, generator=gen),
               torch.randn(2, c_fc, m, m, m, generator=gen), torch.randn(2, c_sub, m, m, m, generator=gen)),
    }


def export_graphs(net: DeepMedic, folder: Path) -> None:
    """Write the three graphs of :mod:`.graphs` as OpenVINO IR (``normal.xml`` ...) into ``folder``."""
    from ...runtimes.export import convert_openvino, trace_onnx
    from .graphs import FcGraph, NormalGraph, SubsampledGraph

    examples = _example_inputs(net)
    modules = {"normal": NormalGraph(net), "subsampled": SubsampledGraph(net), "fc": FcGraph(net)}
    n_sub = len(net.factors)
    names = {"normal": (["x"], ["y"]), "subsampled": ([f"lr{j}" for j in range(n_sub)],
                                                      ["y_sub"] + [f"out{j}" for j in range(n_sub)]),
             "fc": (["x_n", "y_sub", "u_c"], ["logits"])}
    axes = {0: "batch", 2: "a", 3: "b", 4: "c"}
    with tempfile.TemporaryDirectory() as tmp:
        for key, mod in modules.items():
            inputs, outputs = names[key]
            onnx_path = Path(tmp) / f"{key}.onnx"
            trace_onnx(mod.eval(), examples[key], onnx_path, inputs, outputs, dict.fromkeys(inputs + outputs, axes))
            convert_openvino(onnx_path, folder / f"{key}.xml")


class OpenVinoParts:
    """The three steps of :func:`~.fast.run_tiles` on OpenVINO's CPU plugin (see the module doc).

    Parameters
    ----------
    net
        The network (its subsampled pathways and a valid first FC layer are required).
    folder
        The exported graphs (:func:`export_graphs`).
    precision
        ``"f32"`` or ``"bf16"`` (OpenVINO's inference precision hint).
    threads
        Inference threads (default: torch's).
    """

    name = "openvino"

    def __init__(self, net: DeepMedic, folder: Path, precision: str = "f32", threads: int | None = None) -> None:
        import openvino as ov

        from ...runtimes.backends import openvino_config
        from ...runtimes.choice import COMPILED_DIR

        self.net = net
        core = ov.Core()
        # OpenVINO keeps the compiled graphs beside the export: later processes load instead of compiling
        config = openvino_config(precision, threads, Path(folder) / COMPILED_DIR)
        self.requests = {}
        for key in _FILES:
            compiled = core.compile_model(core.read_model(str(folder / f"{key}.xml")), "CPU", config)
            self.requests[key] = compiled.create_infer_request()
        self.precision = precision

    @property
    def label(self) -> str:
        """``"openvino <version> fp32|bf16"``."""
        from ...runtimes.cpu import runtime_version

        return f"openvino {runtime_version('openvino')} {'bf16' if self.precision == 'bf16' else 'fp32'}"

    def _run(self, key: str, arrays: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        req = self.requests[key]
        req.infer([np.ascontiguousarray(a.detach().to("cpu", torch.float32).numpy()) for a in arrays])
        return [torch.from_numpy(np.array(req.get_output_tensor(i).data, dtype=np.float32, copy=True))
                for i in range(len(req.model_outputs))]

    def normal(self, inp: torch.Tensor) -> torch.Tensor:
        """The normal pathway's maps of one slab ``(1, C, ...)`` -> ``(C_n, ...)``."""
        return self._run("normal", [inp])[0][0]

    def subsampled(self, lrs: Sequence[torch.Tensor]) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The first FC layer's part on the subsampled maps of a batch of tiles, and those maps."""
        y_sub, *outs = self._run("subsampled", lrs)
        return y_sub, outs

    def fc(self, x_n: torch.Tensor, y_sub: torch.Tensor | None, u_c: torch.Tensor | None, c0: int) -> torch.Tensor:
        """Logits of units (see :class:`~.graphs.FcGraph`)."""
        assert y_sub is not None and u_c is not None
        return self._run("fc", [x_n, y_sub, u_c])[0]


def _cache_fields(net: DeepMedic) -> dict[str, Any]:
    from ...runtimes.cpu import cpu_kind, runtime_version
    from ..checkpoint import weights_hash

    return {"runtime": "openvino-deepmedic-graphs", "graphs": GRAPHS_VERSION,
            "weights": weights_hash(net.state_dict()), "openvino": runtime_version("openvino"),
            "torch": runtime_version("torch"), "cpu": cpu_kind()}


def supports_graphs(net: DeepMedic) -> bool:
    """Whether ``net`` has the structure :mod:`.graphs` exports: subsampled pathways, a valid first FC layer."""
    return bool(net.factors) and net.rec_field_net != net.rec_field


_parts_cache: dict[tuple[Any, ...], OpenVinoParts] = {}


def openvino_parts(net: DeepMedic, precision: str = "f32", cache_dir: Path | None = None) -> OpenVinoParts:
    """:class:`OpenVinoParts` of ``net``, its export taken from (or written to) the export cache.

    Kept in memory per network and precision (the next case of a cohort compiles nothing). An entry that
    OpenVINO cannot load is exported again once.

    Raises
    ------
    InferenceError
        The network has no exportable structure, or the export fails twice.
    """
    from ...runtimes import cache
    from ...runtimes.choice import load_or_rebuild

    if not supports_graphs(net):
        raise InferenceError("this DeepMedic (no subsampled pathway, or a mirror-padded first FC layer) runs "
                             "on torch only")
    root = Path(cache_dir) if cache_dir is not None else None
    fields = _cache_fields(net)
    key = (id(net), fields["weights"], precision, str(root or cache.cache_root()))
    if key in _parts_cache:
        return _parts_cache[key]

    def build(folder: Path) -> None:
        export_graphs(net, folder)

    parts = load_or_rebuild(
        lambda fresh: OpenVinoParts(net, (cache.rebuild if fresh else cache.entry)(fields, build, root), precision),
        "DeepMedic on openvino", "DeepMedic cannot run on openvino")
    _parts_cache.clear()  # one network's graphs at a time
    _parts_cache[key] = parts
    return parts


def parts_for(net: DeepMedic, runtime: str, *, bf16: bool, device: torch.device) -> tuple[Any, str]:
    """What :func:`~.fast.run_tiles` computes with for ``runtime`` and its label (``"openvino ... fp32"``).

    ``runtime`` is ``"torch"`` or ``"openvino"`` (:func:`choose_runtime`'s answer): ``None`` (the torch
    path) for torch and for networks the graphs cannot express (logged once).
    """
    if runtime != "openvino":
        return None, ""
    if not supports_graphs(net):
        from ...runtimes.choice import notice_once

        notice_once("dm-graphs", "this DeepMedic architecture runs on torch only, not openvino")
        return None, ""
    parts = openvino_parts(net, "bf16" if bf16 else "f32")
    return parts, parts.label


__all__ = ["AUTO_TABLE", "GRAPHS_VERSION", "RUNTIMES", "OpenVinoParts", "choose_runtime", "export_graphs",
           "openvino_parts", "parts_for", "supports_graphs"]
