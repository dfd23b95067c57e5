"""kill -9 in the middle of a correction session (issue 13, items 1-3).

A child python process opens a real viewer under the same X display (``_crash_child.py``), tries to
edit the locked ground truth, edits a prediction, undoes the last edit, and is killed with SIGKILL
once autosave has written. The parent then checks what a user gets back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_brats_seg._napari import autosave
from napari_brats_seg._napari.layers import case_layer_data, source_of
from napari_brats_seg._napari.session import Session
from napari_brats_seg._napari.widgets._qt import add_layer_data

CHILD = Path(__file__).with_name("_crash_child.py")


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Run the child until READY, kill it with SIGKILL; returns (data dir, the child's expected arrays)."""
    out = tmp_path_factory.mktemp("crash")
    data = out / "data-dir"
    env = {**os.environ, "NAPARI_BRATS_SEG_DATA_DIR": str(data)}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    t0, line = time.time(), ""
    try:
        while "READY" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"the child ended before READY: {proc.stderr.read()[-3000:]}")
            if time.time() - t0 > 120:
                pytest.fail("the child did not get READY in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with np.load(out / "expected.npz") as f:
        return data, {k: np.asarray(f[k]) for k in f.files}


def test_kill9_reference_never_in_recovery(crashed, monkeypatch) -> None:
    data, expected = crashed
    monkeypatch.setenv(autosave.ENV_VAR, str(data))
    recs = autosave.find_recoveries("crash-case")
    # The locked ground truth was never changed, so nothing of it is offered back: only the prediction.
    assert [r.layer_name for r in recs] == ["model [crash-case]"]
    assert recs[0].role == "prediction"


def test_kill9_recovery_holds_the_state_after_undo(crashed, monkeypatch) -> None:
    data, expected = crashed
    monkeypatch.setenv(autosave.ENV_VAR, str(data))
    rec = autosave.find_recoveries("crash-case")[0]
    got = rec.load()
    assert np.array_equal(got, expected["post_undo"])       # the undone island removal does not come back
    assert not np.array_equal(got, expected["cleaned"])


def test_kill9_model_output_restored_for_scoring_and_revert(crashed, monkeypatch, make_napari_viewer,
                                                             qtbot) -> None:
    data, expected = crashed
    monkeypatch.setenv(autosave.ENV_VAR, str(data))
    from napari_brats_seg.core.synth import synth_case

    rec = autosave.find_recoveries("crash-case")[0]
    assert rec.has_original and np.array_equal(rec.load_original(), expected["model"])
    viewer = make_napari_viewer()
    session = Session.for_viewer(viewer)
    add_layer_data(viewer, case_layer_data(synth_case(3, (64, 64, 48), case_id="crash-case")))
    assert [r.layer_name for r in session.autosave.offered] == [rec.layer_name]
    pred = autosave.restore_recovery(viewer, rec)
    kept = session.original_layer(pred)
    assert source_of(pred).role == "prediction" and np.array_equal(pred.data, expected["post_undo"])
    assert kept is not None and not kept.visible and np.array_equal(kept.data, expected["model"])
    assert session.newest() is pred and session.reference() is not None
    assert session.revert(pred) > 0 and np.array_equal(pred.data, expected["model"])
