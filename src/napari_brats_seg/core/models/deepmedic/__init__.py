"""DeepMedic (Kamnitsas et al., Medical Image Analysis 2017) in PyTorch, and CaPTk's pretrained model.

The package's modules, in dependency order (each imports only those above it):

- :mod:`.tiling`: where DeepMedic's inference tiles fall and what its subsampled pathways see.
- :mod:`.tf_checkpoint`: a reader of TensorFlow checkpoints (index and data files) without TensorFlow.
- :mod:`.fast`: the fast inference path (dense normal pathway, low-resolution first FC layer).
- :mod:`.graphs`: the fast path's three steps as exportable torch modules (ONNX / OpenVINO).
- :mod:`.runtime`: those steps on OpenVINO (``--runtime openvino``; auto where measured faster).
- :mod:`.network`: the network (:class:`~.network.DeepMedic`) and its architecture arguments.
- :mod:`.captk`: CaPTk's model folder read into a :class:`~napari_brats_seg.core.models.spec.LoadedModel`,
  and :func:`~.captk.segment_case`, the original's pipeline on a case.
"""

from __future__ import annotations

from .captk import (
    arch_from_config,
    captk_spec,
    is_captk_deepmedic_folder,
    load_captk_deepmedic,
    load_tf_variables,
    segment_case,
)
from .fast import run_tiles
from .network import CAPTK_ARCH, DeepMedic, build_deepmedic, input_padding, receptive_field
from .tf_checkpoint import read_checkpoint, read_index
from .tiling import corner_background, plan_tiles, subsampled_segment

__all__ = [
    "CAPTK_ARCH", "DeepMedic", "arch_from_config", "build_deepmedic", "captk_spec", "corner_background",
    "input_padding", "is_captk_deepmedic_folder", "load_captk_deepmedic", "load_tf_variables", "plan_tiles",
    "read_checkpoint", "read_index", "receptive_field", "run_tiles", "segment_case", "subsampled_segment",
]
