"""CaPTk's DeepMedic model: its TensorFlow checkpoint and config read into :class:`.network.DeepMedic`.

- :func:`load_captk_deepmedic`: a model folder (``model.ckpt.index``, ``model.ckpt.data-*``,
  ``modelConfig.txt``) -> :class:`~.spec.LoadedModel`, without TensorFlow.
- :func:`segment_case`: a :class:`~napari_brats_seg.core.case.Case` segmented as the original does
  (normalisation, brain mask, the original's tile grid), for agreement checks and scripts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ModelError
from ...progress import CancelToken, ProgressCallback
from ..spec import LoadedModel, ModelSpec
from .network import CAPTK_ARCH, DeepMedic, build_deepmedic, input_padding
from .tf_checkpoint import read_checkpoint

_CAPTK_LICENCE = (
    "CaPTk (CBICA, University of Pennsylvania) distributes this model under the CBICA Software License "
    "(https://www.med.upenn.edu/cbica/software-agreement.html); DeepMedic's code is BSD-3-Clause "
    "(https://github.com/deepmedic/deepmedic). The weights are not redistributed by napari-brats-seg: "
    "obtain them with CaPTk (data/deepMedic/saved_models/brainTumorSegmentation/)."
)


def _indexed(variables: dict[str, np.ndarray], base: str) -> list[np.ndarray]:
    """``net/<base>``, ``net/<base>_1``, ... in creation order."""
    pat = re.compile(rf"^net/{re.escape(base)}(?:_(\d+))?$")
    found = {}
    for name, arr in variables.items():
        m = pat.match(name)
        if m:
            found[int(m.group(1)) if m.group(1) else 0] = arr
    missing = [i for i in range(len(found)) if i not in found]
    if missing:
        name = f"net/{base}" + (f"_{missing[0]}" if missing[0] else "")
        raise ModelError(f"the checkpoint has no variable {name} (it has {len(found)} net/{base}* variables "
                         f"numbered up to {max(found)}): the index is incomplete or from another model")
    return [found[i] for i in range(len(found))]


def load_tf_variables(net: DeepMedic, variables: dict[str, np.ndarray]) -> None:
    """Copy DeepMedic 0.8 checkpoint variables (``net/*``) into ``net``.

    TensorFlow numbers same-named variables in creation order: pathway by pathway (normal, then each
    subsampled, then FC), block by block. A pathway's first block has a bias ``b`` and no batch norm;
    every other block has ``gBn``, ``bBn``, rolling averages and ``aPrelu``; the softmax layer's bias is
    the last ``b``.
    """
    W = _indexed(variables, "W")
    b = _indexed(variables, "b")
    g = _indexed(variables, "gBn")
    beta = _indexed(variables, "bBn")
    mu = _indexed(variables, "muBnsForRollingAverage")
    var = _indexed(variables, "varBnsForRollingAverage")
    a = _indexed(variables, "aPrelu")
    pathways = [net.normal, *net.subsampled, net.fc]
    n_blocks = sum(len(p.blocks) for p in pathways)
    n_bn = n_blocks - (1 + len(net.subsampled))
    if len(W) != n_blocks or len(g) != n_bn or len(a) != n_bn or len(b) != 2 + len(net.subsampled):
        raise ModelError(
            f"checkpoint does not match the DeepMedic architecture: {len(W)} convolutions (expected {n_blocks}), "
            f"{len(g)} batch norms (expected {n_bn}), {len(b)} biases"
        )
    iw = ibn = ib = 0
    with torch.no_grad():
        for _p_i, path in enumerate(pathways):
            for k, block in enumerate(path.blocks):
                w = W[iw]
                iw += 1
                if tuple(block.weight.shape) != w.shape:
                    raise ModelError(f"checkpoint convolution {iw - 1} has shape {w.shape}, "
                                     f"expected {tuple(block.weight.shape)}")
                block.weight.copy_(torch.from_numpy(w))
                is_fc = path is net.fc
                if k == 0 and not is_fc:
                    block.scale.fill_(1.0)
                    block.shift.copy_(torch.from_numpy(b[ib]))
                    ib += 1
                else:
                    m = mu[ibn].astype(np.float64).mean(axis=0)
                    v = var[ibn].astype(np.float64).mean(axis=0)
                    inv = g[ibn].astype(np.float64) / np.sqrt(v + np.finfo(np.float32).tiny)
                    block.scale.copy_(torch.from_numpy(inv.astype(np.float32)))
                    block.shift.copy_(torch.from_numpy((beta[ibn] - m * inv).astype(np.float32)))
                    assert block.prelu is not None
                    block.prelu.copy_(torch.from_numpy(a[ibn]))
                    ibn += 1
        net.class_bias.copy_(torch.from_numpy(b[ib]))


def _parse_config(path: Path) -> dict[str, Any]:
    """Read the simple ``key = value`` lines of a DeepMedic ``modelConfig.txt`` (Python literals).

    Raises
    ------
    ModelError
        Naming the file, when it is not UTF-8 text or holds no ``key = value`` setting.
    """
    import ast

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the DeepMedic model config ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: is not a UTF-8 text file (byte {exc.start}); not a DeepMedic model config"
                         ) from None
    cfg: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        try:
            cfg[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
    if not cfg:
        raise ModelError(f"{path}: holds no 'key = value' setting; not a DeepMedic model config")
    return cfg


def _seq(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, found {type(value).__name__}")
    return list(value)


def _factors(value: Any) -> list[int]:
    factors = _seq(value)
    if factors and not isinstance(factors[0], list | tuple):
        factors = [factors]
    if any(len(set(f)) != 1 for f in factors):
        raise ModelError("subsampleFactor: only isotropic DeepMedic subsampling factors are supported")
    return [int(f[0]) for f in factors]


def _setting(cfg: dict[str, Any], key: str, convert: Any, default: Any) -> Any:
    """``convert(cfg[key])``, ``default`` when absent; a value that does not convert names the key."""
    if key not in cfg:
        return default
    try:
        return convert(cfg[key])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ModelError(f"{key} = {cfg[key]!r} is not a valid setting ({exc})") from None


def arch_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """:class:`DeepMedic` arguments from a parsed ``modelConfig.txt`` (CaPTk defaults where absent).

    Raises
    ------
    ModelError
        Naming the setting whose value has the wrong type or an unsupported value.
    """
    arch = dict(CAPTK_ARCH)
    arch["in_channels"] = _setting(cfg, "numberOfInputChannels", int, arch["in_channels"])
    arch["n_classes"] = _setting(cfg, "numberOfOutputClasses", int, arch["n_classes"])
    arch["fms_normal"] = _setting(cfg, "numberFMsPerLayerNormal", _seq, arch["fms_normal"])
    arch["fms_subsampled"] = _setting(cfg, "numberFMsPerLayerSubsampled", _seq, arch["fms_normal"])
    arch["subsample_factors"] = _setting(cfg, "subsampleFactor", _factors, arch["subsample_factors"])
    arch["residual_layers"] = _setting(cfg, "layersWithResidualConnNormal", _seq, arch["residual_layers"])
    arch["fms_fc"] = _setting(cfg, "numberFMsPerLayerFC", _seq, arch["fms_fc"])
    first_fc = _setting(cfg, "kernelDimFor1stFcLayer", lambda v: int(v[0]), 3)
    arch["fc_kernel"] = _setting(cfg, "kernelDimPerLayerFC", lambda v: int(v[0][0]), first_fc)
    arch["residual_layers_fc"] = _setting(cfg, "layersWithResidualConnFC", _seq, arch["residual_layers_fc"])
    arch["dropout_fc"] = _setting(cfg, "dropoutRatesFc", _seq, arch["dropout_fc"])
    arch["segment_size"] = _setting(cfg, "segmentsDimInference", lambda v: int(v[0]), arch["segment_size"])
    for key in ("kernelDimPerLayerNormal", "kernelDimPerLayerSubsampled"):
        if _setting(cfg, key, lambda v: any(list(k) != [3, 3, 3] for k in v), False):
            raise ModelError(f"{key}: only 3x3x3 DeepMedic kernels are supported")
    if cfg.get("activationFunction", "prelu") != "prelu":
        raise ModelError("only PReLU DeepMedic models are supported")
    return arch


def captk_spec(arch: dict[str, Any] | None = None, name: str = "captk-deepmedic") -> ModelSpec:
    """The :class:`ModelSpec` of CaPTk's DeepMedic brain-tumour model.

    Its normalisation statistics are those of the image mirror-padded by half the receptive field
    (``pad``), because DeepMedic 0.8 pads the image and its brain mask before it normalises
    (:func:`~napari_brats_seg.core.preprocess.deepmedic_normalize`).
    """
    arch = dict(arch or CAPTK_ARCH)
    return ModelSpec(
        name=name,
        family="deepmedic",
        arch=arch,
        channels=("t1", "t1ce", "t2", "flair"),
        orientation="LPS",
        output="labels",
        classes=(0, 1, 2, -1, 3),
        label_scheme="brats2021",
        normalization={"kind": "deepmedic", "pad": input_padding(arch)},
        dims=3,
        patch_size=None,
        spacing=(1.0, 1.0, 1.0),
        provenance={
            "source": "CaPTk (CBICA, University of Pennsylvania), "
                      "data/deepMedic/saved_models/brainTumorSegmentation/",
            "model": "dm1Sc3Thin3Seg40_gt4C_HGG587_forCaPTk124 (DeepMedic 0.8.x, TensorFlow checkpoint)",
            "data": "587 high-grade glioma cases (BraTS)",
            "paper": "K. Kamnitsas et al., Efficient multi-scale 3D CNN with fully connected CRF for accurate "
                     "brain lesion segmentation, Medical Image Analysis 36, 2017",
            "licence": _CAPTK_LICENCE,
        },
    )


def is_captk_deepmedic_folder(folder: str | Path) -> bool:
    """True for a folder holding a DeepMedic TensorFlow checkpoint (``*.index`` and ``*.data-*``)."""
    p = Path(folder)
    return p.is_dir() and any(p.glob("*.index")) and any(p.glob("*.data-*-of-*"))


def _named(path: Path, exc: Exception) -> str:
    """The message of ``exc``, prefixed with ``path`` unless it names it already."""
    msg = str(exc)
    return msg if str(path) in msg else f"{path}: {msg}"


def load_captk_deepmedic(folder: str | Path, device: str = "cpu") -> LoadedModel:
    """Load CaPTk's DeepMedic model (TensorFlow checkpoint + ``modelConfig.txt``) without TensorFlow.

    Parameters
    ----------
    folder
        The model folder (``model.ckpt.index``, ``model.ckpt.data-00000-of-00001``, optionally
        ``modelConfig.txt``), e.g. CaPTk's ``data/deepMedic/saved_models/brainTumorSegmentation``.
    device
        Torch device for the network.

    Returns
    -------
    LoadedModel
        The network in eval mode (it implements ``predict_volume``) and its :class:`ModelSpec`.

    Raises
    ------
    ModelError
        When the folder holds no readable checkpoint or it does not match the architecture.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ModelError(f"{path}: not a DeepMedic model folder")
    cfg_path = path / "modelConfig.txt"
    if cfg_path.is_file():
        try:
            arch = arch_from_config(_parse_config(cfg_path))
        except ModelError as exc:
            raise ModelError(_named(cfg_path, exc)) from None
    else:
        arch = dict(CAPTK_ARCH)
    try:
        net = build_deepmedic(arch)
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. a negative number of feature maps
        raise ModelError(f"{cfg_path}: the settings do not make a DeepMedic network ({exc})") from None
    try:
        load_tf_variables(net, read_checkpoint(path, prefix_filter="net/"))
    except ModelError as exc:
        raise ModelError(_named(path, exc)) from None
    net.eval().to(device)
    return LoadedModel(spec=captk_spec(arch), network=net, source=str(path))


def segment_case(case: Any, model: LoadedModel, *, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, precision: str = "fp32", runtime: str = "auto") -> np.ndarray:
    """Segment a :class:`~napari_brats_seg.core.case.Case` as CaPTk's DeepMedic does.

    The same path as :func:`~napari_brats_seg.core.inference.predict` (:func:`.placement.prepare`,
    :func:`~napari_brats_seg.core.inference.run_network`, :meth:`.placement.Placement.restore`,
    one decode) with the original's choices: the crop is the brain's bounding box without a margin,
    :meth:`DeepMedic.predict_volume` learns the crop's place in the whole image (so the tiles fall
    where the original puts them), argmax over the classes it may choose, background outside the
    brain.

    Parameters
    ----------
    case
        The case.
    model
        A DeepMedic :class:`LoadedModel` (e.g. from :func:`load_captk_deepmedic`).
    on_progress, cancel
        Passed to :meth:`DeepMedic.predict_volume`.
    precision
        ``"fp32"`` or ``"bf16"`` (bfloat16 autocast and channels-last on the CPU).
    runtime
        ``"auto"``, ``"torch"`` or ``"openvino"`` (:meth:`DeepMedic.use_runtime`).

    Returns
    -------
    numpy.ndarray
        Internal classes (uint8, the case's ``(z, y, x)`` grid).
    """
    from ...inference import decode, run_network
    from ...memory import keep_freed_memory
    from ...placement import brain_mask, prepare

    keep_freed_memory()  # as predict() does
    spec, net = model.spec, model.network
    x, placement = prepare(case, spec, crop=True, margin=0, self_tiling=True)
    previous = net.precision
    net.precision = precision
    try:
        out = run_network(net, spec, x, placement, device=next(net.parameters()).device, precision=precision,
                          on_progress=on_progress, cancel=cancel, what=f"case {case.case_id}", runtime=runtime)
    finally:
        net.precision = previous
    labels = placement.restore(decode(out.mean, spec), labels=True)
    labels[~brain_mask(case, spec.channels)] = 0
    return labels
