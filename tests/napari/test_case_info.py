"""Every layer made from a case carries that case's one CaseInfo; derived layers differ only by role."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from napari_brats_seg._napari.layers import LayerSource, case_layer_data, labels_layer_data, source_of
from napari_brats_seg._napari.reader import napari_get_reader
from napari_brats_seg.core.io import read_case


def test_case_layers_share_one_case_info(small_case_dir: Path) -> None:
    case = read_case(small_case_dir)
    layers = case_layer_data(case)
    sources = [source_of(kw["metadata"]) for _, kw, _ in layers]
    assert len(sources) == 5 and all(s.info is case.info for s in sources)
    assert [s.role for s in sources] == ["image"] * 4 + ["ground_truth"]
    gt = sources[-1]
    assert (gt.case_id, gt.layout, gt.scheme, gt.gt_path) == \
        (case.case_id, "brats2021", case.gt_scheme.name, str(case.gt_path))

    pred = replace(gt, role="prediction")  # how widgets derive a layer from a case's layer
    assert pred.info is gt.info and pred.role == "prediction"
    assert replace(pred, role="ground_truth") == gt
    _, kwargs, _ = labels_layer_data(case.ground_truth, pred, "prediction")
    assert source_of(kwargs["metadata"]).info is case.info


def test_reader_layers_share_one_case_info(small_case_dir: Path) -> None:
    layers = napari_get_reader(str(small_case_dir))(str(small_case_dir))
    infos = {id(source_of(kw["metadata"]).info) for _, kw, _ in layers}
    assert len(layers) == 5 and len(infos) == 1
    src = source_of(layers[0][1]["metadata"])
    assert LayerSource(info=src.info, role="uncertainty").geometry is src.geometry
