"""Load widget: pick a case folder or files, check which file is which sequence, check the geometry,
then add the case's layers.

Flow: *Folder...* / *Files...* (or type a path and press *Inspect*) -> the table shows the file taken
for each sequence (T1, T1ce, T2, FLAIR, segmentation); each row's combo box lets the user pick another
NIfTI file of the folder -> the geometry line says whether shapes, affines and spacing agree (read from
the headers only) -> *Load* reads the case in the background and adds four image layers plus the
ground truth.

A folder of DICOM files (no NIfTI case) is read as a clinical study: the series table, the sequence
roles and *Prepare...* (:mod:`.study`); the prepared case then opens here like any case, with its
registration QC and a QC view (:mod:`.qc`).

One case at a time: loading another case closes the open one (it asks first when that case has
unsaved edits or results: close anyway, keep it hidden, or cancel), unless *Keep other cases open
(compare)* is ticked. A ground truth is opened as a locked reference (:mod:`..session`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nib
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.case import MODALITIES, MODALITY_NAMES
from ...core.errors import BratsSegError, CaseError
from ...core.geometry import Geometry
from ...core.io import AFFINE_ATOL, CaseFiles, find_case_files, is_nifti_name, read_case
from .. import gcpause
from ..layers import case_ids, case_layer_data, make_layer
from ..notify import error
from ..session import Session
from ..worker import Task, run_steps, start_task
from .qc import QCPanel
from .study import StudyPanel

#: Table rows: role -> label.
ROLES: dict[str, str] = {**{m: MODALITY_NAMES[m] for m in MODALITIES}, "seg": "Segmentation"}
NONE_ITEM = "(none)"


def geometry_check(files: CaseFiles) -> tuple[bool, str]:
    """Compare the headers of a case's files: ``(ok, message)``; reads no voxel data."""
    if files.msd_file is not None:
        paths = {"image (4D)": files.msd_file}
    else:
        paths = {MODALITY_NAMES[m]: p for m, p in files.images.items()}
    if files.seg is not None:
        paths["segmentation"] = files.seg
    ref_name, ref = None, None
    problems: list[str] = []
    reordered: list[str] = []
    for name, p in paths.items():
        try:
            geo = Geometry.from_image(nib.load(str(p)))
        except Exception as exc:  # noqa: BLE001 - any unreadable header is reported, not raised
            problems.append(f"{name}: unreadable ({exc.__class__.__name__})")
            continue
        if ref is None:
            ref_name, ref = name, geo
            continue
        why = ref.grid_difference(geo, AFFINE_ATOL)  # as the reader: another voxel order is fine
        if why:
            problems.append(f"{name} vs {ref_name}: {why}")
        elif ref.agrees_with(geo, AFFINE_ATOL):
            reordered.append(f"{name} ({''.join(geo.axcodes)})")
    if problems:
        return False, "Geometry differs: " + "; ".join(problems)
    if ref is None:
        return False, "no files"
    sp = ", ".join(f"{z:g}" for z in ref.zooms)
    note = (f"; stored in another voxel order on the same grid, reordered exactly when read: "
            f"{', '.join(reordered)}" if reordered else "")
    return True, (f"Geometry OK: {len(paths)} files agree: shape {ref.shape}, spacing ({sp}) mm, "
                  f"orientation {''.join(ref.axcodes)}{' (oblique)' if ref.is_oblique else ''}{note}")


class LoadWidget(QWidget):
    """Dock widget that loads a case into the viewer.

    Public controls: ``path_edit``, ``folder_button``, ``files_button``, ``inspect_button``,
    ``table`` (one combo box per role: :meth:`role_combo`), ``geometry_label``, ``compare``,
    ``load_button``; ``study_panel`` (:class:`.study.StudyPanel`, a DICOM study) and ``qc_panel``
    (:class:`.qc.QCPanel`, a prepared case).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.files: CaseFiles | None = None
        self.task: Task | None = None
        self.geometry_ok = False
        self.session = Session.for_viewer(napari_viewer)
        self._others: dict[str, str] = {}  # open cases -> "close" or "hide", decided before loading

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("case folder, MSD 4D file, or BraTS-named files")
        self.folder_button = QPushButton("Folder...")
        self.files_button = QPushButton("Files...")
        self.inspect_button = QPushButton("Inspect")
        self.table = QTableWidget(len(ROLES), 2)
        self.table.setHorizontalHeaderLabels(["Sequence", "File"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self._combos: dict[str, QComboBox] = {}
        for row, (role, label) in enumerate(ROLES.items()):
            self.table.setCellWidget(row, 0, QLabel(label))
            combo = QComboBox()
            combo.currentIndexChanged.connect(self._on_choice_changed)
            self._combos[role] = combo
            self.table.setCellWidget(row, 1, combo)
        self.geometry_label = QLabel("Pick a case.")
        self.geometry_label.setWordWrap(True)
        self.compare = QCheckBox("Keep other cases open (compare)")
        self.compare.toggled.connect(lambda on: setattr(self.session, "compare", bool(on)))
        self.load_button = QPushButton("Load")
        self.load_button.setEnabled(False)
        self.study_panel = StudyPanel(napari_viewer, self)
        self.study_panel.setVisible(False)
        self.study_panel.prepared.connect(self._open_prepared)
        self.qc_panel = QCPanel(napari_viewer, self)

        top = QHBoxLayout()
        for w in (self.folder_button, self.files_button, self.inspect_button):
            top.addWidget(w)
        lay = QVBoxLayout(self)
        lay.addWidget(self.path_edit)
        lay.addLayout(top)
        lay.addWidget(self.table)
        lay.addWidget(self.geometry_label)
        lay.addWidget(self.compare)
        lay.addWidget(self.load_button)
        lay.addWidget(self.study_panel)
        lay.addWidget(self.qc_panel)
        lay.addStretch(1)

        self.folder_button.clicked.connect(self._pick_folder)
        self.files_button.clicked.connect(self._pick_files)
        self.inspect_button.clicked.connect(lambda: self.inspect(self.path_edit.text()))
        self.path_edit.returnPressed.connect(lambda: self.inspect(self.path_edit.text()))
        self.load_button.clicked.connect(self.load)

    # -- choosing ------------------------------------------------------------------------------
    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Case folder")
        if folder:
            self.inspect(folder)

    def _pick_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Case files", "", "NIfTI (*.nii *.nii.gz)")
        if files:
            self.inspect(files)

    def role_combo(self, role: str) -> QComboBox:
        """The combo box choosing the file of ``role`` (``t1``, ``t1ce``, ``t2``, ``flair``, ``seg``)."""
        return self._combos[role]

    def inspect(self, source: str | list[str]) -> CaseFiles | None:
        """Find which file is which sequence and fill the table; errors show as notifications."""
        self.files = None
        self.load_button.setEnabled(False)
        if isinstance(source, str):
            self.path_edit.setText(source)
        else:
            self.path_edit.setText("; ".join(source))
        try:
            files = find_case_files(source if isinstance(source, str) else [Path(p) for p in source])
        except BratsSegError as exc:
            if isinstance(source, str) and _maybe_study(source):
                self._inspect_study(source, exc)
                return None
            self.geometry_label.setText(f"Cannot use this: {exc}")
            error("This is not a case the plugin can open.", str(exc))
            return None
        self.files = files
        self._show_study(False)
        self._fill_table(files)
        self._update_check()
        return files

    def _candidates(self, files: CaseFiles) -> list[Path]:
        folders = {p.parent for p in files.images.values()}
        if files.seg is not None:
            folders.add(files.seg.parent)
        found = set(files.images.values()) | ({files.seg} if files.seg else set())
        for f in folders:
            found |= {p for p in f.iterdir() if p.is_file() and is_nifti_name(p)}
        return sorted(found)

    def _fill_table(self, files: CaseFiles) -> None:
        cands = self._candidates(files)
        msd = files.msd_file is not None
        for role, combo in self._combos.items():
            combo.blockSignals(True)
            combo.clear()
            if role == "seg":
                combo.addItem(NONE_ITEM, None)
            for p in cands:
                combo.addItem(p.name, str(p))
            current = files.seg if role == "seg" else files.images.get(role)
            if current is not None:
                combo.setCurrentIndex(combo.findData(str(current)))
            combo.setEnabled(not msd or role == "seg")
            combo.blockSignals(False)

    def _on_choice_changed(self, _index: int = 0) -> None:
        if self.files is None:
            return
        for role, combo in self._combos.items():
            value = combo.currentData()
            if role == "seg":
                self.files.seg = Path(value) if value else None
            elif self.files.msd_file is None and value:
                self.files.images[role] = Path(value)
        self._update_check()

    def _update_check(self) -> None:
        assert self.files is not None
        chosen = list(self.files.images.values()) if self.files.msd_file is None else []
        if len(set(chosen)) != len(chosen):
            self.geometry_ok = False
            self.geometry_label.setText("The same file is chosen for two sequences.")
        else:
            self.geometry_ok, text = geometry_check(self.files)
            self.geometry_label.setText(text)
        self.load_button.setEnabled(self.geometry_ok and self.task is None)

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> Task | None:
        """Read the chosen files in the background and add the case's layers when done."""
        if self.files is None and self.path_edit.text().strip():
            self.inspect(self.path_edit.text().strip())
        if self.task is not None or self.files is None or not self.geometry_ok:
            return None  # (a load still reading or adding its layers finishes first)
        files = self.files
        decided = self._decide_others(files.case_id)
        if decided is None:
            return None
        self._others = decided
        self.load_button.setEnabled(False)

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            from .. import layers

            with gcpause.paused():  # then full garbage collections skip all this (gcpause)
                case = read_case(files)
                limits = layers.contrast_limits(case)  # whole-volume percentiles: not on the GUI thread
                layers.warm_up_layer_creation()  # off the GUI thread, where adding the layers would do it
                # the napari layers are made here too: the GUI thread only appends them, one per turn
                made = [layers.make_layer(*ld) for ld in case_layer_data(case, limits)]
            return case, made

        self.task = start_task(work, description=f"loading {files.case_id}", wrap=CaseError,
                               on_success=self._add_case, on_done=self._done)
        return self.task

    def _decide_others(self, case_id: str) -> dict[str, str] | None:
        """What to do with the other open cases: case -> ``close``/``hide``; None to cancel the load."""
        if self.compare.isChecked():
            return {}
        out = {}
        for other in case_ids(self.viewer.layers):
            if other == case_id:
                continue
            unsaved = self.session.unsaved(other)
            if not unsaved:
                out[other] = "close"
                continue
            names = ", ".join(f"'{ly.name}'" for ly in unsaved)
            answer = self.session.ask(
                "Close the open case?",
                f"Case {other} has unsaved work in {names}. Closed, it stays in the recovery folder and is "
                "offered back when the case is opened again.", ["Close anyway", "Keep hidden", "Cancel"])
            if answer == "Cancel":
                return None
            out[other] = "close" if answer == "Close anyway" else "hide"
        return out

    def _add_case(self, loaded: Any) -> None:
        """Add a read case's layers: ``loaded`` is the case, or ``(case, its napari layers)`` from the worker.

        With a running task the layers go in one per turn of the event loop (each costs napari a
        noticeable moment to add: its controls, its visual, the layer list); the task's ``done``
        comes after the last.
        """
        case, made = loaded if isinstance(loaded, tuple) else (loaded, None)
        run_steps(self.task, self._case_steps(case, made))

    def _case_steps(self, case: Any, made: list[Any] | None) -> Any:
        """The GUI work of :meth:`_add_case`, one short step per ``next()``."""
        for other, action in self._others.items():
            if action == "close":
                self.session.close_case(other)
                yield
        self._others = {}
        for layer in made if made is not None else [make_layer(*ld) for ld in case_layer_data(case)]:
            self.viewer.layers.append(layer)
            yield
        self.viewer.reset_view()
        folders = {Path(p).parent for p in case.sources.values()}
        self.qc_panel.set_case(case.case_id, folders.pop() if len(folders) == 1 else None)

    def _done(self) -> None:
        self.task = None
        self.load_button.setEnabled(self.files is not None and self.geometry_ok)

    # -- DICOM studies -------------------------------------------------------------------------
    def _show_study(self, on: bool) -> None:
        self.study_panel.setVisible(on)
        self.table.setVisible(not on)
        self.load_button.setVisible(not on)

    def _inspect_study(self, folder: str, not_case: BratsSegError) -> None:
        """Read ``folder`` as a DICOM study in the background (the study panel shows it)."""
        self.geometry_label.setText(f"Not a NIfTI case ({not_case}); reading it as a DICOM study...")

        def failed(exc: BaseException) -> None:
            self._show_study(False)
            self.geometry_label.setText(f"Cannot use this: {exc}")
            error("This folder is neither a case nor a DICOM study.", str(exc))

        def found(_result: Any) -> None:
            self._show_study(True)
            self.geometry_label.setText("DICOM study: choose the series of each sequence, then Prepare...")

        self.study_panel.discover(folder, on_failure=failed).succeeded.connect(found)

    def _open_prepared(self, case_dir: str) -> None:
        """Open a case folder just written by *Prepare...* through the normal load path."""
        if self.inspect(case_dir) is not None:
            self.load()
        self.study_panel.setVisible(True)  # the study stays open (its DICOM-SEGs can be opened)


def _maybe_study(path: str) -> bool:
    """A folder with files but no NIfTI file at its top: possibly a DICOM study (the discovery tells)."""
    p = Path(path)
    if not p.is_dir() or any(is_nifti_name(f) for f in p.iterdir() if f.is_file()):
        return False
    return any(names for _dir, _sub, names in os.walk(p))
