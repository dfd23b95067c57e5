"""From a case's grid to a network's input and back: :func:`prepare` and :class:`Placement`.

:func:`prepare` turns a :class:`~.case.Case` into the array a model's network takes and a
:class:`Placement`, the ordered list of steps between the two grids, each with its exact inverse
(as nnU-Net's reader returns the properties its writer needs):

=============  ======================================================  ==================================
step           forward (case grid -> network)                          inverse (network -> case grid)
=============  ======================================================  ==================================
``Resample``   trilinear to the model's spacing (``align_corners=False``)  trilinear back (labels: nearest)
``Crop``       the brain's bounding box plus a margin                  the box placed in the grid, filled
``Reorient``   internal ``(z, y, x)`` to the model's voxel order       the inverse permutation and flips
``Pad``        centred, to ``divisible_by`` / the window               the padding cut away
=============  ======================================================  ==================================

Only the steps that change something are recorded (no ``Resample`` at the model's own spacing).
Every step works on the last three axes of an array, so images ``(C, ...)``, probabilities
``(K, ...)`` and label maps go through the same code. :meth:`Placement.restore` undoes the steps in
reverse order; :meth:`Placement.origin` computes, from the steps alone, where the network's input lies
in the whole (resampled, reoriented) image, which self-tiling networks (DeepMedic) need to place their
tiles. :meth:`Placement.to_dict` / :meth:`Placement.from_dict` make it a JSON record.

Steps are small frozen dataclasses; a new kind (registration, a 1 mm grid) is a new :class:`Step`
subclass registered in :data:`STEPS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from . import preprocess as pp
from .errors import ModelError
from .resample import internal_spacing, majority_resize, needs_resampling, resize

#: Voxels kept around the brain's bounding box.
BRAIN_MARGIN = 4

Shape = tuple[int, int, int]
Fill = float | Sequence[float]


def _filled(lead: tuple[int, ...], spatial: Sequence[int], fill: Fill, dtype: Any) -> np.ndarray:
    """An array ``lead + spatial`` filled with ``fill`` (a scalar, or one value per leading channel)."""
    out = np.empty(tuple(lead) + tuple(spatial), dtype)
    if np.ndim(fill) == 0:
        out.fill(fill)
    else:
        values = list(fill)  # type: ignore[arg-type]
        if len(lead) != 1 or len(values) != lead[0]:
            raise ValueError(f"{len(values)} fill values for an array of leading shape {lead}")
        for c, v in enumerate(values):
            out[c].fill(v)
    return out


class Step:
    """One step between two grids; subclasses are frozen dataclasses with ``in_shape``."""

    kind: ClassVar[str] = ""
    #: True when :meth:`inverse` undoes :meth:`forward` exactly (no interpolation).
    exact: ClassVar[bool] = True
    in_shape: Shape

    @property
    def out_shape(self) -> Shape:
        """Spatial shape after the step."""
        raise NotImplementedError

    def forward(self, arr: np.ndarray, *, labels: bool = False, fill: Fill | None = None) -> np.ndarray:
        """Apply the step to the last three axes of ``arr`` (``labels``: a label map)."""
        raise NotImplementedError

    def inverse(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        """Undo the step; voxels the step cut away become ``fill``."""
        raise NotImplementedError

    def place(self, frame: Shape, box: tuple[tuple[int, int], ...]) -> tuple[Shape, tuple[tuple[int, int], ...]]:
        """Where the output lies in the whole image: ``(frame shape, box in it)`` after the step."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``{"kind": ..., field: value}`` (tuples as lists)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    if isinstance(v, np.floating):
        return float(v)
    return v


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


@dataclass(frozen=True)
class Resample(Step):
    """Trilinear resampling of the whole grid to ``out_shape`` (voxel centres as ``align_corners=False``).

    ``spacing`` is the internal ``(z, y, x)`` spacing asked for (the model's).
    """

    kind: ClassVar[str] = "resample"
    exact: ClassVar[bool] = False
    in_shape: Shape
    to_shape: Shape
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def out_shape(self) -> Shape:
        return self.to_shape

    def forward(self, arr: np.ndarray, *, labels: bool = False, fill: Fill | None = None) -> np.ndarray:
        if labels:
            return majority_resize(arr, self.to_shape)
        return resize(arr, self.to_shape)

    def inverse(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        if labels:
            return resize(arr, self.in_shape, "nearest-exact").astype(arr.dtype)
        return resize(arr, self.in_shape)

    def place(self, frame: Shape, box: tuple[tuple[int, int], ...]) -> tuple[Shape, tuple[tuple[int, int], ...]]:
        return self.to_shape, tuple((0, n) for n in self.to_shape)


@dataclass(frozen=True)
class Crop(Step):
    """The box ``((start, stop), ...)`` of the grid (internal axes)."""

    kind: ClassVar[str] = "crop"
    in_shape: Shape
    box: tuple[tuple[int, int], ...]

    @property
    def out_shape(self) -> Shape:
        return tuple(b - a for a, b in self.box)  # type: ignore[return-value]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in self.box)

    def forward(self, arr: np.ndarray, *, labels: bool = False, fill: Fill | None = None) -> np.ndarray:
        return pp.crop(arr, self.slices)

    def inverse(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        out = _filled(arr.shape[:-3], self.in_shape, fill, arr.dtype)
        out[(Ellipsis,) + self.slices] = arr
        return out

    def place(self, frame: Shape, box: tuple[tuple[int, int], ...]) -> tuple[Shape, tuple[tuple[int, int], ...]]:
        return frame, tuple((lo + a, lo + b) for (lo, _), (a, b) in zip(box, self.box))


@dataclass(frozen=True)
class Reorient(Step):
    """Internal ``(z, y, x)`` axes to a model's voxel order: output axis ``a`` is input axis
    ``perm[a]``, reversed where ``flip[a]`` (:func:`~.preprocess.to_model_axes`)."""

    kind: ClassVar[str] = "reorient"
    in_shape: Shape
    orientation: str = "LPS"

    @property
    def plan(self) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        return pp._axes_plan(self.orientation)

    @property
    def out_shape(self) -> Shape:
        perm, _ = self.plan
        return tuple(self.in_shape[p] for p in perm)  # type: ignore[return-value]

    def forward(self, arr: np.ndarray, *, labels: bool = False, fill: Fill | None = None) -> np.ndarray:
        return pp.to_model_axes(arr, self.orientation)

    def inverse(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        return pp.from_model_axes(arr, self.orientation)

    def place(self, frame: Shape, box: tuple[tuple[int, int], ...]) -> tuple[Shape, tuple[tuple[int, int], ...]]:
        perm, flips = self.plan
        new_frame = tuple(frame[p] for p in perm)
        new_box = tuple((frame[p] - box[p][1], frame[p] - box[p][0]) if f else box[p] for p, f in zip(perm, flips))
        return new_frame, new_box  # type: ignore[return-value]


@dataclass(frozen=True)
class Pad(Step):
    """Centred padding by ``before`` / ``after`` voxels per axis with one value per channel."""

    kind: ClassVar[str] = "pad"
    in_shape: Shape
    before: tuple[int, int, int]
    after: tuple[int, int, int]
    fill: tuple[float, ...] = ()

    @property
    def out_shape(self) -> Shape:
        return tuple(n + a + b for n, a, b in zip(self.in_shape, self.before, self.after))  # type: ignore

    @property
    def inner(self) -> tuple[slice, ...]:
        return tuple(slice(a, a + n) for a, n in zip(self.before, self.in_shape))

    def forward(self, arr: np.ndarray, *, labels: bool = False, fill: Fill | None = None) -> np.ndarray:
        if fill is None:
            fill = 0.0 if labels or not self.fill or arr.ndim != 4 else self.fill
        out = _filled(arr.shape[:-3], self.out_shape, fill, arr.dtype)
        out[(Ellipsis,) + self.inner] = arr
        return out

    def inverse(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        return np.ascontiguousarray(arr[(Ellipsis,) + self.inner])

    def place(self, frame: Shape, box: tuple[tuple[int, int], ...]) -> tuple[Shape, tuple[tuple[int, int], ...]]:
        return frame, tuple((lo - a, hi + b) for (lo, hi), a, b in zip(box, self.before, self.after))


#: Step kinds by name, for :meth:`Placement.from_dict`.
STEPS: dict[str, type[Step]] = {s.kind: s for s in (Resample, Crop, Reorient, Pad)}


@dataclass(frozen=True)
class Placement:
    """The steps from a case's grid (``case_shape``) to a network's input, in order.

    ``background``: each input channel's normalised value outside the brain (what padding adds).
    """

    case_shape: Shape
    steps: tuple[Step, ...] = field(default=())
    background: tuple[float, ...] = ()

    @property
    def shape(self) -> Shape:
        """Spatial shape of the network's input."""
        return self.steps[-1].out_shape if self.steps else self.case_shape

    @property
    def exact(self) -> bool:
        """True when every step inverts exactly (no resampling)."""
        return all(s.exact for s in self.steps)

    def find(self, kind: type[Step]) -> Step | None:
        """The last step of ``kind``, or None."""
        return next((s for s in reversed(self.steps) if isinstance(s, kind)), None)

    def then(self, step: Step) -> Placement:
        """This placement followed by ``step``."""
        if tuple(step.in_shape) != tuple(self.shape):
            raise ValueError(f"a {step.kind} step from {step.in_shape} cannot follow a grid of {self.shape}")
        return Placement(self.case_shape, self.steps + (step,), self.background)

    def forward(self, arr: np.ndarray, *, labels: bool = False) -> np.ndarray:
        """A case-grid array (``(..., z, y, x)``) on the network's grid (``labels``: a label map)."""
        for s in self.steps:
            arr = s.forward(arr, labels=labels)
        return arr

    def restore(self, arr: np.ndarray, *, labels: bool = False, fill: Fill = 0.0) -> np.ndarray:
        """A network-grid array ``(..., a0, a1, a2)`` back on the case's ``(z, y, x)`` grid.

        ``fill`` (a scalar, or one value per leading channel) is what the voxels outside the crop
        get; ``labels`` restores a label map (nearest neighbour where a step resamples).
        """
        if tuple(arr.shape[-3:]) != tuple(self.shape):
            raise ValueError(f"an array of spatial shape {arr.shape[-3:]} is not on this placement's grid {self.shape}")
        for s in reversed(self.steps):
            arr = s.inverse(arr, labels=labels, fill=fill)
        return np.ascontiguousarray(arr)

    def origin(self) -> tuple[tuple[int, int, int], Shape]:
        """``(origin, image_shape)``: the index of the input's first voxel in the whole image (the grid
        after the last resampling, in the input's axes; negative inside padding) and that image's shape."""
        frame: Shape = self.case_shape
        box = tuple((0, n) for n in frame)
        for s in self.steps:
            frame, box = s.place(frame, box)
        return tuple(int(a) for a, _ in box), tuple(int(n) for n in frame)  # type: ignore[return-value]

    @property
    def crop_box(self) -> tuple[slice, ...]:
        """The brain box (internal axes of the grid it was taken on); the whole grid without a crop."""
        c = self.find(Crop)
        if isinstance(c, Crop):
            return c.slices
        grid = self.find(Resample)
        return tuple(slice(0, n) for n in (grid.out_shape if grid else self.case_shape))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the placement."""
        return {"case_shape": list(self.case_shape), "steps": [s.to_dict() for s in self.steps],
                "background": [float(b) for b in self.background]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        """Inverse of :meth:`to_dict`."""
        steps = []
        for d in data["steps"]:
            kind = STEPS.get(d.get("kind", ""))
            if kind is None:
                raise ValueError(f"unknown placement step {d.get('kind')!r}; known: {', '.join(STEPS)}")
            steps.append(kind(**{k: _tuples(v) for k, v in d.items() if k != "kind"}))
        return cls(tuple(data["case_shape"]), tuple(steps), tuple(data.get("background", ())))


# --------------------------------------------------------------------------- building a placement

def slice_axis(orientation: str) -> int:
    """The model axis of a 2D model's slices (the one along S or I)."""
    return next(i for i, c in enumerate(orientation.upper()) if c in "SI")


def _round_up(n: int, k: int) -> int:
    return int(math.ceil(n / k) * k)


def pad_step(shape: Shape, spec: Any, fill: Sequence[float], self_tiling: bool = False) -> Pad | None:
    """The centred padding a network needs (as MONAI's sliding windows and nnU-Net pad): every axis
    (but a 2D model's slice axis) to a multiple of ``spec.divisible_by``, and at least the window
    (``spec.patch_size``) when the volume does not fit in one window. None when nothing is padded."""
    k = max(int(spec.divisible_by or 1), 1)
    pad_axes = [True, True, True]
    if spec.dims == 2 and not self_tiling:
        pad_axes[slice_axis(spec.orientation)] = False
    target = [(_round_up(s, k) if p else s) for s, p in zip(shape, pad_axes)]
    whole = (spec.patch_size is None or spec.dims == 2 or self_tiling
             or all(t <= int(w) for t, w in zip(target, spec.patch_size)))
    if not whole:
        target = [max(t, int(w)) for t, w in zip(target, spec.patch_size)]
    if list(target) == list(shape):
        return None
    before = tuple((t - s) // 2 for s, t in zip(shape, target))
    after = tuple(t - s - b for s, t, b in zip(shape, target, before))
    return Pad(tuple(shape), before, after, tuple(float(f) for f in fill))  # type: ignore[arg-type]


def model_grid(case_shape: Sequence[int], case_spacing: Sequence[float], spec: Any) -> Resample | None:
    """The resampling to ``spec.spacing``, or None when the case's spacing is within
    :data:`~.resample.TOLERANCE` of it on every axis."""
    if len(spec.spacing) != 3:
        return None
    target = internal_spacing(spec.spacing, spec.orientation)
    if not needs_resampling(case_spacing, target):
        return None
    ratio = np.asarray(case_spacing, float) / np.asarray(target, float)
    new = np.maximum(np.round(np.asarray(case_shape) * ratio).astype(int), 1)
    return Resample(tuple(int(n) for n in case_shape), tuple(int(n) for n in new), target)  # type: ignore


def _channel_names(case: Any, channels: Sequence[str]) -> list[str]:
    """The case's image keys of ``channels``; a KeyError names the ones it lacks."""
    from .case import canonical_modality

    names = [canonical_modality(m) for m in channels]
    missing = [m for m in names if m not in case.images]
    if missing:
        raise KeyError(f"case {case.case_id} has no {', '.join(missing)} (has {', '.join(case.images)})")
    return names


def brain_mask(case: Any, channels: Sequence[str]) -> np.ndarray:
    """Brain of ``case`` on its grid: where any of ``channels`` is non-zero (the BraTS convention).

    Raises
    ------
    KeyError
        Naming the channels the case lacks (as :meth:`~.case.Case.stack` does).
    """
    names = _channel_names(case, channels)
    mask = np.zeros(case.shape, bool)
    for m in names:
        mask |= case.images[m] != 0
    return mask


def prepare(case: Any, spec: Any, *, crop: bool | None = None, margin: int = BRAIN_MARGIN,
            include: np.ndarray | None = None, pad: bool = True, self_tiling: bool = False
            ) -> tuple[np.ndarray, Placement]:
    """The network input of ``case`` for a model of ``spec``, and how to bring outputs back.

    Channels by name (``spec.channels``), resampled to ``spec.spacing`` when it differs (more than
    25 % on an axis), brain mask (any channel non-zero) and ``spec.normalization`` on that grid, crop
    to the brain's box plus ``margin`` (``crop``: default ``spec.crop``), the model's voxel order,
    padding (``pad``) with each channel's normalised background value.

    Parameters
    ----------
    include
        A case-grid mask the box must also hold (training: the ground truth).
    self_tiling
        The network tiles itself (``predict_volume``): pad 2D models on every axis like 3D ones, and
        never to a window.

    Returns
    -------
    inputs, placement
        float32 ``(C, a0, a1, a2)`` and the :class:`Placement` of its grid.

    Raises
    ------
    ModelError
        When the normalisation is unknown or takes other options.
    """
    grid = model_grid(case.shape, case.spacing, spec)
    if grid is not None:
        # channel by channel: no stacked float32 copy of the whole case
        channels = [grid.forward(case.images[m]) for m in _channel_names(case, spec.channels)]
        if include is not None:
            include = grid.forward(include.astype(np.uint8), labels=True) > 0
        mask = pp.brain_mask(channels)
    else:  # the case's own arrays: no stacked copy
        mask = brain_mask(case, spec.channels)
        from .case import canonical_modality

        channels = [np.asarray(case.images[canonical_modality(m)], dtype=np.float32) for m in spec.channels]
    try:
        norm = pp.normalizer(spec.normalization)
    except ValueError as exc:
        raise ModelError(f"model {spec.name}: {exc}") from None
    placement = Placement(tuple(case.shape), (grid,) if grid else (), ())  # type: ignore[arg-type]
    steps: list[Step] = []
    if spec.crop if crop is None else crop:
        box = pp.bounding_box(mask if include is None else mask | include, margin)
        if any(b.stop - b.start != n for b, n in zip(box, mask.shape)):
            steps.append(Crop(placement.shape, tuple((b.start, b.stop) for b in box)))
    reorient = Reorient(steps[-1].out_shape if steps else placement.shape, spec.orientation)
    if reorient.plan != ((0, 1, 2), (False, False, False)):
        steps.append(reorient)
    for step in steps:
        placement = placement.then(step)
    x, background = _fill_input(channels, mask, norm, placement, spec, pad, self_tiling)
    placement = Placement(placement.case_shape, placement.steps, background)
    step = pad_step(placement.shape, spec, background, self_tiling) if pad else None
    return x, (placement.then(step) if step is not None else placement)


def _model_view(arr: np.ndarray, placement: Placement) -> np.ndarray:
    """``arr`` (one channel on the grid after resampling) through the crop and reorientation, as a
    view: no copy is made."""
    for s in placement.steps:
        if isinstance(s, Crop):
            arr = arr[s.slices]
        elif isinstance(s, Reorient):
            perm, flips = s.plan
            arr = np.transpose(arr, perm)
            arr = arr[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    return arr


def _fill_input(channels: Sequence[np.ndarray], mask: np.ndarray, norm: Any, placement: Placement, spec: Any,
                pad: bool, self_tiling: bool) -> tuple[np.ndarray, tuple[float, ...]]:
    """The network input, written channel by channel into its final (padded) array.

    Each channel is normalised on the whole grid, then copied once through the crop, the
    reorientation and into the padding's interior; the padding gets the channel's normalised value
    outside the brain. Only one normalised channel exists at a time (no stacked copies).
    """
    first_out = int(np.argmax(~mask)) if not mask.all() else -1  # first voxel outside the brain
    shape = placement.shape
    probe = pad_step(shape, spec, (0.0,) * len(channels), self_tiling) if pad else None
    full = probe.out_shape if probe is not None else shape
    inner = probe.inner if probe is not None else tuple(slice(0, n) for n in shape)
    x = np.empty((len(channels),) + tuple(full), np.float32)
    background = []
    for c, channel in enumerate(channels):
        normed = norm(channel, mask)
        bg = float(normed.flat[first_out]) if first_out >= 0 else 0.0
        background.append(bg)
        if probe is not None:  # the whole channel in memory order: the first touch of its pages is sequential
            x[c].fill(bg)
        x[c][inner] = _model_view(normed, placement)
        del normed
    return x, tuple(background)


def pad_input(x: np.ndarray, placement: Placement, spec: Any, self_tiling: bool = False
              ) -> tuple[np.ndarray, Placement]:
    """``x`` (on ``placement``'s grid) padded as the network needs (:func:`pad_step`) with each
    channel's ``placement.background``, and the placement with that step."""
    background = placement.background or (0.0,) * x.shape[0]
    step = pad_step(tuple(x.shape[1:]), spec, background, self_tiling)  # type: ignore[arg-type]
    if step is None:
        return x, placement
    return step.forward(x), placement.then(step)


__all__ = ["BRAIN_MARGIN", "Crop", "Pad", "Placement", "Reorient", "Resample", "STEPS", "Step", "brain_mask",
           "model_grid", "pad_input", "pad_step", "prepare", "slice_axis"]
