"""The export cache: a network exported once per model, runtime, CPU kind and (where needed) shape.

Entries live in ``platformdirs.user_cache_dir("napari-brats-seg")/runtimes`` (``$BRATS_SEG_CACHE_DIR``
replaces the first part). Each entry is a folder named by :func:`entry_key`; it is built in a temporary
sibling folder and renamed into place, so a reader never sees half an export. An entry that a runtime
cannot load is removed and built again (:func:`rebuild`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Overrides the cache root (the ``runtimes`` folder is made inside it).
ENV_CACHE_DIR = "BRATS_SEG_CACHE_DIR"
#: Bumped when the export recipe changes, so older entries are not reused.
FORMAT_VERSION = 1


def cache_root() -> Path:
    """The folder that holds the runtime exports."""
    base = os.environ.get(ENV_CACHE_DIR)
    if not base:
        from platformdirs import user_cache_dir

        base = user_cache_dir("napari-brats-seg", appauthor=False)
    return Path(base) / "runtimes"


def entry_key(fields: Mapping[str, Any]) -> str:
    """A short, stable folder name for an entry described by ``fields`` (JSON-serialisable values)."""
    text = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry(fields: Mapping[str, Any], build: Callable[[Path], None], root: Path | None = None) -> Path:
    """The folder of the entry ``fields``, built by ``build(folder)`` when absent.

    ``build`` writes its files into the (temporary) folder it is given; a ``meta.json`` describing the
    entry is added. Concurrent builders are harmless: the first rename wins, the others are discarded.
    """
    root = cache_root() if root is None else Path(root)
    final = root / entry_key(fields)
    if (final / "meta.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        build(tmp)
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION, **fields}, indent=1, default=str))
        if final.exists():  # a stale or incomplete entry
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def rebuild(fields: Mapping[str, Any], build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Remove the entry ``fields`` (corrupt, unreadable) and build it again."""
    root = cache_root() if root is None else Path(root)
    shutil.rmtree(root / entry_key(fields), ignore_errors=True)
    return entry(fields, build, root)


__all__ = ["ENV_CACHE_DIR", "FORMAT_VERSION", "cache_root", "entry", "entry_key", "rebuild"]
