"""Exporting a torch network for another runtime: ONNX (``torch.onnx.export``) and OpenVINO IR.

The project's encoder-decoder networks come wrapped in :class:`~..models.padding.PadToMultiple`,
whose padding is Python control flow that a trace would freeze. The wrapper is therefore left in
torch (:func:`split_padding`: the backend pads and crops around the runtime) and only the network
inside it is exported, with dynamic batch and spatial axes, so one export serves every window shape.
The Havaei networks (:mod:`..models.cascade`), fully convolutional, are exported with dynamic axes
too (one export serves every case's slices). Any other network is exported for one input shape (the
cache key then includes it).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: File names inside a cache entry.
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"
#: ONNX operator set of the exports.
OPSET = 17


class FirstOutput(nn.Module):
    """``net`` returning only its first output (deep-supervision heads dropped), as inference reads it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The first output of ``net(x)``."""
        out = self.net(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def split_padding(network: Any) -> tuple[nn.Module, int, bool]:
    """``(core, multiple, dynamic)``: the network to export, the spatial multiple its input needs and
    whether its export may have dynamic spatial axes (True for the inside of a ``PadToMultiple``)."""
    from ..models.cascade import CascadeCNN, TwoPathCNN
    from ..models.padding import PadToMultiple

    if isinstance(network, PadToMultiple):
        return network.net, network.multiple, True
    if isinstance(network, (CascadeCNN, TwoPathCNN)):  # fully convolutional, any slice size (tested)
        return network, 1, True
    return network, 1, False


def example_input(channels: int, spatial_dims: int, multiple: int, shape: tuple[int, ...] | None) -> torch.Tensor:
    """The tensor a trace runs on: ``shape`` for a fixed-shape export, else a small multiple of ``multiple``
    (at least 32 voxels an axis, so that normalisation layers deep in the network see several voxels)."""
    if shape is None:
        edge = max(32, 4 * multiple)
        shape = (edge,) * spatial_dims
    gen = torch.Generator().manual_seed(0)
    return torch.randn((1, channels) + tuple(shape), generator=gen)


def trace_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
               output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    """Write ``module`` as ONNX to ``path`` (:data:`OPSET`, the legacy tracing exporter, constants folded),
    traced on ``inputs`` without gradients."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(module, inputs, str(path), dynamo=False, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, opset_version=OPSET,
                          do_constant_folding=True)


def export_onnx(core: nn.Module, example: torch.Tensor, path: Path, dynamic: bool) -> None:
    """Write ``core`` (eval mode, first output only) as ONNX to ``path``, traced on ``example``."""
    axes = {0: "batch"} | ({i: f"s{i}" for i in range(2, example.ndim)} if dynamic else {})
    was_training = core.training
    core.eval()
    try:
        trace_onnx(FirstOutput(core), (example,), path, ["x"], ["logits"], {"x": axes, "logits": axes})
    finally:
        core.train(was_training)


def convert_openvino(onnx_path: Path, path: Path) -> None:
    """Convert an ONNX file to OpenVINO IR at ``path`` (``.xml`` plus ``.bin``), weights kept in f32."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(path), compress_to_fp16=False)


__all__ = ["ONNX_FILE", "OPENVINO_FILE", "OPSET", "FirstOutput", "convert_openvino", "example_input", "export_onnx",
           "split_padding", "trace_onnx"]
