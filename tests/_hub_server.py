"""A loopback HTTP server (127.0.0.1, a thread of this process) and tiny publishers' files for hub tests.

:class:`LoopbackServer` serves bytes by URL path, counts requests, and can cut a file off mid-way
(it announces the full length, sends half, closes the connection) or stall before sending.
:func:`bundle_zip` makes a MONAI-bundle zip like the model zoo's, with a tiny seeded SegResNet.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from napari_brats_seg.core.models.hub_catalog import CATALOG, HubModel

BUNDLE = "brats_mri_segmentation"
NETWORK_DEF = {"_target_": "SegResNet", "blocks_down": [1, 1], "blocks_up": [1], "init_filters": 8,
               "in_channels": 4, "out_channels": 3}
METADATA = {
    "version": "0.3.7",
    "monai_version": "0.9.1",
    "description": "test bundle shaped like brats_mri_segmentation",
    "eval_metrics": {"val_mean_dice": 0.85, "val_mean_dice_tc": 0.86, "val_mean_dice_wt": 0.90,
                     "val_mean_dice_et": 0.79},
    "network_data_format": {
        "inputs": {"image": {"type": "image", "num_channels": 4, "spatial_shape": ["8*n", "8*n", "8*n"],
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"type": "image", "num_channels": 3, "spatial_shape": ["8*n", "8*n", "8*n"],
                             "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}},
    },
}


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:
        srv = self.server
        srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in srv.stall:
            time.sleep(srv.stall[self.path])
        if self.path in srv.cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """``with LoopbackServer() as srv: srv.files["/a"] = b"..."; srv.url("/a")``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.cut: set[str] = set()
        self.stall: dict[str, float] = {}
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def bundle_zip(network_def: dict | None = None, top: str = BUNDLE, seed: int = 0) -> bytes:
    """A bundle archive (``<top>/configs/{inference,metadata}.json``, ``models/model.pt``, licence)."""
    import torch
    from monai.networks.nets import SegResNet

    net_def = network_def or NETWORK_DEF
    inference = {"imports": ["$import glob"], "device": "$torch.device('cpu')", "network_def": net_def,
                 "network": "$@network_def.to(@device)",
                 "preprocessing": {"_target_": "Compose", "transforms": [
                     {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]},
                 "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "sw_batch_size": 1}}
    torch.manual_seed(seed)
    weights = io.BytesIO()
    torch.save(SegResNet(**{k: v for k, v in NETWORK_DEF.items() if k != "_target_"}).state_dict(), weights)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/configs/inference.json", json.dumps(inference, indent=2))
        zf.writestr(f"{top}/configs/metadata.json", json.dumps(METADATA, indent=2))
        zf.writestr(f"{top}/models/model.pt", weights.getvalue())
        zf.writestr(f"{top}/docs/license.txt", "Apache-2.0 (test)")
    return buf.getvalue()


def bundle_entry(srv: LoopbackServer, path: str = "/bundle.zip", sha1: str | None = None) -> HubModel:
    """The real catalog entry of the bundle, pointed at ``srv``."""
    return replace(CATALOG[BUNDLE], url=srv.url(path), sha1=sha1)


def deepmedic_entry(srv: LoopbackServer, prefix: str = "/captk") -> HubModel:
    """The real catalog entry of CaPTk's DeepMedic (real pinned sha256s), pointed at ``srv``."""
    return replace(CATALOG["captk-deepmedic"], url=srv.url(prefix))


def serve_deepmedic(srv: LoopbackServer, folder: Path, prefix: str = "/captk") -> None:
    """Serve the shared copy of CaPTk's published DeepMedic files."""
    for f in CATALOG["captk-deepmedic"].files:
        srv.files[f"{prefix}/{f.name}"] = (folder / f.name).read_bytes()
