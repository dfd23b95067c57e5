"""Publishers' pretrained models in the user's models folder: get, add (offline), list, remove.

The folder is ``platformdirs.user_data_dir("napari-brats-seg")/models``, or ``$BRATS_SEG_MODELS_DIR``.
Each installed model is a sub-folder holding the publisher's files and ``brats-seg-model.json`` (its
manifest: source, licence and when it was accepted, sha256 of every file, Dice figures).

Installs are atomic. Files are fetched into ``.partial-<name>/`` beside the target (MONAI's
downloaders: :func:`monai.bundle.download` for bundles, :func:`monai.apps.utils.download_url` with the
pinned sha256 for CaPTk's files; each puts a file in place only once it is complete and verified),
checked, loaded once with the project's loader (:func:`~.registry.load_model`, which refuses a bundle
whose network is code), and only then renamed to ``<name>/``. An interrupted or failed download leaves
no installed model; running the same command again resumes (verified files are kept) or restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import BratsSegError, ModelError
from ..progress import CancelToken, ProgressCallback, check, report
from .hub_catalog import CATALOG, HubModel

ENV_DIR = "BRATS_SEG_MODELS_DIR"
MANIFEST = "brats-seg-model.json"
PARTIAL = ".partial-"


class LicenceNotAccepted(ModelError):
    """A model's licence must be accepted before it is installed (``--accept-licence``)."""

    def __init__(self, entry: HubModel) -> None:
        self.entry = entry
        super().__init__(f"{entry.name}: its licence must be accepted first (--accept-licence, or the dialog "
                         f"in napari):\n{entry.licence}\n{entry.licence_url}")


def models_dir() -> Path:
    """The user's models folder (``$BRATS_SEG_MODELS_DIR`` or the platform's user data folder)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-brats-seg")) / "models"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha1_of(path: Path) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an installed model folder ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def installed_models(root: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every installed model (folders with a manifest; partial ones are skipped)."""
    root = models_dir() if root is None else Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()}


def remove_model(name: str, root: Path | None = None) -> Path:
    """Uninstall ``name`` (renamed away first, so a half-removed model is never listed)."""
    root = models_dir() if root is None else Path(root)
    folder = root / name
    if not (folder / MANIFEST).is_file():
        have = ", ".join(installed_models(root)) or "none"
        raise ModelError(f"{name!r} is not an installed model (installed in {root}: {have})")
    trash = root / f".removing-{name}-{uuid.uuid4().hex[:8]}"
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return folder


# -- running a blocking download so that a cancel is answered at once ------------------------------
def _cancellable(fn: Callable[[], Any], cancel: CancelToken | None) -> Any:
    """Run ``fn`` in a helper thread; raise :class:`Cancelled` as soon as ``cancel`` is set.

    A cancelled download keeps running in its (daemon) thread into the partial folder, where only
    complete, verified files ever land, and is abandoned.
    """
    if cancel is None:
        return fn()
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True, name="brats-seg-download")
    t.start()
    while t.is_alive():
        t.join(0.05)
        check(cancel)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _download_error(url: str, exc: BaseException) -> ModelError:
    from monai.apps.utils import HashCheckError

    if isinstance(exc, HashCheckError):
        return ModelError(f"checksum mismatch for {url}: the downloaded file is not the pinned one "
                          f"({str(exc).split(', The file')[0]}); nothing was installed")
    return ModelError(f"download of {url} failed ({type(exc).__name__}: {exc}); nothing was installed; "
                      "run the same command again to resume")


def _fetch_deepmedic(entry: HubModel, staging: Path, progress: bool, on_progress: ProgressCallback | None,
                     cancel: CancelToken | None) -> Path:
    from monai.apps.utils import download_url

    staging.mkdir(parents=True, exist_ok=True)
    n = len(entry.files) + 1
    for i, f in enumerate(entry.files):
        check(cancel)
        report(on_progress, i, n, f"downloading {f.name}")
        path, url = staging / f.name, f"{entry.url.rstrip('/')}/{f.name}"
        if path.exists() and sha256_of(path) != f.sha256:
            path.unlink()  # not the pinned file: fetch it again
        if path.exists():
            continue  # a verified file of an earlier, interrupted run
        try:
            _cancellable(lambda url=url, path=path, f=f: download_url(
                url, path, hash_val=f.sha256, hash_type="sha256", progress=progress), cancel)
        except BratsSegError:  # Cancelled
            raise
        except Exception as exc:  # noqa: BLE001 - URLError, IncompleteRead, HashCheckError, OSError, ...
            raise _download_error(url, exc) from None
        if not path.is_file():  # MONAI's download_url swallows permission errors
            raise ModelError(f"download of {url} to {path} failed (no file written); nothing was installed")
    return staging


def _fetch_bundle(entry: HubModel, staging: Path, progress: bool, cancel: CancelToken | None) -> Path:
    from monai.bundle import download

    staging.mkdir(parents=True, exist_ok=True)
    archive, folder = staging / f"{entry.bundle_name}.zip", staging / entry.bundle_name
    if archive.exists() and (not zipfile.is_zipfile(archive) or (entry.sha1 and _sha1_of(archive) != entry.sha1)):
        archive.unlink()
    shutil.rmtree(folder, ignore_errors=True)  # always extracted afresh
    try:
        _cancellable(lambda: download(name=entry.bundle_name, bundle_dir=str(staging), url=entry.url,
                                      progress=progress), cancel)
    except BratsSegError:  # Cancelled
        raise
    except Exception as exc:  # noqa: BLE001 - URLError, IncompleteRead, BadZipFile, OSError, ...
        archive.unlink(missing_ok=True)
        raise _download_error(entry.url, exc) from None
    if entry.sha1 and archive.is_file() and _sha1_of(archive) != entry.sha1:
        got = _sha1_of(archive)
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(f"checksum mismatch for {entry.url}: sha1 {got}, the publisher lists {entry.sha1}; "
                         "nothing was installed")
    if not (folder / "configs").is_dir():
        raise ModelError(f"{entry.url}: the archive holds no {entry.bundle_name}/configs folder; nothing was "
                         "installed")
    return folder


def _validate(folder: Path) -> Any:
    """Load the model once with the project's loader (refuses code in bundles, bad weights...)."""
    from .registry import load_model

    try:
        return load_model(folder)
    except ModelError as exc:
        raise ModelError(f"refused: {exc}; nothing was installed") from None


def _bundle_dice(folder: Path) -> dict[str, Any]:
    """The publisher's validation Dice from a bundle's ``metadata.json`` ``eval_metrics``."""
    try:
        metrics = json.loads((folder / "configs" / "metadata.json").read_text()).get("eval_metrics") or {}
    except (OSError, ValueError):
        return {}
    found = {}
    for region in ("WT", "TC", "ET"):
        for key in (f"val_mean_dice_{region.lower()}", f"mean_dice_{region.lower()}"):
            if isinstance(metrics.get(key), (int, float)):
                found[region] = float(metrics[key])
                break
    if len(found) < 3:
        return {}
    return {"reported": {**found, "evaluated_on": "the publisher's own validation split of BraTS 2018 "
                                                  "(metadata.json eval_metrics; not measured by this project)",
                         "cross_validated": False}}


def _commit(content: Path, root: Path, name: str, manifest: dict[str, Any]) -> Path:
    """Write the manifest into ``content`` and rename it to ``root/name`` (replacing an old install)."""
    files = {str(p.relative_to(content)): sha256_of(p) for p in sorted(content.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    manifest = {**manifest, "files": files, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (content / MANIFEST).write_text(json.dumps(manifest, indent=2))
    target = root / name
    old = None
    if target.exists():
        old = root / f".removing-{name}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(content, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _manifest(entry: HubModel, source: str, verified: bool, dice: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": 1, "name": entry.name, "kind": entry.kind, "title": entry.title,
            "publisher": entry.publisher, "version": entry.version, "source": source, "verified": verified,
            "licence": entry.licence, "licence_url": entry.licence_url,
            "licence_accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dice": dict(dice)}


def get_model(name: str, *, accept_licence: bool = False, root: Path | None = None,
              catalog: Mapping[str, HubModel] | None = None, progress: bool = False,
              on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Download and install a publisher's model (see :data:`~.hub_catalog.CATALOG`).

    Parameters
    ----------
    name
        A catalog name (``captk-deepmedic``, ``brats_mri_segmentation``).
    accept_licence
        Must be True: the caller has shown the licence (``entry.licence``) and the user accepted it.
    root
        Models folder (default :func:`models_dir`).
    catalog
        The catalog to use (tests point it at a local server).
    progress
        Let MONAI's downloaders print their byte progress bar (tqdm, stderr).
    on_progress, cancel
        Step progress (files) and cancellation, answered at once even mid-file.

    Returns
    -------
    Path
        The installed folder.

    Raises
    ------
    LicenceNotAccepted, ModelError, Cancelled
        Nothing is installed in any of these cases.
    """
    catalog = CATALOG if catalog is None else catalog
    if name not in catalog:
        raise ModelError(f"{name!r} is not a model that can be downloaded; known: {', '.join(catalog)}")
    entry = catalog[name]
    if not accept_licence:
        raise LicenceNotAccepted(entry)
    root = models_dir() if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{PARTIAL}{name}"
    try:
        if entry.kind == "deepmedic":
            folder, dice = _fetch_deepmedic(entry, staging / "files", progress, on_progress, cancel), entry.dice
        elif entry.kind == "bundle":
            report(on_progress, 0, 2, f"downloading {entry.bundle_name}")
            folder = _fetch_bundle(entry, staging, progress, cancel)
            dice = entry.dice or _bundle_dice(folder)
        else:
            raise ModelError(f"{name}: unknown kind {entry.kind!r}")
    except BratsSegError:
        if staging.is_dir() and not any(p.is_file() for p in staging.rglob("*")):
            shutil.rmtree(staging, ignore_errors=True)  # nothing worth resuming
        raise
    check(cancel)
    total = len(entry.files) + 1 if entry.kind == "deepmedic" else 2
    report(on_progress, total - 1, total, "checking")
    try:
        _validate(folder)
    except ModelError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    target = _commit(folder, root, name, _manifest(entry, entry.url, True, dice))
    shutil.rmtree(staging, ignore_errors=True)
    report(on_progress, total, total, f"installed {name}")
    return target


def _find_model_folder(top: Path) -> Path:
    """The bundle or DeepMedic folder at or below ``top``."""
    from .registry import _is_bundle, _is_captk_deepmedic

    for d in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
        if _is_bundle(d) or _is_captk_deepmedic(d):
            return d
    raise ModelError(f"{top}: holds neither a MONAI bundle (configs/metadata.json, configs/inference.json) nor "
                     "CaPTk's DeepMedic files (model.ckpt.index, model.ckpt.data-*, modelConfig.txt)")


def _match_deepmedic(folder: Path, catalog: Mapping[str, HubModel]) -> HubModel:
    """The catalog entry whose pinned files all match ``folder``'s (else a ModelError naming them)."""
    problems = []
    for entry in (e for e in catalog.values() if e.kind == "deepmedic"):
        bad = []
        for f in entry.files:
            p = folder / f.name
            if not p.is_file():
                bad.append(f"{f.name} missing")
            elif (got := sha256_of(p)) != f.sha256:
                bad.append(f"{f.name} sha256 {got}, expected {f.sha256}")
        if not bad:
            return entry
        problems.append(f"{entry.name}: {'; '.join(bad)}")
    raise ModelError(f"{folder}: checksum mismatch, not the published DeepMedic files ({' | '.join(problems)}); "
                     "nothing was installed")


def add_model(path: str | os.PathLike, *, accept_licence: bool = False, root: Path | None = None,
              catalog: Mapping[str, HubModel] | None = None) -> Path:
    """Install a publisher's model from a downloaded folder or zip (offline), with the same checks.

    A DeepMedic folder must hold the pinned files (sha256); a bundle (folder or zip) is loaded with
    the project's loader, and a zip whose sha1 is the publisher's is recorded as verified.

    Raises
    ------
    LicenceNotAccepted, ModelError
        Nothing is installed in either case.
    """
    from .registry import _is_bundle

    catalog = CATALOG if catalog is None else catalog
    src = Path(path).expanduser()
    if not src.exists():
        raise ModelError(f"{src}: no such file or folder")
    root = models_dir() if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{PARTIAL}add-{uuid.uuid4().hex[:8]}"
    try:
        unpacked = staging / "unpacked"
        if src.is_file():
            if not zipfile.is_zipfile(src):
                raise ModelError(f"{src}: not a zip archive or a model folder")
            from monai.apps.utils import extractall

            extractall(src, unpacked, has_base=False)  # MONAI's extraction refuses paths leaving the folder
        found = _find_model_folder(unpacked if src.is_file() else src)
        content = staging / "content"
        if _is_bundle(found):
            shutil.copytree(found, content, copy_function=shutil.copyfile)
            bundle_name = found.name if found != unpacked else src.stem.split("_v")[0]
            entry = next((e for e in catalog.values() if e.kind == "bundle" and e.bundle_name == bundle_name),
                         None)
            verified = bool(entry and entry.sha1 and src.is_file() and _sha1_of(src) == entry.sha1)
            if entry is None:
                entry = HubModel(name=bundle_name, kind="bundle", title=f"MONAI bundle {bundle_name}",
                                 publisher="unknown (added from a file)", licence=_bundle_licence(found),
                                 licence_url="", url="", bundle_name=bundle_name)
            dice = entry.dice or _bundle_dice(content)
        else:
            entry = _match_deepmedic(found, catalog)
            content.mkdir(parents=True)
            for f in entry.files:
                shutil.copyfile(found / f.name, content / f.name)
            verified, dice = True, entry.dice
        if not accept_licence:
            raise LicenceNotAccepted(entry)
        _validate(content)
        return _commit(content, root, entry.name, _manifest(entry, str(src), verified, dice))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _bundle_licence(folder: Path) -> str:
    for rel in ("docs/license.txt", "LICENSE", "docs/data_license.txt"):
        p = folder / rel
        if p.is_file():
            return p.read_text(errors="replace")[:4000]
    return "No licence file in the bundle; check its publisher's terms before use."
