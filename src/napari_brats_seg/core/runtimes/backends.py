"""The runtimes a forward pass can run on, each a callable ``(N, C, *spatial)`` float32 -> logits.

- :class:`TorchBackend`: the network itself (device, bf16 autocast and channels-last as
  :class:`~..device.Precision` says): the path inference always had.
- :class:`OnnxRuntimeBackend`: ONNX Runtime's CPU execution provider on the exported network.
- :class:`OpenVinoBackend`: OpenVINO's CPU plugin on the network converted to IR, compiled once per
  input shape (static shapes run faster than a dynamic model), in f32 unless bf16 is asked for; the
  compiled shapes are kept in OpenVINO's model cache inside the export's cache entry, so a later
  process (the next CLI call) loads them instead of compiling again.

The exported backends pad the input to the network's multiple and crop the logits back in torch
(:func:`~.export.split_padding`), and return CPU float32 tensors.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..device import Precision, run_context
from .cpu import runtime_version

#: Input shapes OpenVINO keeps compiled at once (windows, their TTA flips, a shrunk retry).
OPENVINO_SHAPES = 4


class TorchBackend:
    """Runs the torch network as inference always did."""

    name = "torch"

    def __init__(self, network: Any, device: torch.device, precision: Precision) -> None:
        self.network, self.device, self.precision = network, device, precision

    @property
    def label(self) -> str:
        """``"torch <version> <precision>"``."""
        return f"torch {torch.__version__.split('+')[0]} {self.precision.label}"

    def __call__(self, x: torch.Tensor) -> Any:
        xd = x.to(self.device)
        if self.precision.channels_last and xd.ndim == 5:
            xd = xd.contiguous(memory_format=torch.channels_last_3d)
        with run_context(self.device, self.precision):
            return self.network(xd)


class _Exported:
    """Padding, cropping and numpy conversion around an exported network."""

    name = ""

    def __init__(self, multiple: int) -> None:
        self.multiple = int(multiple)

    @property
    def dtype(self) -> str:
        return "fp32"

    @property
    def label(self) -> str:
        """``"<runtime> <version> <dtype>"``."""
        return f"{self.name} {runtime_version(self.name)} {self.dtype}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[2:])
        pads = [(-s) % self.multiple for s in shape]
        if any(pads):
            flat: list[int] = []
            for p in reversed(pads):  # F.pad wants the last axis first
                flat += [0, p]
            x = F.pad(x, flat)
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        y = torch.from_numpy(self._run(arr))
        if any(pads):
            y = y[(Ellipsis,) + tuple(slice(0, s) for s in shape)]
        return y

    def _run(self, arr: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class OnnxRuntimeBackend(_Exported):
    """ONNX Runtime (CPU execution provider) on an exported ONNX file."""

    name = "onnxruntime"

    def __init__(self, path: Path, multiple: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__(multiple)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.log_severity_level = 3
        # its worker threads sleep between windows instead of spinning on the cores napari's GUI thread needs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, arr: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: arr})[0]


def openvino_config(precision: str, threads: int | None = None, compiled_dir: Path | None = None) -> dict[str, Any]:
    """OpenVINO CPU compile options: ``precision`` (``"f32"``/``"bf16"``) as the inference precision hint,
    latency first, ``threads`` (default torch's), and OpenVINO's own cache of compiled models in
    ``compiled_dir`` when given (the next process loads them instead of compiling)."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                              "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
    if compiled_dir is not None:
        config["CACHE_DIR"] = str(compiled_dir)
    return config


class OpenVinoBackend(_Exported):
    """OpenVINO's CPU plugin on an IR file, compiled per input shape."""

    name = "openvino"
    #: It compiles per input shape: the passes fill every batch of a case to one size.
    fixed_batch = True

    def __init__(self, path: Path, multiple: int, precision: str = "f32", threads: int | None = None,
                 compiled_dir: Path | None = None) -> None:
        import openvino as ov

        super().__init__(multiple)
        self.core = ov.Core()
        self.path, self.precision = Path(path), precision
        self.model = self.core.read_model(str(self.path))
        self.config = {**openvino_config(precision, threads, compiled_dir), "NUM_STREAMS": 1}
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    @property
    def dtype(self) -> str:
        return "bf16" if self.precision == "bf16" else "fp32"

    def compiled(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for input ``shape`` (the least recently used of many is dropped)."""
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        model = self.model.clone()
        if model.input(0).get_partial_shape().is_dynamic:
            model.reshape(list(shape))
        net = self.core.compile_model(model, "CPU", self.config)
        self._compiled[shape] = net
        while len(self._compiled) > OPENVINO_SHAPES:
            self._compiled.popitem(last=False)
        return net

    def _run(self, arr: np.ndarray) -> np.ndarray:
        net = self.compiled(tuple(arr.shape))
        return np.array(net(arr)[net.output(0)], dtype=np.float32, copy=True)


__all__ = ["OPENVINO_SHAPES", "OnnxRuntimeBackend", "OpenVinoBackend", "TorchBackend", "openvino_config"]
