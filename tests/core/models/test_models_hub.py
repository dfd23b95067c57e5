"""Publishers' models: download from a loopback server, checks, atomic installs, default choice.

No internet: a server on 127.0.0.1 (a thread of the test) serves a tiny MONAI bundle zip made here
and the shared copy of CaPTk's published DeepMedic files (checked against the real pinned sha256s).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from _hub_server import BUNDLE, LoopbackServer, bundle_entry, bundle_zip, deepmedic_entry, serve_deepmedic
from napari_brats_seg.core.errors import Cancelled, ModelError
from napari_brats_seg.core.models import hub, registry
from napari_brats_seg.core.progress import CancelToken


@pytest.fixture
def models_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv(hub.ENV_DIR, str(root))
    return root


@pytest.fixture
def server():
    with LoopbackServer() as srv:
        yield srv


def _nothing_installed(root: Path) -> bool:
    return hub.installed_models(root) == {} and not any(
        p.name == BUNDLE or p.name == "captk-deepmedic" for p in root.glob("*"))


def test_models_dir_follows_env_and_defaults_to_platformdirs(models_root: Path, monkeypatch) -> None:
    assert hub.models_dir() == models_root
    monkeypatch.delenv(hub.ENV_DIR)
    from platformdirs import user_data_dir

    assert hub.models_dir() == Path(user_data_dir("napari-brats-seg")) / "models"


def test_get_bundle_through_monai_download_installs_atomically(models_root: Path, server) -> None:
    data = bundle_zip()
    server.files["/bundle.zip"] = data
    entry = bundle_entry(server, sha1=hashlib.sha1(data).hexdigest())
    steps = []
    folder = hub.get_model(BUNDLE, accept_licence=True, catalog={BUNDLE: entry},
                           on_progress=lambda d, t, m: steps.append((d, t, m)))
    assert folder == models_root / BUNDLE and (folder / "models" / "model.pt").is_file()
    assert hub.installed_models() == {BUNDLE: folder}
    assert [p.name for p in models_root.iterdir()] == [BUNDLE]  # no partial folder left
    man = hub.read_manifest(folder)
    assert man["verified"] is True and "Apache" in man["licence"] and man["source"] == entry.url
    assert man["dice"]["reported"]["WT"] == pytest.approx(0.90)
    assert man["files"]["models/model.pt"] == hub.sha256_of(folder / "models" / "model.pt")
    assert steps[-1][0] == steps[-1][1] and server.hits["/bundle.zip"] == 1
    # loadable by its name; listed with its figures; and, with the publisher's 0.85 mean, the default
    assert registry.load_model(BUNDLE).spec.family == "segresnet"
    listed = {m["name"]: m for m in registry.list_models()}
    assert listed[BUNDLE]["installed"] and listed[BUNDLE]["provenance"]["dice"]["reported"]["ET"] == 0.79
    assert registry.default_model() == BUNDLE
    hub.remove_model(BUNDLE)
    assert hub.installed_models() == {} and registry.default_model() == "unet3d-default"


def test_licence_must_be_accepted_before_anything_is_fetched(models_root: Path, server) -> None:
    server.files["/bundle.zip"] = bundle_zip()
    with pytest.raises(hub.LicenceNotAccepted, match="Apache License 2.0"):
        hub.get_model(BUNDLE, catalog={BUNDLE: bundle_entry(server)})
    assert server.hits == {} and not models_root.exists()


def test_bundle_with_code_in_its_network_is_refused(models_root: Path, server) -> None:
    evil = dict(bundle_zip.__globals__["NETWORK_DEF"], init_filters="$__import__('os').getpid()")
    server.files["/bundle.zip"] = bundle_zip(network_def=evil)
    with pytest.raises(ModelError, match="refused.*expression"):
        hub.get_model(BUNDLE, accept_licence=True, catalog={BUNDLE: bundle_entry(server)})
    assert _nothing_installed(models_root) and list(models_root.iterdir()) == []


def test_bundle_checksum_mismatch_installs_nothing(models_root: Path, server) -> None:
    server.files["/bundle.zip"] = bundle_zip()
    entry = bundle_entry(server, sha1="0" * 40)
    with pytest.raises(ModelError, match="checksum mismatch.*sha1"):
        hub.get_model(BUNDLE, accept_licence=True, catalog={BUNDLE: entry})
    assert _nothing_installed(models_root)


def test_interrupted_bundle_download_then_rerun_installs(models_root: Path, server) -> None:
    data = bundle_zip()
    server.files["/bundle.zip"] = data
    server.cut.add("/bundle.zip")
    entry = bundle_entry(server, sha1=hashlib.sha1(data).hexdigest())
    with pytest.raises(ModelError, match="download of .* failed.*run the same command again"):
        hub.get_model(BUNDLE, accept_licence=True, catalog={BUNDLE: entry})
    assert _nothing_installed(models_root)
    server.cut.clear()
    folder = hub.get_model(BUNDLE, accept_licence=True, catalog={BUNDLE: entry})
    assert hub.installed_models() == {BUNDLE: folder} and server.hits["/bundle.zip"] == 2


def test_deepmedic_files_checked_against_pinned_sha256(models_root: Path, server, deepmedic_dir: Path) -> None:
    serve_deepmedic(server, deepmedic_dir)
    entry = deepmedic_entry(server)
    # the published files, cut off mid-way: nothing is installed; the file that did arrive is kept
    server.cut.add("/captk/model.ckpt.data-00000-of-00001")
    with pytest.raises(ModelError, match="model.ckpt.data-00000-of-00001 failed"):
        hub.get_model("captk-deepmedic", accept_licence=True, catalog={"captk-deepmedic": entry})
    assert _nothing_installed(models_root)
    # a re-run resumes: the verified index is not fetched again
    server.cut.clear()
    folder = hub.get_model("captk-deepmedic", accept_licence=True, catalog={"captk-deepmedic": entry})
    assert server.hits["/captk/model.ckpt.index"] == 1 and server.hits["/captk/model.ckpt.data-00000-of-00001"] == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(f.name for f in entry.files), hub.MANIFEST])
    assert registry.load_model("captk-deepmedic").spec.family == "deepmedic"
    assert registry.default_model() == "captk-deepmedic"  # held-out 0.806 > unet3d-default's CV 0.638


def test_deepmedic_checksum_mismatch_is_clear_and_installs_nothing(models_root: Path, server,
                                                                   deepmedic_dir: Path) -> None:
    serve_deepmedic(server, deepmedic_dir)
    server.files["/captk/modelConfig.txt"] += b"# tampered\n"
    entry = deepmedic_entry(server)
    with pytest.raises(ModelError, match="checksum mismatch.*modelConfig.txt"):
        hub.get_model("captk-deepmedic", accept_licence=True, catalog={"captk-deepmedic": entry})
    assert _nothing_installed(models_root)


def test_download_with_injected_sha_table_and_cancel(models_root: Path, server, deepmedic_dir: Path) -> None:
    serve_deepmedic(server, deepmedic_dir)
    server.stall["/captk/model.ckpt.index"] = 1.5
    entry = deepmedic_entry(server)
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(Cancelled):
        hub.get_model("captk-deepmedic", accept_licence=True, catalog={"captk-deepmedic": entry}, cancel=token)
    assert _nothing_installed(models_root)


def test_add_offline_from_the_published_deepmedic_folder(models_root: Path, deepmedic_dir: Path,
                                                         tmp_path: Path) -> None:
    with pytest.raises(hub.LicenceNotAccepted):
        hub.add_model(deepmedic_dir)
    assert _nothing_installed(models_root)
    folder = hub.add_model(deepmedic_dir, accept_licence=True)
    assert folder.name == "captk-deepmedic" and not (folder / "reference_predictions").exists()
    assert hub.read_manifest(folder)["dice"]["reported"]["evaluated_on"].startswith("12 shared BraTS 2018")
    # a copy with one file changed is refused, naming the file
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in hub.CATALOG["captk-deepmedic"].files:
        (bad / f.name).write_bytes((deepmedic_dir / f.name).read_bytes())
    (bad / "model.ckpt.index").write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="checksum mismatch.*model.ckpt.index"):
        hub.add_model(bad, accept_licence=True)
    hub.remove_model("captk-deepmedic")
    with pytest.raises(ModelError, match="not an installed model"):
        hub.remove_model("captk-deepmedic")


def test_add_offline_from_a_bundle_zip(models_root: Path, tmp_path: Path) -> None:
    data = bundle_zip()
    archive = tmp_path / f"{BUNDLE}_v0.3.7.zip"
    archive.write_bytes(data)
    catalog = {BUNDLE: replace(hub.CATALOG[BUNDLE], sha1=hashlib.sha1(data).hexdigest())}
    folder = hub.add_model(archive, accept_licence=True, catalog=catalog)
    assert folder.name == BUNDLE and hub.read_manifest(folder)["verified"] is True
    evil = tmp_path / "evil.zip"
    evil.write_bytes(bundle_zip(network_def={"_target_": "$print('x')"}))
    with pytest.raises(ModelError, match="refused"):
        hub.add_model(evil, accept_licence=True, catalog=catalog)
    assert hub.installed_models() == {BUNDLE: folder}
    assert [p.name for p in models_root.iterdir()] == [BUNDLE]


def test_best_model_ranking_rules() -> None:
    def info(name, family="unet3d", **dice):
        return {"name": name, "family": family, "source": name, "provenance": {"dice": dice}}

    cv = {"WT": 0.7, "TC": 0.6, "ET": 0.5}
    rep = {"WT": 0.9, "TC": 0.8, "ET": 0.7}
    infos = [info("cascade", "cascade", cross_validated=rep), info("none"), info("cv", cross_validated=cv)]
    assert registry.best_model(infos)["name"] == "cv"  # the cascade never; no record ranks last
    # a non-cross-validated figure can win; the record kind says what it is
    infos.append(info("rep", reported=rep, held_out=cv))
    assert registry.rank_score(infos[-1]) == (pytest.approx(0.6), "held_out")
    infos.append(info("rep2", reported=rep))
    assert registry.best_model(infos)["name"] == "rep2"
    assert registry.best_model([info("none")])["name"] == "none"
    assert registry.best_model([info("c", "cascade")]) is None
