"""The publishers' pretrained models that ``brats-seg models get`` can install (pinned sources).

Each :class:`HubModel` names where its files are published, pinned (a release file or a repository
commit), how they are checked (sha256 per file, or the publisher's own sha1 of a bundle archive), its
licence, and the Dice figures known for it (the ``dice`` record of
:func:`~napari_brats_seg.core.models.registry.dice_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PinnedFile:
    """One published file and its sha256 (of the published bytes)."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class HubModel:
    """A publisher's model that can be installed into the user's models folder.

    Attributes
    ----------
    name
        The name it is installed under (``brats-seg segment --model NAME``).
    kind
        ``"bundle"`` (a MONAI bundle zip, fetched with ``monai.bundle.download``) or
        ``"deepmedic"`` (CaPTk's TensorFlow checkpoint files, each checked against ``files``).
    url
        Bundle: the archive's URL. DeepMedic: the folder URL the file names are appended to.
    files
        DeepMedic: the files with their pinned sha256.
    sha1
        Bundle: the archive's sha1 as its publisher lists it (``models/model_info.json`` of the
        MONAI model zoo), or None.
    bundle_name
        Bundle: the archive's top folder.
    """

    name: str
    kind: str
    title: str
    publisher: str
    licence: str
    licence_url: str
    url: str
    files: tuple[PinnedFile, ...] = ()
    sha1: str | None = None
    bundle_name: str = ""
    version: str = ""
    dice: dict[str, Any] = field(default_factory=dict)


#: CaPTk commit the DeepMedic files are fetched at. The sha256s below are those of the published
#: files (computed from a copy of CBICA/CaPTk data/deepMedic/saved_models/brainTumorSegmentation/).
CAPTK_COMMIT = "0861cd3fe2a39623a7c103f609cf2cab59fe2305"
CAPTK_FOLDER = "data/deepMedic/saved_models/brainTumorSegmentation"

CAPTK_LICENCE = (
    "CaPTk's DeepMedic brain-tumour model (CBICA, University of Pennsylvania). CaPTk states that its "
    "constituents are under the CBICA Software License: "
    "https://www.med.upenn.edu/cbica/software-agreement.html (the DeepMedic code itself, "
    "github.com/deepmedic/deepmedic, is BSD-3-Clause). The weights are downloaded from CaPTk's public "
    "repository for your own use under CaPTk's terms; napari-brats-seg does not redistribute them, and you "
    "must not redistribute them with your own software."
)

MONAI_LICENCE = (
    "MONAI model zoo bundle brats_mri_segmentation (MONAI Consortium): code and weights under the Apache "
    "License 2.0 (https://www.apache.org/licenses/LICENSE-2.0); trained on BraTS 2018 data, whose terms "
    "(research use, citing Menze et al. IEEE TMI 2015 and Bakas et al. Sci Data 2017) come with the bundle "
    "in docs/data_license.txt. Its metadata says: \"This is an example, not to be used for diagnostic "
    "purposes\"."
)

CATALOG: dict[str, HubModel] = {
    "captk-deepmedic": HubModel(
        name="captk-deepmedic",
        kind="deepmedic",
        title="DeepMedic (Kamnitsas et al. 2017), trained by CBICA on 587 BraTS high-grade gliomas",
        publisher=f"CaPTk (github.com/CBICA/CaPTk, commit {CAPTK_COMMIT[:12]}, {CAPTK_FOLDER})",
        licence=CAPTK_LICENCE,
        licence_url="https://www.med.upenn.edu/cbica/software-agreement.html",
        url=f"https://raw.githubusercontent.com/CBICA/CaPTk/{CAPTK_COMMIT}/{CAPTK_FOLDER}",
        files=(
            PinnedFile("model.ckpt.index", "dc399961227a805c71575cf7e132466950451e46d00ec6031d89abd586d75aec",
                       12060),
            PinnedFile("model.ckpt.data-00000-of-00001",
                       "4319c7d560799b3a553ddc5ee5f83ab2ed6ccd091a343bbfadd1be88910c1132", 3938024),
            PinnedFile("modelConfig.txt", "557ab8ed7a69665931d5881246becfc0d6fb04d4679e561cccefefcc9b89e46e",
                       7312),
        ),
        version="dm1Sc3Thin3Seg40_gt4C_HGG587_forCaPTk124",
        dice={
            "reported": {
                "WT": 0.919, "TC": 0.817, "ET": 0.744,
                "evaluated_on": "12 shared BraTS 2018 cases (possibly in its training set)",
                "how": "the original DeepMedic 0.8.4 with these weights, scored against the expert labels",
                "cross_validated": False,
            },
            "held_out": {
                "WT": 0.905, "TC": 0.773, "ET": 0.740,
                "evaluated_on": "real BraTS cases outside the 12 shared ones, segmented by the project's "
                                "port (issue #14); whether they were among its 587 training cases is unknown",
                "cross_validated": False,
            },
        },
    ),
    "brats_mri_segmentation": HubModel(
        name="brats_mri_segmentation",
        kind="bundle",
        title="SegResNet (Myronenko 2018), MONAI model zoo bundle, trained on BraTS 2018",
        publisher="MONAI model zoo (github.com/Project-MONAI/model-zoo, release hosting_storage_v1)",
        licence=MONAI_LICENCE,
        licence_url="https://www.apache.org/licenses/LICENSE-2.0",
        url="https://github.com/Project-MONAI/model-zoo/releases/download/hosting_storage_v1/"
            "brats_mri_segmentation_v0.3.7.zip",
        sha1="9b0d6f5944dbc895051978f296589a8f789891ab",
        bundle_name="brats_mri_segmentation",
        version="0.3.7",
        # figures: the bundle's own metadata (eval_metrics), read when it is installed
    ),
}
