"""Which cases train and which validate: explicit ids, k folds, or a fraction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BratsSegError
from . import data as ds

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig


def split_cases(samples: Sequence[ds.Sample], config: TrainConfig
                ) -> tuple[list[ds.Sample], list[ds.Sample]]:
    """Training and validation cases: explicit ids, else fold ``fold`` of ``folds`` (cases sorted by
    id, shuffled with a fixed seed, dealt round-robin), else the last ``val_fraction`` of that order."""
    order = sorted(samples, key=lambda s: s.case_id)
    perm = np.random.default_rng(12345).permutation(len(order))
    order = [order[i] for i in perm]
    if config.val_cases:
        unknown = set(config.val_cases) - {s.case_id for s in order}
        if unknown:
            raise BratsSegError(f"validation case(s) not in the data: {', '.join(sorted(unknown))}")
        val = [s for s in order if s.case_id in config.val_cases]
    elif config.folds:
        if not 0 <= config.fold < config.folds or config.folds > len(order):
            raise BratsSegError(f"fold {config.fold} of {config.folds} is impossible with {len(order)} cases")
        val = [s for i, s in enumerate(order) if i % config.folds == config.fold]
    else:
        n_val = int(round(config.val_fraction * len(order)))
        if config.val_fraction > 0 and len(order) > 1:
            n_val = max(n_val, 1)
        val = order[len(order) - n_val:] if n_val else []
    ids = {s.case_id for s in val}
    return [s for s in order if s.case_id not in ids], val
