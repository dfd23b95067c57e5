"""The DICOM study part of the Load widget: the series, the sequence roles, *Prepare...*.

When the Load widget is given a folder that holds DICOM files and no NIfTI case,
:meth:`StudyPanel.discover` reads the headers in the background
(:func:`core.clinical.dicom.discover`) and shows:

- the series table (number, description, plane, size, spacing, flags; localizers, derived images and
  single slices are listed but can take no role);
- one combo box per role (T1, T1ce, T2, FLAIR), pre-set from :func:`core.clinical.roles.guess_roles`,
  each with the guess's reason and confidence; a role the headers cannot settle (low confidence,
  several candidates, none found) is highlighted "confirm" until the user picks a series;
- the output folder (default ``<study>_prepared/<study name>`` beside the study), the skull-strip
  method, *Prepare...* and *Cancel*.

*Prepare...* runs :func:`core.clinical.prepare.prepare` in a worker with the steps' progress; when it
succeeds :attr:`StudyPanel.prepared` is emitted with the case folder, which the Load widget opens as a
normal case. *Open DICOM-SEG...* reads a DICOM Segmentation of one of the study's series and shows it
(a locked labels layer) over that series (:meth:`StudyPanel.open_dicom_seg`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import CaseError
from ..notify import error, info
from ..worker import Task, start_task

ROLE_NAMES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
SERIES_COLUMNS = ("#", "Description", "Plane", "Size", "Spacing (mm)", "Flags")
SKULL_STRIP = ("auto", "hd-bet", "classical", "none")
NONE_ITEM = "(none)"
#: Longest reason shown beside a role (the whole reason is the label's tooltip).
REASON_CHARS = 90
CONFIRM_STYLE = "background-color: #7a5a00;"
#: SOP class of the DICOM Segmentation Storage objects.
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def default_output(study_root: str | Path) -> Path:
    """``<study>_prepared/<study name>`` beside the study folder."""
    root = Path(study_root).resolve()
    return root.parent / f"{root.name}_prepared" / root.name


def series_row(s: Any) -> list[str]:
    """The series table's cells for one :class:`~core.clinical.dicom.SeriesInfo`."""
    ps = s.frames[0].pixel_spacing if s.frames else None
    thick = s.slice_thickness
    spacing = (f"{ps[0]:.2f} x {ps[1]:.2f}" if ps else "?") + (f" x {thick:g}" if thick else "")
    return [str(s.number), s.description, s.plane_text(), f"{s.columns} x {s.rows} x {len(s.frames)}",
            spacing, ", ".join(s.flags)]


class StudyPanel(QWidget):
    """The series and roles of a DICOM study, and *Prepare...*.

    Public controls: ``series_table``, :meth:`role_combo` (data: series number), :meth:`reason_label`,
    ``output_edit``, ``output_button``, ``skull_strip_combo``, ``prepare_button``, ``cancel_button``,
    ``open_seg_button``, ``status``. :attr:`study` is the discovered study, :attr:`task` the running
    task (discovery, preparation or reading a DICOM-SEG), :attr:`record` the last prepare record.

    Signals
    -------
    prepared(case_dir)
        A case folder was written.
    """

    prepared = Signal(str)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.study: Any = None
        self.guess: Any = None
        self.task: Task | None = None
        self.record: dict | None = None
        self.last_seg_layer: Any = None

        self.series_table = QTableWidget(0, len(SERIES_COLUMNS))
        self.series_table.setHorizontalHeaderLabels(list(SERIES_COLUMNS))
        self.series_table.verticalHeader().setVisible(False)
        self.series_table.horizontalHeader().setStretchLastSection(True)
        self.series_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.series_table.setMinimumHeight(240)
        roles = QGridLayout()
        self._combos: dict[str, QComboBox] = {}
        self._reasons: dict[str, QLabel] = {}
        for row, (role, name) in enumerate(ROLE_NAMES.items()):
            combo, reason = QComboBox(), QLabel("")
            reason.setWordWrap(True)
            combo.currentIndexChanged.connect(lambda _i, r=role: self._on_role_changed(r))
            combo.activated.connect(lambda _i, r=role: self._on_role_changed(r))  # the same series, confirmed
            self._combos[role], self._reasons[role] = combo, reason
            roles.addWidget(QLabel(name), row, 0)
            roles.addWidget(combo, row, 1)
            roles.addWidget(reason, row, 2)
        roles.setColumnStretch(2, 1)
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("new case folder")
        self.output_button = QPushButton("...")
        self.skull_strip_combo = QComboBox()
        self.skull_strip_combo.addItems(SKULL_STRIP)
        self.prepare_button = QPushButton("Prepare...")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.open_seg_button = QPushButton("Open DICOM-SEG...")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        out = QHBoxLayout()
        out.addWidget(QLabel("Output"))
        out.addWidget(self.output_edit)
        out.addWidget(self.output_button)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Skull strip"))
        opts.addWidget(self.skull_strip_combo)
        opts.addWidget(self.prepare_button)
        opts.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("DICOM study: series"))
        lay.addWidget(self.series_table)
        lay.addWidget(QLabel("Sequence roles (confirm or change each)"))
        lay.addLayout(roles)
        lay.addLayout(out)
        lay.addLayout(opts)
        lay.addWidget(self.open_seg_button)
        lay.addWidget(self.status)

        self.output_button.clicked.connect(self._pick_output)
        self.prepare_button.clicked.connect(self.prepare)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_seg_button.clicked.connect(self._pick_seg)

    # -- discovery ---------------------------------------------------------------------------
    def role_combo(self, role: str) -> QComboBox:
        """The combo box choosing the series of ``role`` (``t1``, ``t1ce``, ``t2``, ``flair``)."""
        return self._combos[role]

    def reason_label(self, role: str) -> QLabel:
        """The label showing why ``role``'s series was chosen, and how sure."""
        return self._reasons[role]

    def discover(self, folder: str | Path, on_failure: Any = None) -> Task:
        """Read the study's headers in the background, then fill the table and the roles."""

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            from ...core.clinical.dicom import discover
            from ...core.clinical.roles import guess_roles

            study = discover(folder, on_progress=on_progress)
            return study, guess_roles(study)

        self.status.setText(f"Reading the DICOM headers of {folder}...")
        self.task = start_task(work, description="reading the DICOM study", wrap=CaseError,
                               notify_errors=False, on_success=self.show_study, on_done=self._done)
        if on_failure is not None:
            self.task.failed.connect(on_failure)
        return self.task

    def show_study(self, found: tuple[Any, Any]) -> None:
        """Fill the series table and the role combos from ``(study, guess)``."""
        self.study, self.guess = found
        series = self.study.series
        self.series_table.setRowCount(len(series))
        for r, s in enumerate(series):
            for c, text in enumerate(series_row(s)):
                self.series_table.setItem(r, c, QTableWidgetItem(text))
        self.series_table.resizeColumnsToContents()
        usable = self.study.image_series()
        for role, combo in self._combos.items():
            choice = self.guess.roles[role]
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(NONE_ITEM, None)
            for s in usable:
                combo.addItem(f"{s.number}  {s.description}", s.number)
            if choice.series is not None:
                combo.setCurrentIndex(combo.findData(choice.series.number))
            combo.blockSignals(False)
            self._show_reason(role, choice.reason, choice.confidence,
                              role in self.guess.needs_confirmation)
        self.output_edit.setText(str(default_output(self.study.root)))
        skipped = [s.number for s in series if s not in usable]
        self.status.setText(f"{len(series)} series" + (f"; not usable as a role: {', '.join(map(str, skipped))}"
                                                       if skipped else "") + ".")

    def _show_reason(self, role: str, reason: str, confidence: str, confirm: bool) -> None:
        label = self._reasons[role]
        text = f"{'confirm: ' if confirm else ''}{confidence}: {reason}"
        label.setText(text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3].rstrip() + "...")
        label.setToolTip(text)
        label.setStyleSheet(CONFIRM_STYLE if confirm else "")
        self._combos[role].setStyleSheet(CONFIRM_STYLE if confirm else "")

    def _on_role_changed(self, role: str) -> None:
        number = self._combos[role].currentData()
        if number is None:
            self._show_reason(role, "no series chosen", "none", True)
        else:
            self._show_reason(role, "chosen by the user", "user", False)

    def choose(self, role: str, number: int | None) -> None:
        """Choose (or confirm) series ``number`` for ``role``, as the user does in the menu."""
        combo = self._combos[role]
        i = combo.findData(number)
        if i < 0:
            raise ValueError(f"series {number} cannot be the {ROLE_NAMES[role]} (not in the menu)")
        combo.setCurrentIndex(i)
        self._on_role_changed(role)

    def roles(self) -> dict[str, int | None]:
        """The chosen series number of each role (None where none is chosen)."""
        return {role: combo.currentData() for role, combo in self._combos.items()}

    # -- prepare -----------------------------------------------------------------------------
    def _pick_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the prepared case")
        if folder:
            self.output_edit.setText(folder)

    def _check_roles(self) -> str | None:
        """What is wrong with the chosen roles, in words; None when they can be prepared."""
        chosen = self.roles()
        missing = [ROLE_NAMES[r] for r, n in chosen.items() if n is None]
        if missing:
            found = ", ".join(f"{s.number} ({s.description})" for s in self.study.image_series())
            return f"No series is chosen for {', '.join(missing)} (the study has: {found})."
        numbers = list(chosen.values())
        twice = sorted({n for n in numbers if numbers.count(n) > 1})
        if twice:
            return f"Series {', '.join(map(str, twice))} is chosen for two roles."
        return None

    def prepare(self) -> Task | None:
        """Prepare the study with the chosen roles in the background (None when it cannot start)."""
        if self.task is not None:
            return None
        if self.study is None:
            error("Open a DICOM study first.")
            return None
        problem = self._check_roles()
        out = self.output_edit.text().strip()
        if problem is None and not out:
            problem = "Choose an output folder."
        if problem is not None:
            error("The study cannot be prepared.", problem)
            self.status.setText(problem)
            return None
        root, roles, method = self.study.root, {r: str(n) for r, n in self.roles().items()}, \
            self.skull_strip_combo.currentText()

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            from ...core.clinical.prepare import prepare

            record = prepare(root, out, roles=roles, skull_strip=method, on_progress=on_progress, cancel=cancel)
            return out, record

        self._set_running(True)
        self.status.setText("Preparing...")
        self.task = start_task(work, description="preparing the study", wrap=CaseError,
                               on_success=self._on_prepared, on_done=self._done)
        self.task.progressed.connect(lambda d, t, m: self.status.setText(f"{d}/{t} {m}"))
        self.task.failed.connect(lambda exc: self.status.setText(f"Failed: {exc}"))
        self.task.cancelled.connect(lambda: self.status.setText("Cancelled: nothing was written."))
        return self.task

    def cancel(self) -> None:
        """Ask the running preparation to stop at its next step."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling...")

    def _set_running(self, running: bool) -> None:
        for w in (*self._combos.values(), self.output_edit, self.output_button, self.skull_strip_combo,
                  self.prepare_button, self.open_seg_button):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_prepared(self, result: tuple[str, dict]) -> None:
        out, self.record = result
        secs = sum(self.record.get("timings_s", {}).values())
        self.status.setText(f"Prepared into {out} in {secs:.0f} s.")
        self.prepared.emit(str(out))

    def _done(self) -> None:
        self.task = None
        self._set_running(False)

    # -- DICOM-SEG ---------------------------------------------------------------------------
    def _pick_seg(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "DICOM-SEG", "", "DICOM (*.dcm);;All files (*)")
        if path:
            self.open_dicom_seg(path)

    def open_dicom_seg(self, path: str | Path) -> Task | None:
        """Show a DICOM-SEG of one of the study's series over that series (in the background)."""
        if self.task is not None:
            return None
        if self.study is None:
            error("Open the DICOM study the segmentation belongs to first.")
            return None
        try:
            series = self._seg_series(Path(path))
        except CaseError as exc:
            error("This DICOM-SEG cannot be shown.", str(exc))
            return None
        from .clinical_layers import read_seg_layers

        self._set_running(True)
        self.task = start_task(lambda on_progress=None, cancel=None: read_seg_layers(path, series),
                               description="reading the DICOM-SEG", wrap=CaseError,
                               on_success=self._add_seg, on_done=self._done)
        return self.task

    def _seg_series(self, path: Path) -> Any:
        import pydicom

        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported by name
            raise CaseError(f"not a readable DICOM file ({type(exc).__name__})", path) from None
        if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
            raise CaseError("not a DICOM Segmentation object", path)
        refs = ds.get("ReferencedSeriesSequence") or []
        uid = str(refs[0].SeriesInstanceUID) if refs else ""
        hits = [s for s in self.study.series if s.uid == uid]
        if not hits:
            raise CaseError(f"it references series ...{uid[-12:]}, which is not in the open study "
                            f"{self.study.root}", path)
        return hits[0]

    def _add_seg(self, layer_data: list[tuple[Any, dict, str]]) -> None:
        from ._qt import add_layer_data

        layers = add_layer_data(self.viewer, layer_data)
        self.last_seg_layer = layers[-1]
        self.viewer.reset_view()
        info("DICOM-SEG opened.", f"'{self.last_seg_layer.name}' over '{layers[0].name}'")
