"""Hostile and broken model files: none runs code, each gives a ModelError naming the file and the problem.

Every attack is built twice, as a MONAI bundle folder and as a ``.safetensors`` checkpoint whose spec says
family ``bundle``, and tried through the Python API and the CLI (``segment`` and ``models``); the napari
widget tries them in ``tests/napari/test_hostile_models_widget.py``. Each attack would create a marker file
if it ran; none may appear.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from napari_brats_seg.core.errors import ModelError
from napari_brats_seg.core.models.checkpoint import FORMAT_NAME, load_checkpoint, read_spec, save_checkpoint
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.registry import list_models, load_model
from napari_brats_seg.core.models.spec import ModelSpec
from napari_brats_seg.core.models.unet2d import unet2d_spec

ROOT = Path(__file__).resolve().parents[3]

#: A tiny MONAI BasicUNet (not SegResNet, so that the old loader handed it to MONAI's ConfigParser).
NET: dict[str, Any] = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3, "in_channels": 4,
                       "out_channels": 3, "features": [4, 4, 8, 8, 16, 4]}
METADATA = {
    "name": "hostile", "version": "0.0.1",
    "network_data_format": {
        "inputs": {"image": {"spatial_shape": ["16*n", "16*n", "16*n"],
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}},
    },
}


def _touch(mark: Path) -> dict[str, Any]:
    """A MONAI config object that creates ``mark`` when instantiated."""
    return {"_target_": "subprocess.run", "args": ["touch", str(mark)]}


def attacks(mark: Path) -> dict[str, tuple[Any, str]]:
    """name -> (network_def, text the error must contain: the offending key or value)."""
    touch = _touch(mark)
    code = f"$__import__('subprocess').run(['touch', {str(mark)!r}])"
    return {
        "nested-target": ({**NET, "act": touch}, "network_def.act"),
        "target-in-list": ({**NET, "features": [4, 4, 8, 8, 16, touch]}, "network_def.features[5]"),
        "requires": ({**NET, "_requires_": touch}, "network_def._requires_"),
        "private-key": ({**NET, "_mode_": "callable"}, "network_def._mode_"),
        "expression": ({**NET, "features": code + " or [4, 4, 8, 8, 16, 4]"}, "network_def.features"),
        "reference": ({**NET, "act": "@evil"}, "network_def.act"),
        "macro": ({**NET, "act": "%configs/other.json#evil"}, "network_def.act"),
        "string-network-def": (code, "network_def"),
        "foreign-class": ({"_target_": "subprocess.run", "args": ["touch", str(mark)]}, "subprocess.run"),
        "dunder-class": ({"_target_": "monai.networks.nets.__dict__"}, "__dict__"),
        "not-allowed-class": ({"_target_": "monai.networks.nets.TorchVisionFCModel", "pretrained": True},
                              "TorchVisionFCModel"),
    }


def _state() -> dict[str, torch.Tensor]:
    from monai.networks.nets import BasicUNet

    torch.manual_seed(1)
    return BasicUNet(**{k: v for k, v in NET.items() if k != "_target_"}).state_dict()


def write_bundle(root: Path, network_def: Any, **extra: Any) -> Path:
    """A bundle folder with ``network_def`` (and further top-level config entries), tiny BasicUNet weights."""
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    inference = {"imports": ["$import glob"], "network_def": network_def,
                 "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32]}, **extra}
    (root / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    (root / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=2))
    torch.save(_state(), root / "models" / "model.pt")
    return root


def write_bundle_checkpoint(path: Path, network_def: Any) -> Path:
    """A safetensors checkpoint of this project's format whose spec says family ``bundle``."""
    spec = ModelSpec(name="hostile", family="bundle", arch={"network_def": network_def, "divisible_by": 16},
                     output="regions", regions=("TC", "WT", "ET"), classes=(), crop=False)
    state = {f"net.{k}": v.contiguous() for k, v in _state().items()}  # inside the padding wrapper
    save_file(state, str(path), metadata={"format": FORMAT_NAME, "format_version": "1", "spec": spec.to_json()})
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path, Path, str]]:
    """(name, model path, marker it would create, expected text) of every attack, bundle and checkpoint."""
    root = tmp_path_factory.mktemp("hostile")
    out = []
    for form in ("bundle", "checkpoint"):
        for name in attacks(root / "unused"):
            mark = root / f"PWNED-{form}-{name}"
            net_def, text = attacks(mark)[name]
            if form == "bundle":
                path = write_bundle(root / f"{name}-bundle", net_def, evil=_touch(mark))
            else:
                path = write_bundle_checkpoint(root / f"{name}.safetensors", net_def)
            out.append((f"{form}-{name}", path, mark, text))
    # _requires_ elsewhere in the config than the network: refused as well
    mark = root / "PWNED-bundle-requires-in-inferer"
    inferer = {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "_requires_": _touch(mark)}
    out.append(("bundle-requires-in-inferer", write_bundle(root / "requires-inferer", NET, inferer=inferer), mark,
                "inferer._requires_"))
    return out


def _file_named(path: Path) -> str:
    return str(path / "configs" / "inference.json") if path.is_dir() else str(path)


def test_a_valid_tiny_bundle_and_checkpoint_load(tmp_path: Path) -> None:
    # the attacks below differ from these only by the hostile entry
    folder = write_bundle(tmp_path / "ok", NET)
    model = load_model(folder)
    assert model.spec.family == "bundle" and model.spec.arch["network_def"] == NET
    again = load_model(write_bundle_checkpoint(tmp_path / "ok.safetensors", NET))
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.network(x), again.network(x))


def test_no_attack_runs_through_the_python_api(hostile: list[tuple[str, Path, Path, str]]) -> None:
    for name, path, mark, text in hostile:
        with pytest.raises(ModelError) as info:
            load_model(path)
        msg = str(info.value)
        assert text in msg, (name, msg)
        assert _file_named(path) in msg, (name, msg)
        assert not mark.exists(), name
        [row] = list_models([path])[-1:]
        assert text in row.get("error", ""), (name, row)
        assert not mark.exists(), name


def test_the_allowlist_is_named_in_the_refusal(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="SegResNet.*SwinUNETR"):
        load_model(write_bundle(tmp_path / "b", {"_target_": "monai.networks.nets.TorchVisionFCModel"}))
    # a checkpoint whose arguments are data of the wrong type: a ModelError, not a traceback
    spec = unet2d_spec("unet2d", arch={"features": [4, 4, 8, 8, 16, 4]})
    path = save_checkpoint(tmp_path / "ok.safetensors", build_network(spec), spec)
    from safetensors.torch import load_file

    bad = json.loads(spec.to_json())
    bad["arch"] = "not arguments"
    save_file(load_file(str(path)), str(tmp_path / "args.safetensors"),
              metadata={"format": FORMAT_NAME, "format_version": "1", "spec": json.dumps(bad)})
    with pytest.raises(ModelError, match=r"args\.safetensors: cannot build the unet2d network"):
        load_model(tmp_path / "args.safetensors")


def test_yaml_bundles_are_read_as_data(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "yaml", NET)
    inference = folder / "configs" / "inference.json"
    text = json.dumps(json.loads(inference.read_text()))  # JSON is YAML
    inference.unlink()
    (folder / "configs" / "inference.yaml").write_text(text)
    assert load_model(folder).spec.arch["network_def"] == NET
    mark = tmp_path / "PWNED-yaml"
    (folder / "configs" / "inference.yaml").write_text(
        f"network_def: !!python/object/apply:subprocess.run [[touch, {mark}]]\n")
    with pytest.raises(ModelError, match=r"inference\.yaml: cannot parse"):
        load_model(folder)
    assert not mark.exists()


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_no_attack_runs_through_the_cli_models_command(hostile: list[tuple[str, Path, Path, str]],
                                                       tmp_path: Path) -> None:
    res = _cli("models", *(p for _, p, _, _ in hostile), "--json")
    assert res.returncode == 1, res.stderr
    rows = {r["source"]: r for r in json.loads(res.stdout)}
    for name, path, mark, text in hostile:
        assert text in rows[str(path)]["error"], name
        assert not mark.exists(), name
    # a path that does not exist, beside a good model: an error row for it, the other described, exit 1
    good = write_bundle(tmp_path / "good", NET)
    res = _cli("models", tmp_path / "missing.safetensors", good)
    assert res.returncode == 1
    assert "missing.safetensors" in res.stdout and "error" in res.stdout
    assert "family    bundle" in res.stdout and "Traceback" not in res.stderr


@pytest.mark.parametrize("which", ["bundle-nested-target", "bundle-requires", "checkpoint-nested-target",
                                   "checkpoint-requires", "bundle-string-network-def"])
def test_no_attack_runs_through_the_cli_segment_command(hostile: list[tuple[str, Path, Path, str]],
                                                        real_crop_dir: Path, tmp_path: Path, which: str) -> None:
    [(name, path, mark, text)] = [h for h in hostile if h[0] == which]
    res = _cli("segment", real_crop_dir, "-o", tmp_path / "out.nii.gz", "--model", path, "--quiet")
    assert res.returncode != 0
    assert text in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not mark.exists()
    assert not (tmp_path / "out.nii.gz").exists()


# ----------------------------------------------------------------------------- corrupted weights


def _tiny(tmp_path: Path) -> Path:
    spec = unet2d_spec("unet2d", arch={"features": [4, 4, 8, 8, 16, 4]})
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", build_network(spec), spec)


def _data_start(path: Path) -> int:
    with open(path, "rb") as fh:
        return 8 + struct.unpack("<Q", fh.read(8))[0]


def test_flipped_weight_bytes_are_detected(tmp_path: Path) -> None:
    path = _tiny(tmp_path)
    assert len(load_checkpoint(path).spec.name) > 0  # loads as saved
    data = bytearray(path.read_bytes())
    start = _data_start(path)
    assert len(data) - start > 16_384
    mid = (start + len(data)) // 2
    data[mid:mid + 4096] = bytes(b ^ 0xFF for b in data[mid:mid + 4096])
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    read_spec(bad)  # the header is intact: describing the file still works
    with pytest.raises(ModelError, match=r"flipped\.safetensors.*corrupted or were changed.*hash [0-9a-f]{12}.*"
                                         r"expected [0-9a-f]{12}"):
        load_model(bad)


def test_a_checkpoint_without_a_recorded_hash_still_loads(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = _tiny(tmp_path)
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    assert len(meta["weights_sha256"]) == 64
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={k: v for k, v in meta.items() if k != "weights_sha256"})
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(old).network(x), load_model(path).network(x))


def test_an_unknown_label_scheme_is_refused(tmp_path: Path) -> None:
    path = _tiny(tmp_path)
    spec = dataclasses.replace(read_spec(path), label_scheme="brats2023")
    assert spec.label_scheme == "brats2023"
    with pytest.raises(ModelError, match="brats1999"):
        dataclasses.replace(spec, label_scheme="brats1999")
    from safetensors.torch import load_file

    data = json.loads(spec.to_json())
    data["label_scheme"] = "brats1999"
    bad = tmp_path / "scheme.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={"format": FORMAT_NAME, "format_version": "1",
                                                         "spec": json.dumps(data)})
    with pytest.raises(ModelError, match=r"scheme\.safetensors.*'brats1999'.*brats2021"):
        load_model(bad)


# ----------------------------------------------------------------------------- broken DeepMedic folders

DM_FILES = ("model.ckpt.index", "model.ckpt.data-00000-of-00001", "modelConfig.txt")


def _dm_copy(deepmedic_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in DM_FILES:
        shutil.copyfile(deepmedic_dir / name, dest / name)
    return dest


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _sstable(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An uncompressed leveldb table holding ``entries`` (one data block), as TensorFlow writes indexes."""
    def block(items: list[tuple[bytes, bytes]]) -> bytes:
        body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in items)
        return body + struct.pack("<II", 0, 1)

    data = block(entries)
    out = data + b"\0\0\0\0\0"
    index = block([(entries[-1][0], _varint(0) + _varint(len(data)))])
    index_at = len(out)
    out += index + b"\0\0\0\0\0"
    footer = (_varint(0) + _varint(0) + _varint(index_at) + _varint(len(index))).ljust(40, b"\0")
    return out + footer + struct.pack("<Q", 0xDB4775248B80FB57)


def _index_entries(path: Path) -> list[tuple[bytes, bytes]]:
    from napari_brats_seg.core.models.deepmedic import tf_checkpoint as tf

    data = path.read_bytes()
    footer = data[-48:]
    _, _, pos = tf._block_handle(footer, 0)
    off, size, _ = tf._block_handle(footer, pos)
    out = []
    for _, handle in tf._block_entries(tf._read_block(data, off, size)):
        b_off, b_size, _ = tf._block_handle(handle, 0)
        out.extend(tf._block_entries(tf._read_block(data, b_off, b_size)))
    return out


def test_broken_deepmedic_folders_name_the_file_and_the_problem(deepmedic_dir: Path, tmp_path: Path) -> None:
    # the writer above reproduces the real index: the same folder loads
    entries = _index_entries(deepmedic_dir / "model.ckpt.index")
    rebuilt = _dm_copy(deepmedic_dir, tmp_path / "rebuilt")
    (rebuilt / "model.ckpt.index").write_bytes(_sstable(entries))
    assert load_model(rebuilt).spec.family == "deepmedic"

    cases: dict[str, str] = {}
    missing = _dm_copy(deepmedic_dir, tmp_path / "missing-variable")
    (missing / "model.ckpt.index").write_bytes(_sstable([e for e in entries if e[0] != b"net/W_7"]))
    cases["missing-variable"] = r"missing-variable.*net/W_7"
    renamed = _dm_copy(deepmedic_dir, tmp_path / "not-utf8-name")
    (renamed / "model.ckpt.index").write_bytes(_sstable(
        [(b"net/\xff\xfe" if k == b"net/W_7" else k, v) for k, v in entries]))
    cases["not-utf8-name"] = r"not-utf8-name.*model\.ckpt\.index"
    truncated = _dm_copy(deepmedic_dir, tmp_path / "truncated")
    index = (deepmedic_dir / "model.ckpt.index").read_bytes()
    (truncated / "model.ckpt.index").write_bytes(index[: len(index) // 2] + index[-48:])
    cases["truncated"] = r"truncated.*model\.ckpt\.index.*truncated"
    garbage = _dm_copy(deepmedic_dir, tmp_path / "garbage-config")
    (garbage / "modelConfig.txt").write_bytes(bytes(range(256)) * 12)
    cases["garbage-config"] = r"garbage-config.*modelConfig\.txt.*not .*text"
    wrong = _dm_copy(deepmedic_dir, tmp_path / "wrong-type")
    (wrong / "modelConfig.txt").write_text("numberFMsPerLayerNormal = 5\nsubsampleFactor = 3\n")
    cases["wrong-type"] = r"wrong-type.*modelConfig\.txt.*numberFMsPerLayerNormal"
    for name, pattern in cases.items():
        with pytest.raises(ModelError, match=pattern):
            load_model(tmp_path / name)
    res = _cli("models", *(tmp_path / name for name in cases), rebuilt)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.count("error:") == len(cases) and "family    deepmedic" in res.stdout
