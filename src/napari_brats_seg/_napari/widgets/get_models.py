"""*Get models...*: download a publisher's pretrained model, after accepting its licence.

The dialog lists :data:`~napari_brats_seg.core.models.hub_catalog.CATALOG`, shows the chosen model's
licence, and enables *Download* only once *I accept this licence* is ticked. The download runs in a
worker (:func:`~..worker.start_task`, napari's progress bar) through
:func:`~napari_brats_seg.core.models.hub.get_model`; *Cancel* stops it at once and nothing is
installed. :attr:`GetModelsDialog.installed` carries the installed folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import ModelError
from ...core.models.hub import get_model, installed_models
from ...core.models.hub_catalog import CATALOG, HubModel
from ..worker import Task, start_task


class GetModelsDialog(QDialog):
    """Choose, accept and download a publisher's model.

    Public controls: ``model_list``, ``licence_text``, ``accept_box``, ``download_button``,
    ``cancel_button``, ``status``; :attr:`task` is the running download (None when idle).
    """

    installed = Signal(object)

    def __init__(self, parent: QWidget | None = None, catalog: Mapping[str, HubModel] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Get pretrained models")
        self.catalog = CATALOG if catalog is None else catalog
        self.task: Task | None = None
        self.model_list = QListWidget()
        self.licence_text = QTextBrowser()
        self.licence_text.setOpenExternalLinks(True)
        self.accept_box = QCheckBox("I accept this licence")
        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.download_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(self.model_list)
        lay.addWidget(QLabel("Licence"))
        lay.addWidget(self.licence_text)
        lay.addWidget(self.accept_box)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        self.model_list.currentRowChanged.connect(self._on_choice)
        self.accept_box.toggled.connect(self._update_buttons)
        self.download_button.clicked.connect(self.download)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self._fill()

    def _fill(self) -> None:
        have = installed_models()
        self.model_list.clear()
        for name, entry in self.catalog.items():
            self.model_list.addItem(f"{name}{' (installed)' if name in have else ''}: {entry.title}")
        if self.catalog:
            self.model_list.setCurrentRow(0)

    def current_entry(self) -> HubModel | None:
        """The chosen catalog entry."""
        row = self.model_list.currentRow()
        names = list(self.catalog)
        return self.catalog[names[row]] if 0 <= row < len(names) else None

    def select(self, name: str) -> None:
        """Choose the model ``name`` (un-ticks the licence box: each licence is accepted on its own)."""
        self.model_list.setCurrentRow(list(self.catalog).index(name))

    def _on_choice(self, _row: int) -> None:
        entry = self.current_entry()
        self.accept_box.setChecked(False)
        if entry is not None:
            self.licence_text.setPlainText(f"{entry.title}\nPublisher: {entry.publisher}\n\n{entry.licence}\n\n"
                                           f"{entry.licence_url}")
        self._update_buttons()

    def _update_buttons(self, *_: Any) -> None:
        idle = self.task is None
        self.download_button.setEnabled(idle and self.accept_box.isChecked() and self.current_entry() is not None)
        self.cancel_button.setEnabled(not idle)
        self.model_list.setEnabled(idle)
        self.accept_box.setEnabled(idle)

    def download(self) -> Task | None:
        """Start downloading the chosen model (only with its licence accepted); returns the task."""
        entry = self.current_entry()
        if self.task is not None or entry is None:
            return None
        if not self.accept_box.isChecked():
            self.status.setText("Accept the licence first.")
            return None
        name, catalog = entry.name, self.catalog

        def work(on_progress: Any = None, cancel: Any = None) -> Any:
            return get_model(name, accept_licence=True, catalog=catalog, on_progress=on_progress, cancel=cancel)

        self.status.setText(f"Downloading {name}...")
        self.task = start_task(work, description=f"downloading {name}", wrap=ModelError)
        self.task.progressed.connect(lambda d, t, m: self.status.setText(f"{d}/{t} {m}"))
        self.task.succeeded.connect(self._on_installed)
        self.task.failed.connect(lambda exc: self.status.setText(f"Failed: {exc}"))
        self.task.cancelled.connect(lambda: self.status.setText("Cancelled; nothing was installed."))
        self.task.done.connect(self._on_done)
        self._update_buttons()
        return self.task

    def cancel(self) -> None:
        """Stop the running download (nothing is installed)."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling...")

    def _on_installed(self, folder: Any) -> None:
        self.status.setText(f"Installed {folder.name} in {folder.parent}")
        self.installed.emit(folder)

    def _on_done(self) -> None:
        self.task = None
        row = self.model_list.currentRow()
        self._fill()
        self.model_list.setCurrentRow(row)
        self._update_buttons()
