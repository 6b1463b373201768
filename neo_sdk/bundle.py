"""Bundles: everything a trained model needs at run time, verified on load. Nothing is pickled.

Layout of a bundle folder::

    manifest.json          versions, base model ref + hash, tokenizer size, SID table hash,
                           prompts hash, training config, metrics, sha256 of every other file
    sid_rows.safetensors   the SID token rows: input embeddings and (untied) output head
    adapter.safetensors    LoRA weights (peft) + adapter.json, or
    model.safetensors      every weight after full fine-tuning
    tokenizer/             the extended tokenizer
    sids.safetensors       SID table snapshot (codes, active flags) + sids.json (item ids, specs)
    vocab.json             SID vocabulary config
    prompts/               the prompt files used in training (one source for inference)

A bundle is written into a temporary sibling folder and renamed into place, so it is never half
written. :func:`load_bundle` refuses a missing or altered file (checksum), a different base model,
a tokenizer of the wrong size, and a catalog whose SID table no longer matches the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neo_sdk._files import replace_dir, sha256_file
from neo_sdk.errors import BundleError, SIDError

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"


def base_model_hash(folder: Path) -> str:
    """Hash of a base model folder's config and weights file names and sizes (fast, stable)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.suffix in (".json", ".safetensors") and path.name != "neo_conversion.json":
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleContents:
    """What :func:`load_bundle` returns (the model is ready for inference, in eval mode)."""

    path: Path
    manifest: dict[str, Any]
    model: Any
    tokenizer: Any
    vocab: Any
    table: Any
    prompts_dir: Path


def save_bundle(
    out: Path,
    *,
    model: Any,
    tokenizer: Any,
    vocab: Any,
    table: Any,
    base_ref: str,
    base_folder: Path,
    prompts_dir: Path,
    catalog_path: str,
    training: dict[str, Any],
    metrics: dict[str, Any],
    kind: str,
    num_hidden_layers: int | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write a bundle atomically.

    ``kind``: ``rows`` (stage 2 only: SID rows), ``lora`` (``model`` is peft-wrapped) or ``full``.
    """
    if kind not in ("rows", "lora", "full"):
        raise BundleError(f"unknown bundle kind {kind!r}")
    import torch
    from safetensors.torch import save_file

    from neo_sdk import __version__
    from neo_sdk.training._rows import is_tied

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = torch.as_tensor(sorted([vocab.opener_id, vocab.closer_id, *vocab.sid_token_ids().tolist()]))
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    embed = inner.get_input_embeddings().weight.detach()
    head = inner.get_output_embeddings().weight.detach()
    save_file({"rows": rows, "input": embed[rows].float().cpu().contiguous(),
               "output": head[rows].float().cpu().contiguous()}, str(tmp / "sid_rows.safetensors"))
    if kind == "full":
        state = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
        if "lm_head.weight" in state and is_tied(inner):
            del state["lm_head.weight"]
        save_file(state, str(tmp / "model.safetensors"))
    elif kind == "lora":
        from neo_sdk.training.instruction import lora_state

        save_file(lora_state(model), str(tmp / "adapter.safetensors"))
        config = model.peft_config["default"]
        adapter = {
            "r": config.r, "lora_alpha": config.lora_alpha,
            "target_modules": sorted(config.target_modules),
            "layers_to_transform": config.layers_to_transform,
        }
        (tmp / "adapter.json").write_text(json.dumps(adapter, sort_keys=True, indent=1))
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    _save_table(table, tmp)
    (tmp / "vocab.json").write_text(json.dumps(vocab.to_json(), sort_keys=True, indent=1))
    shutil.copytree(prompts_dir, tmp / "prompts")
    for name, path in (extra_files or {}).items():
        shutil.copy(path, tmp / name)
    files = {
        str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "neo_sdk_version": __version__,
        "torch_version": torch.__version__,
        "base_model": {"ref": base_ref, "hash": base_model_hash(base_folder),
                       "num_hidden_layers": num_hidden_layers},
        "tokenizer_size": len(tokenizer),
        "sid_table_hash": table.content_hash,
        "prompts_hash": _tree_hash(prompts_dir),
        "catalog": os.path.abspath(catalog_path),
        "kind": kind,
        "training": training,
        "metrics": metrics,
        "files": files,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1))
    replace_dir(tmp, out)
    return out


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a bundle, after checking every file against its checksum."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise BundleError(f"{path} is not a neo-sdk bundle (no {MANIFEST}); train one with `neo train`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: corrupted manifest ({exc.msg})") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')}, this neo-sdk reads {BUNDLE_FORMAT}")
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise BundleError(f"{path}: file {name} is missing; the bundle is incomplete")
        if sha256_file(file) != digest:
            raise BundleError(f"{path}: {name} does not match its checksum (altered or corrupted)")
    listed = set(manifest["files"]) | {MANIFEST}
    extra = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and str(p.relative_to(path)) not in listed]
    if extra:
        raise BundleError(f"{path}: unexpected files not in the manifest: {sorted(extra)[:5]}")
    return dict(manifest)


def load_bundle(path: str | Path, *, catalog: Any = None, base: str | None = None, merge: bool = True) -> BundleContents:
    """Load and verify a bundle; the returned model has the adapters merged (fast inference).

    Args:
        path: the bundle folder.
        catalog: an open :class:`~neo_sdk.catalog.Catalog` to check the SID table against
            (default: the catalog recorded in the manifest, when it exists).
        base: override the base model folder (default: the manifest's reference).
        merge: merge LoRA weights into the base weights.

    Raises:
        BundleError: anything missing, altered or mismatched.
    """
    import torch
    from safetensors.torch import load_file

    from neo_sdk.model import load_base_model, resolve_base
    from neo_sdk.sids import SIDTable
    from neo_sdk.training._rows import untie_output_head
    from neo_sdk.vocab import SIDVocab

    path = Path(path)
    manifest = read_manifest(path)
    table = _load_table(path)
    if table.content_hash != manifest["sid_table_hash"]:
        raise BundleError(f"{path}: SID snapshot does not match the manifest's hash")
    if catalog is not None:
        try:
            current = SIDTable.load(catalog)
        except SIDError as exc:
            raise BundleError(
                f"{catalog.path} has no Semantic IDs matching this bundle ({exc}); open the catalog the"
                " bundle was trained on"
            ) from exc
        if current.content_hash != manifest["sid_table_hash"]:
            raise BundleError(
                f"the SID table of {catalog.path} differs from the one this bundle was trained on"
                " (items or SIDs changed); retrain, or open the catalog the bundle was built from"
            )
    ref = base or manifest["base_model"]["ref"]
    folder = resolve_base(ref)
    if base_model_hash(folder) != manifest["base_model"]["hash"]:
        raise BundleError(f"base model {ref} ({folder}) is not the one this bundle was trained on")
    model, _ = load_base_model(ref, num_hidden_layers=manifest["base_model"].get("num_hidden_layers"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True)
    if len(tokenizer) != manifest["tokenizer_size"]:
        raise BundleError(f"{path}: tokenizer has {len(tokenizer)} tokens, manifest says {manifest['tokenizer_size']}")
    vocab = SIDVocab.from_json((path / "vocab.json").read_text(), table=table)
    vocab.attach(tokenizer)
    if len(tokenizer) != manifest["tokenizer_size"]:
        raise BundleError(f"{path}: the SID vocabulary does not match the saved tokenizer")
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    untie_output_head(model)
    rows = load_file(str(path / "sid_rows.safetensors"))
    with torch.no_grad():
        index = rows["rows"].long()
        model.get_input_embeddings().weight[index] = rows["input"]
        model.get_output_embeddings().weight[index] = rows["output"]
    if manifest["kind"] == "full":
        state = load_file(str(path / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if m != "lm_head.weight"]:
            raise BundleError(f"{path}: model weights do not fit the base architecture")
    elif manifest["kind"] == "lora":
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        adapter = json.loads((path / "adapter.json").read_text())
        config = LoraConfig(r=adapter["r"], lora_alpha=adapter["lora_alpha"], lora_dropout=0.0,
                            target_modules=adapter["target_modules"],
                            layers_to_transform=adapter["layers_to_transform"], task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # peft reads a transformers attribute deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(model, config)
        result = set_peft_model_state_dict(model, load_file(str(path / "adapter.safetensors")))
        if getattr(result, "unexpected_keys", None):
            raise BundleError(f"{path}: adapter weights do not fit the model")
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return BundleContents(path, manifest, model, tokenizer, vocab, table, path / "prompts")


def export_merged(bundle: str | Path, out: str | Path) -> Path:
    """Write a plain Hugging Face folder (weights merged, extended tokenizer) for other stacks."""
    contents = load_bundle(bundle, merge=True)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    contents.model.save_pretrained(str(tmp))
    contents.tokenizer.save_pretrained(str(tmp))
    (tmp / "neo_bundle.json").write_text(json.dumps(
        {"bundle": str(Path(bundle).resolve()), "vocab": contents.vocab.to_json(),
         "sid_table_hash": contents.manifest["sid_table_hash"]}, sort_keys=True, indent=1))
    replace_dir(tmp, out)
    return out


def _save_table(table: Any, folder: Path) -> None:
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"types": {}}
    for name in table.entity_types:
        t = table.by_type(name)
        arrays[f"{name}.codes"] = np.ascontiguousarray(t.codes.astype(np.int32))
        arrays[f"{name}.active"] = np.ascontiguousarray(t.active.astype(np.uint8))
        meta["types"][name] = {"levels": t.levels, "codes_per_level": t.codes_per_level,
                               "disambiguation": t.disambiguation, "item_ids": [str(i) for i in t.item_ids]}
    save_file(arrays, str(folder / "sids.safetensors"))
    (folder / "sids.json").write_text(json.dumps(meta, sort_keys=True))


def _load_table(folder: Path) -> Any:
    from safetensors.numpy import load_file

    from neo_sdk.sids import SIDTable, TypeSIDs

    arrays = load_file(str(folder / "sids.safetensors"))
    meta = json.loads((folder / "sids.json").read_text())
    types = {
        name: TypeSIDs(name, spec["levels"], spec["codes_per_level"], spec["disambiguation"],
                       np.asarray(spec["item_ids"], dtype=object), arrays[f"{name}.codes"],
                       arrays[f"{name}.active"].astype(bool))
        for name, spec in meta["types"].items()
    }
    return SIDTable(types)


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
