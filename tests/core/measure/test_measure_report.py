"""The report: PDF pages rendered to PNG (poppler's pdftoppm) show what it lists; the HTML parses and is
self-contained; the planes are in radiological orientation; bad output paths are refused."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from napari_brats_seg.core.errors import CaseError, OutputExistsError
from napari_brats_seg.core.measure.figures import EDGE_LETTERS, plane
from napari_brats_seg.core.measure.report import LIMITS, build_report, render_html, write_report


@pytest.fixture(scope="module")
def report(real_crop_dir: Path):
    return build_report(real_crop_dir, model="tiny-unet@0123abcd")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        self._in_cell = tag in ("td", "th")

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)


def _has_colour(img: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.12) -> bool:
    return bool((np.abs(img[..., :3] - np.asarray(rgb)) < tol).all(axis=-1).sum() > 20)


def test_pdf_pages_show_what_the_report_lists(report, real_crop_dir: Path, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftoppm, pdftotext) missing: scripts/setup.sh installs it")
    out = tmp_path / "report.pdf"
    proc = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "report", str(real_crop_dir), "-o", str(out),
                           "--model", "tiny-unet@0123abcd"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(out), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    p1, p2 = (mpimg.imread(str(p)) for p in pages)
    assert _has_colour(p1, (0.0, 1.0, 1.0))                       # the cyan long-axis caliper
    assert _has_colour(p2, (1.0, 0.9, 0.1), 0.2) and _has_colour(p2, (0.15, 0.8, 0.2), 0.2)  # ET, ED
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    m = report.measurement
    assert "Crop_2013_11_1" in text and "tiny-unet@0123abcd" in text and "not recorded in the NIfTI files" in text
    assert f"{m.et.lesions[0].long_mm:.1f}" in text and f"{m.volumes_ml['WT']:.2f}" in text
    assert "SPD" in text and "RANO-LGG style" in text and "No earlier time point was given" in text.replace("\n", " ")


def test_html_is_self_contained_and_lists_the_tables(report, tmp_path: Path) -> None:
    out = write_report(report, tmp_path / "report.html")
    page = out.read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    p = _Collect()
    p.feed(page)
    assert len(p.imgs) == 2
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.shape[0] > 200 and img.shape[1] > 200
    m = report.measurement
    les = m.et.lesions[0]
    assert {f"{les.long_mm:.1f}", f"{les.perp_mm:.1f}", f"{les.product_mm2:.1f}", "target"} <= set(p.cells)
    assert {"NCR", "ED", "ET", "TC", "WT", f"{m.volumes_ml['ET']:.2f}"} <= set(p.cells)
    joined = " ".join(p.text)
    assert "Crop_2013_11_1" in joined and all(lim in joined for lim in LIMITS)
    assert render_html(report).count("<table>") == page.count("<table>") == 4


def test_radiological_orientation() -> None:
    """Internal (z, y, x) LPS: a voxel at the patient's right, anterior, superior corner."""
    vol = np.zeros((5, 6, 7), np.uint8)
    vol[4, 0, 0] = 1  # z max = superior, y 0 = anterior, x 0 = patient's right
    ax, cor, sag = plane(vol, "axial", 4), plane(vol, "coronal", 0), plane(vol, "sagittal", 0)
    assert ax[0, 0] == 1    # axial: anterior at the top, patient's right on the image's left
    assert cor[0, 0] == 1   # coronal: superior at the top, right on the left
    assert sag[0, 0] == 1   # sagittal: superior at the top, anterior on the left
    assert EDGE_LETTERS["axial"][:3] == ("R", "L", "A") and EDGE_LETTERS["sagittal"][0] == "A"


def test_refusals(report, real_crop_dir: Path, tmp_path: Path, make_case) -> None:
    out = write_report(report, tmp_path / "r.html")
    with pytest.raises(OutputExistsError, match="exists"):
        write_report(report, out)
    write_report(report, out, overwrite=True)
    with pytest.raises(CaseError, match=".pdf or .html"):
        write_report(report, tmp_path / "r.docx")
    seg = next(real_crop_dir.glob("*_seg.nii.gz"))
    before = seg.read_bytes()
    with pytest.raises(CaseError, match=".pdf or .html"):  # a report never lands on the labels
        write_report(report, seg, overwrite=True)
    assert seg.read_bytes() == before
    with pytest.raises(CaseError, match="no label map"):
        build_report(make_case(name="NoSeg_1", seg_values=None))


def test_a_model_name_is_reported_with_the_hash_of_its_weights(real_crop_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from napari_brats_seg.core.models.registry import shipped_models

    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", "report", str(real_crop_dir), "-o", str(out),
                           "--model", "unet3d-default"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with safe_open(str(shipped_models()["unet3d-default"]), framework="pt") as fh:
        digest = fh.metadata()["weights_sha256"][:16]  # the hash the file records (and load verifies)
    assert f"unet3d-default (unet3d), weights sha256 {digest}" in out.read_text()
