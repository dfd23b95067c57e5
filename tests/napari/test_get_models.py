"""Segment widget: the model combo starts at the best installed model; *Get models...* downloads in a worker.

The publisher is a loopback HTTP server (127.0.0.1, a thread of the test) serving a tiny bundle zip.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from _hub_server import BUNDLE, LoopbackServer, bundle_entry, bundle_zip
from napari_brats_seg.core.models import hub

PLUGIN = "napari-brats-seg"


def _widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    return widget


def test_combo_starts_at_best_installed_never_the_cascade(make_napari_viewer, tmp_path: Path) -> None:
    widget = _widget(make_napari_viewer)
    assert widget.model_combo.currentText().startswith("unet3d-default")  # not cascade-default, listed first
    archive = tmp_path / "b.zip"
    archive.write_bytes(bundle_zip())
    folder = hub.add_model(archive, accept_licence=True)
    widget = _widget(make_napari_viewer)
    assert widget.model_combo.currentData() == str(folder)


def test_get_models_dialog_licence_download_and_cancel(make_napari_viewer, qtbot) -> None:
    widget = _widget(make_napari_viewer)
    with LoopbackServer() as srv:
        data = bundle_zip()
        srv.files["/bundle.zip"] = data
        widget.hub_catalog = {BUNDLE: bundle_entry(srv, sha1=hashlib.sha1(data).hexdigest())}
        dialog = widget.open_get_models()
        assert dialog.isVisible() and "Apache License 2.0" in dialog.licence_text.toPlainText()
        # nothing starts before the licence is accepted
        assert not dialog.download_button.isEnabled() and dialog.download() is None
        assert srv.hits == {}
        # a cancelled download installs nothing
        srv.stall["/bundle.zip"] = 1.5
        dialog.accept_box.setChecked(True)
        task = dialog.download()
        assert task is not None and dialog.cancel_button.isEnabled() and not dialog.download_button.isEnabled()
        dialog.cancel()
        with qtbot.waitSignal(task.done, timeout=30_000):
            pass
        assert "Cancelled" in dialog.status.text() and hub.installed_models() == {}
        # accepted and downloaded: the combo offers it and starts there (its figures rank it first)
        srv.stall.clear()
        dialog.select(BUNDLE)
        assert not dialog.download_button.isEnabled()  # each choice asks for the licence again
        dialog.accept_box.setChecked(True)
        task = dialog.download()
        with qtbot.waitSignal(task.done, timeout=60_000):
            pass
        folder = hub.models_dir() / BUNDLE
        assert hub.installed_models() == {BUNDLE: folder}, dialog.status.text()
        assert widget.model_combo.currentData() == str(folder)
        assert "(installed)" in dialog.model_list.item(0).text()
        dialog.close()
