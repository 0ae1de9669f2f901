"""Built tilesets on disk (``CIM_HOME/3dtiles``): a restarted service or another worker reuses a build.

One file per build, named by a hash of the database (server and name), the layer id, its version and the time
that version was set; it holds a JSON header (the ``tileset.json`` document and the content index) followed by
the GLB bytes. Files are written to a temporary name and renamed, so a reader never sees half a file; the
files of older versions of the same layer and database are removed when a newer one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

from cim_service.tiles3d.build import Tileset

MAGIC = b"CIM3DT1\n"


def _prefix(database: str, layer_id: str) -> str:
    return hashlib.sha256(f"{database}|{layer_id}".encode()).hexdigest()[:16]


def path_for(folder: Path, database: str, layer_id: str, stamp: tuple[int, str], max_features: int) -> Path:
    """The file of the tileset of ``layer_id`` at ``stamp`` in ``database``."""
    state = hashlib.sha256(f"{stamp[0]}|{stamp[1]}|{max_features}".encode()).hexdigest()[:16]
    return folder / f"{_prefix(database, layer_id)}-{state}.3dt"


def load(path: Path) -> Tileset | None:
    """Read a stored tileset, or None when there is none (or it is not one of ours)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        return None
    (header_len,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start:start + header_len])
    body = start + header_len
    content = {uri: data[body + off:body + off + size] for uri, off, size in header["content"]}
    return Tileset(header["document"], content)


def save(path: Path, tileset: Tileset) -> None:
    """Write ``tileset`` atomically, then remove the older files of the same layer and database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    index, offset = [], 0
    for uri, body in tileset.content.items():
        index.append([uri, offset, len(body)])
        offset += len(body)
    header = json.dumps({"document": tileset.document, "content": index}, separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".3dt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(header)) + header)
            for body in tileset.content.values():
                f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    prefix = path.name.split("-", 1)[0]
    for old in path.parent.glob(f"{prefix}-*.3dt"):
        if old != path:
            old.unlink(missing_ok=True)
