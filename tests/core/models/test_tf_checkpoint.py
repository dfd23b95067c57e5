"""The TensorFlow checkpoint reader against the arrays TensorFlow itself read (reference_variables.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models.deepmedic.tf_checkpoint import read_checkpoint, read_index


def test_every_net_variable_matches_tensorflow_exactly(deepmedic_dir: Path) -> None:
    ours = read_checkpoint(deepmedic_dir, prefix_filter="net/")
    ref = np.load(deepmedic_dir / "reference_variables.npz")
    assert len(ref.files) == 199
    assert sorted(ours) == sorted(k.replace("__", "/") for k in ref.files)
    for key in ref.files:
        got = ours[key.replace("__", "/")]
        assert got.dtype == ref[key].dtype, key
        assert got.shape == ref[key].shape, key
        assert np.array_equal(got, ref[key]), key
    assert sum(a.size for a in ours.values()) == 372_982


def test_index_lists_optimiser_state_and_shapes(deepmedic_dir: Path) -> None:
    index = read_index(deepmedic_dir / "model.ckpt.index")
    assert index["net/W_24"].shape == (60, 75, 3, 3, 3)
    assert index["net/W_24"].dtype == 1  # DT_FLOAT
    assert any(name.startswith("trainer/") for name in index)
    entries = sorted(index.values(), key=lambda e: e.offset)
    # tensors are laid out back to back without overlap
    for a, b in zip(entries, entries[1:]):
        assert a.offset + a.size <= b.offset


def test_foreign_and_truncated_files_give_model_errors(tmp_path: Path, deepmedic_dir: Path) -> None:
    foreign = tmp_path / "model.ckpt.index"
    foreign.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ModelError, match="not a TensorFlow checkpoint"):
        read_index(foreign)

    # a real index whose data file is truncated
    (tmp_path / "cut").mkdir()
    real = (deepmedic_dir / "model.ckpt.index").read_bytes()
    (tmp_path / "cut" / "model.ckpt.index").write_bytes(real)
    data = (deepmedic_dir / "model.ckpt.data-00000-of-00001").read_bytes()
    (tmp_path / "cut" / "model.ckpt.data-00000-of-00001").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        read_checkpoint(tmp_path / "cut")

    with pytest.raises(ModelError, match="no checkpoint data file"):
        (tmp_path / "nodata").mkdir()
        (tmp_path / "nodata" / "model.ckpt.index").write_bytes(real)
        read_checkpoint(tmp_path / "nodata" / "model.ckpt")
