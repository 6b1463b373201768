"""Where neo-sdk keeps caches: ``$NEO_HOME``, default ``~/.cache/neo-sdk``."""

from __future__ import annotations

import os
from pathlib import Path


def neo_home() -> Path:
    """The cache root (converted base models, embedding caches). Created on first use."""
    root = Path(os.environ.get("NEO_HOME") or Path.home() / ".cache" / "neo-sdk").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
