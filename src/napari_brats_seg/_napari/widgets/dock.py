"""The plugin's one dock: the legend on top, then the widgets as sections in workflow order.

Six tabbed docks in napari's narrow right-hand area cut their names to "Loa..."; a single scroll
area of collapsible sections (superqt's ``QCollapsible``) reads top to bottom in the order of
the work: Load (open), Segment, Correct, Score, Save, then Measure (RANO), Compare, Views and 3D. Each section holds the
same widget class that the manifest also offers on its own (Plugins > BraTS segmentation > Load,
...), so scripts and tests can use either. A *3D* toggle switches the canvas between the tumour
in 3D and the slice views.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

from .display import DisplayWidget
from .legend import LegendWidget
from .view3d import View3DWidget, show_2d

#: Sections: (attribute, title, module, class), in workflow order.
SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("load", "1. Load a case", "load", "LoadWidget"),
    ("segment", "2. Segment", "segment", "SegmentWidget"),
    ("correct", "3. Correct", "correct", "CorrectWidget"),
    ("score", "4. Score", "score", "ScoreWidget"),
    ("save", "5. Save", "save", "SaveWidget"),
    ("measure", "Measure (RANO)", "measure", "MeasureWidget"),
    ("compare", "Compare two time points", "compare", "CompareWidget"),
    ("display", "Views: orientation, planes, window", None, None),
    ("view3d", "3D rendering settings", None, None),
)
#: Width of the dock (fits the Score table's columns).
DOCK_WIDTH = 550


class WorkflowWidget(QWidget):
    """Legend, 3D toggle and the plugin's widgets as collapsible sections.

    Attributes
    ----------
    legend : LegendWidget
        Classes, colours and live volumes of the active labels layer.
    toggle_3d : QPushButton
        Checkable: the tumour in 3D, or back to the slice views.
    sections : dict
        Attribute name -> its ``QCollapsible``.
    load, segment, correct, score, save, measure, compare, display, view3d
        The section widgets (``LoadWidget``, ..., :class:`DisplayWidget`, :class:`View3DWidget`).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        import importlib

        self.viewer = napari_viewer
        self.legend = LegendWidget(napari_viewer)
        self.toggle_3d = QPushButton("3D view")
        self.toggle_3d.setCheckable(True)
        self.toggle_3d.setToolTip("Show the tumour in 3D over a faint brain; press again for the slices")
        self.sections: dict[str, QCollapsible] = {}
        body = QWidget()
        body_lay = QVBoxLayout(body)
        body_lay.setContentsMargins(2, 2, 2, 2)
        for attr, title, module, cls in SECTIONS:
            if module is not None:
                mod = importlib.import_module(f"{__package__}.{module}")
                widget = getattr(mod, cls)(napari_viewer)
            else:
                widget = DisplayWidget(napari_viewer) if attr == "display" else View3DWidget(napari_viewer)
            setattr(self, attr, widget)
            if widget.layout() is not None:  # the dock is narrow: no double margins
                widget.layout().setContentsMargins(0, 2, 0, 2)
            section = QCollapsible(title)
            section.setDuration(0)
            section.addWidget(widget)
            if section.content().layout() is not None:
                section.content().layout().setContentsMargins(4, 0, 0, 0)
            section.collapse(animate=False)
            body_lay.addWidget(section)
            self.sections[attr] = section
        body_lay.addStretch(1)
        self.sections["load"].expand(animate=False)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        top = QHBoxLayout()
        top.addWidget(self.toggle_3d)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.legend)
        lay.addLayout(top)
        lay.addWidget(scroll, 1)
        # as wide as the widest section needs: a narrower dock would scroll (or clip) sideways
        need = body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 8
        self.setMinimumWidth(max(DOCK_WIDTH, need))
        self.toggle_3d.toggled.connect(self._on_toggle_3d)
        napari_viewer.dims.events.ndisplay.connect(self._sync_toggle)

    def open_section(self, attr: str, only: bool = False) -> None:
        """Expand one section (and collapse the others when ``only``) and scroll to it."""
        for name, section in self.sections.items():
            if name == attr:
                section.expand(animate=False)
            elif only:
                section.collapse(animate=False)
        self.scroll.widget().adjustSize()
        self.scroll.verticalScrollBar().setValue(self.sections[attr].y())  # the section's title at the top
        self.scroll.horizontalScrollBar().setValue(0)  # never leave the sections scrolled sideways

    def _on_toggle_3d(self, on: bool) -> None:
        if on and self.viewer.dims.ndisplay != 3:
            self.view3d.show_3d()
        elif not on and self.viewer.dims.ndisplay == 3:
            show_2d(self.viewer)

    def _sync_toggle(self, _event: Any = None) -> None:
        self.toggle_3d.blockSignals(True)
        self.toggle_3d.setChecked(self.viewer.dims.ndisplay == 3)
        self.toggle_3d.blockSignals(False)
