"""``brats-seg models add/get/remove`` and the default model of ``segment`` / ``evaluate`` (offline)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from _hub_server import BUNDLE, bundle_zip
from napari_brats_seg.cli import main
from napari_brats_seg.core.models import hub


def test_segment_and_evaluate_without_model_use_the_best_installed(real_crop_dir: Path, tmp_path: Path,
                                                                  capsys, monkeypatch) -> None:
    data = bundle_zip()
    archive = tmp_path / f"{BUNDLE}_v0.3.7.zip"
    archive.write_bytes(data)
    # no licence accepted, no terminal to ask on: refused, nothing installed
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115
    assert main(["models", "add", str(archive)]) == 2
    assert "--accept-licence" in capsys.readouterr().err and hub.installed_models() == {}
    assert main(["models", "get", BUNDLE]) == 2  # asks before any download
    assert "Apache" in capsys.readouterr().err and hub.installed_models() == {}

    assert main(["models", "add", str(archive), "--accept-licence"]) == 0
    folder = hub.models_dir() / BUNDLE
    assert f"installed {BUNDLE}" in capsys.readouterr().out and folder.is_dir()
    assert hub.read_manifest(folder)["verified"] is (hashlib.sha1(data).hexdigest() == hub.CATALOG[BUNDLE].sha1)

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert f"[installed] {BUNDLE}" in listing and "reported: WT 0.900 / TC 0.860 / ET 0.790" in listing
    assert "cross_validated: WT 0.769 / TC 0.633 / ET 0.512" in listing  # unet3d-default's record
    assert f"default: {BUNDLE} (mean reported Dice 0.850" in listing

    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(real_crop_dir), "-o", str(out), "--quiet"]) == 0
    assert f"from {folder}" in capsys.readouterr().out and out.is_file()
    assert main(["evaluate", "default", str(real_crop_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == BUNDLE

    assert main(["models", "remove", BUNDLE]) == 0
    assert not folder.exists()
    capsys.readouterr()
    assert main(["models"]) == 0
    assert "default: unet3d-default (mean cross-validated Dice 0.638" in capsys.readouterr().out
