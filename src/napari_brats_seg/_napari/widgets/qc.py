"""The QC part of the Load widget for a prepared case: registration numbers and the QC view.

Shown when the case just loaded has a ``prepare.json`` (written by ``brats-seg prepare`` or the
Load widget's *Prepare...*): the brain volume, the mutual information before/after registration of
each sequence to the T1ce, and a *QC view* toggle that shows the registered FLAIR (magenta) over the
T1ce (green), added, with the brain-mask outline in red (:func:`.clinical_layers.show_qc`): grey
where the two agree, coloured fringes where they do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from ...core.errors import CaseError
from .clinical_layers import hide_qc, qc_text, show_qc


def record_of(case_dir: str | Path | None) -> dict | None:
    """The prepare record of a case folder; None for any other case (or an unreadable record)."""
    if case_dir is None:
        return None
    from ...core.clinical.prepare import read_record

    try:
        return read_record(case_dir)
    except CaseError:
        return None


class QCPanel(QWidget):
    """Registration QC of a prepared case and the *QC view* toggle.

    Public controls: ``qc_toggle``, ``qc_label``; :attr:`case_id` and :attr:`record` of the case shown.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.case_id: str | None = None
        self.record: dict | None = None
        self._before: dict[str, tuple] | None = None
        self.qc_label = QLabel("")
        self.qc_label.setWordWrap(True)
        self.qc_toggle = QCheckBox("QC view: FLAIR (magenta) over T1ce (green), brain-mask outline")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.qc_label)
        lay.addWidget(self.qc_toggle)
        self.qc_toggle.toggled.connect(self._on_toggled)
        self.setVisible(False)

    def set_case(self, case_id: str, case_dir: str | Path | None) -> bool:
        """Show the QC of ``case_id`` when ``case_dir`` is a prepared case; returns whether it is."""
        self.qc_toggle.setChecked(False)
        self.record = record_of(case_dir)
        self.case_id = case_id if self.record is not None else None
        self._before = None
        if self.record is not None:
            self.qc_label.setText(qc_text(self.record))
        self.setVisible(self.record is not None)
        return self.record is not None

    def _on_toggled(self, on: bool) -> None:
        if self.case_id is None:
            return
        if on:
            self._before = show_qc(self.viewer, self.case_id)
        elif self._before is not None:
            hide_qc(self.viewer, self.case_id, self._before)
            self._before = None
