"""Correction tools of the Correct widget, napari-free: label maps in, label maps out.

Every tool takes an internal-class label map ``(z, y, x)`` (see :mod:`..labels`) and returns a new
one (the input is never modified); distances are in millimetres and honour the voxel ``spacing``
(``(z, y, x)`` mm). Work is restricted to a bounding box around what the tool touches, so a tool on
a tumour costs the tumour's size, not the case's.

Modules, one concern each:

- :mod:`.components`: keep, delete or relabel the 3D connected component under a point;
- :mod:`.margins`: grow/shrink a class by N mm, smoothing (closing, opening, median) in mm;
- :mod:`.interpolate`: fill the slices between outlined slices;
- :mod:`.redraw`: replace a region by outlines drawn on a few slices (interpolated between them);
- :mod:`.grow`: grow a label map from seed strokes with a random walker on the four sequences;
- :mod:`.masks`: intensity-limited brush and fill;
- :mod:`.enhancement`: split the core into enhancing tumour and necrosis by a T1ce threshold;
- :mod:`.logic`: copy, union, subtract, intersect between two label maps of one grid.

A tool used wrongly raises :class:`EditError` and changes nothing.
"""

from ._common import EditError

__all__ = ["EditError"]
