"""Clinical measurement of a label map: RANO bidimensional diameters, SPD, volumes (napari-free).

:func:`measure_file` / :func:`measure_labels` give a :class:`CaseMeasurement`; :mod:`.chords` holds
the 2D geometry (long axis, perpendicular), :mod:`.rano` the per-lesion rules, :mod:`.volumes` the
volumes, :mod:`.report` the PDF/HTML report.
"""

from .chords import PERP_TOLERANCE_DEG, Chord, chord_length_mm
from .measurement import FRAME, CaseMeasurement, describe_plane, measure_file, measure_labels
from .rano import (
    MAX_TARGETS,
    MIN_DIAMETER_MM,
    LesionMeasurement,
    RegionMeasurement,
    measurability,
    measure_region,
    measure_slice,
    min_diameter_mm,
)
from .volumes import VOLUME_KEYS, count_lesions, volumes_ml

__all__ = [
    "FRAME", "MAX_TARGETS", "MIN_DIAMETER_MM", "PERP_TOLERANCE_DEG", "VOLUME_KEYS", "CaseMeasurement", "Chord",
    "LesionMeasurement", "RegionMeasurement", "chord_length_mm", "count_lesions", "describe_plane",
    "measurability", "measure_file", "measure_labels", "measure_region", "measure_slice", "min_diameter_mm",
    "volumes_ml",
]
