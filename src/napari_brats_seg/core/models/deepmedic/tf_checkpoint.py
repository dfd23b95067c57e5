"""Read TensorFlow 1-style checkpoints (``model.ckpt.index`` + ``model.ckpt.data-*``) without TensorFlow.

A TensorFlow "tensor bundle" checkpoint is two kinds of files:

- ``<prefix>.index``: an SSTable (the leveldb table format). Its keys are variable names (the empty key
  holds a ``BundleHeaderProto``); its values are ``BundleEntryProto`` protobuf messages giving each
  tensor's dtype, shape, shard, byte offset and byte size.
- ``<prefix>.data-<shard>-of-<n>``: the tensors' raw bytes, little-endian, back to back.

The SSTable layout (leveldb ``table_format.md``): a 48-byte footer at the end holds two block handles
(metaindex, index) as varints and an 8-byte magic number; the index block maps the last key of each
data block to that block's handle; every block is a sequence of prefix-compressed entries
(``shared``, ``non_shared``, ``value_length`` varints, the key suffix, the value) followed by an array
of ``uint32`` restart offsets and their count, and a 5-byte trailer (compression type, CRC). Only
uncompressed blocks (what TensorFlow writes) are supported. Nothing in these files is executed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelError

#: leveldb table magic number (last 8 bytes of the file).
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_BLOCK_TRAILER_LEN = 5

#: TensorFlow ``DataType`` enum values we can read, and their numpy dtypes (little-endian).
_TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives in the data files (a decoded ``BundleEntryProto``).

    Attributes
    ----------
    name
        Variable name, e.g. ``net/W_3``.
    dtype
        TensorFlow ``DataType`` enum value (1 = float32).
    shape
        Tensor shape.
    shard_id
        Which ``.data-<shard>-of-<n>`` file holds it.
    offset, size
        Byte range in that file.
    """

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int


# ----------------------------------------------------------------------------- protobuf wire format


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return ``(value, new_pos)``."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError("truncated varint in TensorFlow checkpoint index")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelError("malformed varint in TensorFlow checkpoint index")


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Iterate ``(field_number, wire_type, value)`` of a protobuf message.

    Varints give ints, length-delimited fields give bytes, fixed32/64 give ints.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ModelError(f"unsupported protobuf wire type {wire} in TensorFlow checkpoint index")
        yield field, wire, value


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    """Decode a ``TensorShapeProto``: repeated ``dim`` (field 2) of ``Dim{size: int64 = 1}``."""
    dims = []
    for field, _, value in _proto_fields(buf):
        if field == 2:
            size = 0
            for f2, _, v2 in _proto_fields(value):  # type: ignore[arg-type]
                if f2 == 1:
                    size = int(v2)  # type: ignore[arg-type]
            dims.append(size)
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    """Decode a ``BundleEntryProto`` (dtype=1, shape=2, shard_id=3, offset=4, size=5, slices=7)."""
    dtype, shape, shard, offset, size = 0, (), 0, 0, 0
    for field, _, value in _proto_fields(buf):
        if field == 1:
            dtype = int(value)  # type: ignore[arg-type]
        elif field == 2:
            shape = _parse_shape(value)  # type: ignore[arg-type]
        elif field == 3:
            shard = int(value)  # type: ignore[arg-type]
        elif field == 4:
            offset = int(value)  # type: ignore[arg-type]
        elif field == 5:
            size = int(value)  # type: ignore[arg-type]
        elif field == 7:
            raise ModelError(f"{name}: partitioned (sliced) checkpoint tensors are not supported")
    return TensorEntry(name, dtype, shape, shard, offset, size)


# ----------------------------------------------------------------------------- SSTable


def _block_handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    if offset + size + _BLOCK_TRAILER_LEN > len(data):
        raise ModelError("TensorFlow checkpoint index is truncated (block past the end of the file)")
    if data[offset + size] != 0:
        raise ModelError("compressed TensorFlow checkpoint index blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Iterate the ``(key, value)`` pairs of one SSTable block (prefix-compressed keys)."""
    if len(block) < 4:
        raise ModelError("TensorFlow checkpoint index block is too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        value = block[pos : pos + value_len]
        pos += value_len
        yield key, value


def read_index(index_path: str | Path) -> dict[str, TensorEntry]:
    """Read a checkpoint's ``.index`` file.

    Parameters
    ----------
    index_path
        The ``<prefix>.index`` file.

    Returns
    -------
    dict
        Variable name -> :class:`TensorEntry`, in the file's (sorted) order; the header entry (empty
        key) is left out.

    Raises
    ------
    ModelError
        When the file is not an uncompressed leveldb table of tensor entries.
    """
    path = Path(index_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the checkpoint index ({exc.strerror})") from exc
    if len(data) < _FOOTER_LEN or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise ModelError(f"{path}: not a TensorFlow checkpoint index (no SSTable magic number)")
    try:
        return _read_entries(data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (struct.error, UnicodeDecodeError, IndexError, ValueError) as exc:
        raise ModelError(f"{path}: the TensorFlow checkpoint index is corrupt ({type(exc).__name__}: {exc})") from None


def _read_entries(data: bytes) -> dict[str, TensorEntry]:
    """The tensor entries of an index file's bytes (see :func:`read_index`)."""
    footer = data[len(data) - _FOOTER_LEN :]
    _, _, pos = _block_handle(footer, 0)  # metaindex: unused
    index_offset, index_size, _ = _block_handle(footer, pos)
    entries: dict[str, TensorEntry] = {}
    for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
        block_offset, block_size, _ = _block_handle(handle, 0)
        for key, value in _block_entries(_read_block(data, block_offset, block_size)):
            if not key:  # BundleHeaderProto
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelError(f"variable name {key[:40]!r} is not UTF-8 text: the index is corrupt") from None
            entries[name] = _parse_entry(name, value)
    return entries


def _data_path(prefix: Path, shard: int, n_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{n_shards:05d}")


def checkpoint_prefix(path: str | Path) -> Path:
    """The checkpoint prefix for a ``.index`` file, a prefix, or a folder holding one checkpoint."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.index"))
        if len(found) != 1:
            raise ModelError(f"{p}: expected one TensorFlow checkpoint (*.index) in the folder, found {len(found)}")
        p = found[0]
    if p.suffix == ".index":
        p = p.with_suffix("")
    return p


def read_checkpoint(path: str | Path, prefix_filter: str | None = None) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow 1-style checkpoint into numpy arrays.

    Parameters
    ----------
    path
        The checkpoint prefix (``.../model.ckpt``), its ``.index`` file, or a folder with one checkpoint.
    prefix_filter
        Keep only variables whose names start with this (e.g. ``"net/"``).

    Returns
    -------
    dict
        Variable name -> array of the stored dtype and shape.

    Raises
    ------
    ModelError
        For a missing, truncated, foreign or unsupported file.
    """
    prefix = checkpoint_prefix(path)
    index = read_index(prefix.with_name(prefix.name + ".index"))
    shards = sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    if not shards:
        raise ModelError(f"{prefix}: no checkpoint data file (.data-00000-of-00001) beside the index")
    n_shards = int(shards[0].name.rsplit("-of-", 1)[1])
    blobs: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for name, entry in index.items():
        if prefix_filter is not None and not name.startswith(prefix_filter):
            continue
        if entry.dtype not in _TF_DTYPES:
            raise ModelError(f"{prefix}: {name}: unsupported TensorFlow dtype enum {entry.dtype}")
        if entry.shard_id not in blobs:
            shard_path = _data_path(prefix, entry.shard_id, n_shards)
            try:
                blobs[entry.shard_id] = shard_path.read_bytes()
            except OSError as exc:
                raise ModelError(f"{shard_path}: cannot read checkpoint data ({exc.strerror})") from exc
        blob = blobs[entry.shard_id]
        dtype = _TF_DTYPES[entry.dtype]
        count = int(np.prod(entry.shape, dtype=np.int64)) if entry.shape else 1
        if entry.size != count * dtype.itemsize or entry.offset + entry.size > len(blob):
            raise ModelError(f"{prefix}: {name}: checkpoint entry does not fit its data file (corrupt or truncated)")
        arr = np.frombuffer(blob, dtype=dtype, count=count, offset=entry.offset)
        out[name] = arr.reshape(entry.shape).astype(dtype.newbyteorder("="), copy=True)
    return out
