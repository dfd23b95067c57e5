"""Training a model: configuration, the loop, resuming, the split, validation and what a run leaves.

- :mod:`.config`: :class:`~.config.TrainConfig` and the spec of a new model.
- :mod:`.distributed`: the ``torch.distributed`` calls under ``torchrun`` (no-ops in one process).
- :mod:`.split`: training and validation cases.
- :mod:`.validation`: each validation case predicted as ``predict`` does, scored on its own grid.
- :mod:`.resume`: the start spec and weights, the resume file, the progress so far.
- :mod:`.report`: the checkpoint's provenance, the CSV log and its plot, :class:`~.report.TrainResult`.
- :mod:`.adversary`: the adversarial term.
- :mod:`.data`: cases prepared for training (:class:`~.data.Sample`), patches and augmentation.
- :mod:`.loop`: :func:`~.loop.train`.
"""

from __future__ import annotations

from .config import TrainConfig, config_from_json, default_spec
from .loop import train
from .report import TrainResult

__all__ = ["TrainConfig", "TrainResult", "config_from_json", "default_spec", "train"]
