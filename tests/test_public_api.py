"""The public import surface: one namespace, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys

import neo_sdk


def test_all_is_sorted_and_importable() -> None:
    assert neo_sdk.__all__ == sorted(neo_sdk.__all__)
    for name in neo_sdk.__all__:
        assert hasattr(neo_sdk, name), name


def test_every_public_name_is_documented() -> None:
    for name in neo_sdk.__all__:
        obj = getattr(neo_sdk, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_share_one_base() -> None:
    for name in neo_sdk.__all__:
        obj = getattr(neo_sdk, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, neo_sdk.NeoError), name


def test_import_does_not_load_torch() -> None:
    code = "import sys, neo_sdk; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
