"""napari-brats-seg: brain-tumour segmentation of multimodal MRI in napari.

Importing this package imports no napari, Qt or torch: the core lives in
:mod:`napari_brats_seg.core` and the napari adapters in ``_napari``.
"""

__version__ = "0.1.0"
