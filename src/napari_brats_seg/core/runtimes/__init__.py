"""Inference runtimes: torch, ONNX Runtime and OpenVINO, the fastest measured picked per CPU.

- :mod:`.cpu`: the CPU's kind (AVX2, AVX-512, AVX-512 BF16, AMX) and the installed runtimes.
- :mod:`.export`: the network exported to ONNX / OpenVINO IR.
- :mod:`.cache`: exports kept on disk, paid once per model, runtime and CPU kind.
- :mod:`.backends`: one callable per runtime, ``(N, C, *spatial)`` float32 -> logits.
- :mod:`.choice`: ``select(runtime, spec, network)``, ``"auto"`` from a table of measured picks.

ONNX Runtime and OpenVINO come with the ``[fast]`` extra; without them everything runs on torch.
"""

from .choice import AUTO_TABLE, INSTALL_HINT, RuntimeNotInstalled, choose, require, select
from .cpu import available_runtimes, cpu_kind, cpu_summary

__all__ = ["AUTO_TABLE", "INSTALL_HINT", "RuntimeNotInstalled", "available_runtimes", "choose", "cpu_kind",
           "cpu_summary", "require", "select"]
