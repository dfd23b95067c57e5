"""Shared fixtures: paths to the real data in ../shared, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BRATS2018 = SHARED / "data" / "brats2018"
BRATS2023 = SHARED / "data" / "brats2023-nogt"
DEEPMEDIC = SHARED / "models" / "captk-deepmedic"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the real test data in ../shared must sit beside the checkout")
    return path


@pytest.fixture(scope="session")
def brats2018_dir() -> Path:
    """Folder of the 12 real BraTS 2018 cases."""
    return _need(BRATS2018)


@pytest.fixture(scope="session")
def real_case_dir(brats2018_dir: Path) -> Path:
    """One real BraTS 2018 case folder with ground truth."""
    return brats2018_dir / "Brats18_2013_11_1"


@pytest.fixture(scope="session")
def brats2023_case_dir() -> Path:
    """The real BraTS 2023-named case (no ground truth)."""
    return _need(BRATS2023 / "BraTS-GLI-00001-000")


@pytest.fixture(scope="session")
def deepmedic_dir() -> Path:
    """The CaPTk DeepMedic model folder."""
    return _need(DEEPMEDIC)


@pytest.fixture(autouse=True)
def _own_models_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the user's installed models (``brats-seg models get``): an empty folder each."""
    monkeypatch.setenv("BRATS_SEG_MODELS_DIR", str(tmp_path_factory.mktemp("installed-models")))


@pytest.fixture(autouse=True)
def _torch_runtime_only(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime exports go to a temporary cache, and ``runtime="auto"`` runs torch on every CPU, so that the
    suite computes the same numbers everywhere; tests/core/test_runtimes.py lifts the restriction."""
    monkeypatch.setenv("BRATS_SEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "runtime-cache"))
    monkeypatch.setenv("BRATS_SEG_RUNTIMES", "torch")


@pytest.fixture(scope="session")
def dicom_study_dir() -> Path:
    """The real clinical DICOM study (8 series, as it left the scanner)."""
    return _need(SHARED / "data" / "dicom-study" / "patient1")
