"""Layers of clinical studies: a DICOM-SEG over its source series, the QC view of a prepared case.

Nothing here touches Qt widgets; :func:`read_seg_layers` runs in a worker thread and returns
layer-data tuples, the QC functions change layers on the GUI thread.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...core.case import CaseInfo
from ...core.geometry import Geometry
from ..layers import META_KEY, LayerSource, labels_layer_data, robust_limits, source_of, world_placement

#: Role of the QC layers (the brain-mask outline): not an image of the case, not a label map.
QC_ROLE = "qc"
#: Colours of the QC overlay: the fixed T1ce and the registered FLAIR, added.
QC_COLOURS = {"t1ce": "green", "flair": "magenta"}


def read_seg_layers(path: str | Path, series: Any) -> list[tuple[Any, dict, str]]:
    """A DICOM-SEG and its source series as layer data: the series (image), the SEG (locked labels).

    Both lie on the series' own grid; the series is read with its exact geometry
    (:func:`core.clinical.volume.read_series`), the SEG frame for frame
    (:func:`core.clinical.export.read_dicom_seg`).
    """
    from ...core.clinical.export import read_dicom_seg
    from ...core.clinical.volume import read_series

    img = read_series(series)
    geo = Geometry.from_image(img)
    arr = geo.to_internal(np.asarray(img.dataobj, np.float32))
    labels = geo.to_internal(read_dicom_seg(path, series))
    case_id = f"series {series.number}"
    info = CaseInfo(case_id=case_id, geometry=geo, layout="dicom", sources={"series": str(series.files[0].parent)},
                    gt_path=str(path))
    src = LayerSource(info=info, role="image")
    image = (arr, {"name": f"{series.description} [{case_id}]", "colormap": "gray",
                   "contrast_limits": robust_limits(arr), "metadata": {META_KEY: src}, **world_placement(geo)},
             "image")
    seg_src = replace(src, role="ground_truth")
    return [image, labels_layer_data(labels, seg_src, f"DICOM-SEG {Path(path).name} [{case_id}]")]


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """The in-plane outline of a ``(z, y, x)`` mask, slice by slice (1 on the edge, else 0)."""
    from scipy import ndimage as ndi

    mask = np.asarray(mask, bool)
    inner = ndi.binary_erosion(mask, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                        [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                        [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool)[1:2])
    return (mask & ~inner).astype(np.uint8)


def case_image_layers(viewer: Any, case_id: str) -> dict[str, Any]:
    """The image layers of ``case_id`` by modality."""
    out = {}
    for ly in viewer.layers:
        src = source_of(ly)
        if src is not None and src.case_id == case_id and src.role == "image" and src.modality:
            out[src.modality] = ly
    return out


def qc_layers(viewer: Any, case_id: str) -> list[Any]:
    """The QC layers of ``case_id`` in the viewer."""
    return [ly for ly in viewer.layers if (s := source_of(ly)) is not None and s.case_id == case_id
            and s.role == QC_ROLE]


def show_qc(viewer: Any, case_id: str) -> dict[str, tuple]:
    """Show the QC view: FLAIR (magenta) over T1ce (green) added, and the brain-mask outline (red).

    Returns what the sequences' display was (modality -> ``(colormap, blending, visible, opacity)``),
    for :func:`hide_qc`. The brain mask is where the prepared T1ce is non-zero (prepare sets the
    voxels outside the mask to zero).
    """
    layers = case_image_layers(viewer, case_id)
    before = {m: (ly.colormap.name, ly.blending, ly.visible, ly.opacity) for m, ly in layers.items()}
    for m, ly in layers.items():
        if m in QC_COLOURS:
            ly.colormap, ly.blending, ly.visible, ly.opacity = QC_COLOURS[m], "additive", True, 1.0
        else:
            ly.visible = False
    t1ce = layers.get("t1ce")
    if t1ce is not None and not qc_layers(viewer, case_id):
        src = source_of(t1ce)
        qc_src = LayerSource(info=src.info, role=QC_ROLE)
        viewer.add_image(mask_outline(np.asarray(t1ce.data) != 0), name=f"brain mask outline [{case_id}]",
                         colormap="red", blending="additive", contrast_limits=(0, 1),
                         metadata={META_KEY: qc_src}, **world_placement(src.geometry))
    for ly in qc_layers(viewer, case_id):
        ly.visible = True
    return before


def hide_qc(viewer: Any, case_id: str, before: dict[str, tuple]) -> None:
    """Undo :func:`show_qc`: the sequences as they were, the outline hidden."""
    layers = case_image_layers(viewer, case_id)
    for m, (cmap, blending, visible, opacity) in before.items():
        if m in layers:
            ly = layers[m]
            ly.colormap, ly.blending, ly.visible, ly.opacity = cmap, blending, visible, opacity
    for ly in qc_layers(viewer, case_id):
        ly.visible = False


def qc_text(record: dict[str, Any]) -> str:
    """The registration and brain-mask QC of a prepare record, in words."""
    qc = record.get("qc", {})
    method = record.get("skull_strip", {}).get("method", "?")
    lines = [f"Prepared case (prepare.json). Brain volume {qc.get('brain_volume_ml', '?')} mL ({method})."]
    lines.append("Registration to the T1ce, Mattes mutual information (lower is better):")
    for role, r in qc.get("registration", {}).items():
        lines.append(f"  {role.upper()}: {r['metric_before']:.3f} -> {r['metric_after']:.3f} "
                     f"(rotation {r['rotation_deg']:.1f} deg)")
    seq = record.get("sequences", {})
    src = ", ".join(f"{r.upper()} {s['series_number']}" for r, s in seq.items() if "series_number" in s)
    if src:
        lines.append(f"Source series: {src}.")
    return "\n".join(lines)
