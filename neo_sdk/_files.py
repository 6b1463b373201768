"""Small file helpers shared by bundles, checkpoints and the model cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

# A digest is remembered only for a file last written (modification time) at least this long before it was read: file
# time stamps are coarse (a clock tick), so a same-size rewrite within the tick that was hashed
# would keep its stamp; two seconds is well past any tick (and FAT's 2 s stamps).
_SETTLED_NS = 2_000_000_000
_DIGESTS: dict[str, tuple[list[int], str]] = {}  # resolved path -> (stamp, sha256), this process
_LOCK = threading.Lock()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path, index: Path | None = None) -> str:
    """:func:`sha256_file`, remembered while the file is unchanged (for large files read often).

    A digest is keyed on the resolved path and the file's stamp (size, modification and change
    times in ns, inode): any write, including a same-size one, and any replacement of the file
    change the stamp, and the file is read again. Digests live in memory and, with ``index``, in
    that JSON file too (shared by processes; a missing, unreadable or unwritable index only costs
    a re-read). A file modified less than two seconds before it is read is not remembered.

    Args:
        path: the file.
        index: a JSON sidecar ``{path: {"stamp": [...], "sha256": ...}}``; ``None``: memory only.
    """
    resolved = Path(path).resolve()
    key = str(resolved)
    stamp = _stamp(resolved)
    with _LOCK:
        known = _DIGESTS.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    entry = _read_index(index).get(key) if index is not None else None
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        digest = str(entry["sha256"])
        with _LOCK:
            _DIGESTS[key] = (stamp, digest)
        return digest
    digest = sha256_file(resolved)
    settled = time.time_ns() - stamp[1] >= _SETTLED_NS
    if settled and _stamp(resolved) == stamp:  # unchanged while it was read
        with _LOCK:
            _DIGESTS[key] = (stamp, digest)
        if index is not None:
            _remember(index, key, stamp, digest)
    return digest


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_index(index: Path) -> dict[str, object]:
    try:
        data = json.loads(Path(index).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(index: Path, key: str, stamp: list[int], digest: str) -> None:
    """Add one digest to the index (entries of files that are gone are dropped), atomically."""
    index = Path(index)
    data = {k: v for k, v in _read_index(index).items() if os.path.exists(k)}
    data[key] = {"stamp": stamp, "sha256": digest}
    tmp = index.with_name(f".{index.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
        os.replace(tmp, index)
    except OSError:  # a read-only cache folder: digests stay in memory
        tmp.unlink(missing_ok=True)


def replace_dir(complete: Path, target: Path) -> None:
    """Move a fully written folder into place; the old one goes only after the new one is in."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(complete, target)
    shutil.rmtree(old, ignore_errors=True)
