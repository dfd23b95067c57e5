"""napari sample data: a synthetic BraTS-like case from the core's phantom generator."""

from __future__ import annotations

from typing import Any

from .layers import case_layer_data


def make_sample_data(seed: int = 0, shape: tuple[int, int, int] = (96, 96, 64)) -> list[tuple[Any, dict, str]]:
    """Four sequences and the ground truth of a seeded synthetic case (in memory, 1 mm, LPS).

    Parameters
    ----------
    seed
        Seed of :func:`napari_brats_seg.core.synth.synth_case`.
    shape
        Case shape passed to the generator.
    """
    from ..core.synth import synth_case

    return case_layer_data(synth_case(seed, shape, case_id=f"synthetic-{seed}"))
