"""Bundles: everything a trained model needs at run time, verified on load. Nothing is pickled.

Layout of a bundle folder::

    manifest.json          versions, base model ref + content hash, tokenizer size, SID table hash,
                           prompts hash, training config, metrics, sha256 of every other file
    sid_rows.safetensors   the SID token rows: input embeddings and (untied) output head
    adapter.safetensors    LoRA weights (peft) + adapter.json, or
    model.safetensors      every weight after full fine-tuning
    tokenizer/             the extended tokenizer
    sids.safetensors       SID table snapshot (codes, active flags) + sids.json (item ids, specs)
    vocab.json             SID vocabulary config
    prompts/               the prompt files used in training (one source for inference)

A bundle is written into a temporary sibling folder and renamed into place, so it is never half
written. :func:`load_bundle` refuses a missing or altered file (checksum), a different base model
(other weights, even of the same shape: :func:`base_model_hash`), a tokenizer of the wrong size,
and a catalog whose SID table does not *extend* the snapshot.

**A living catalog.** A catalog extends the snapshot when every trained item keeps exactly its SID
(and type); items given SIDs later (``neo sids assign``) are new items. Their codes are tokens the
bundle already has, so the runtime serves them at once, without retraining, and marks them
(``ItemRef.new``). The trie holds the catalog's *active* items only, as they are now: an item
deactivated after training is never returned. A changed, removed or reshaped trained SID is
refused (:class:`~neo_sdk.errors.BundleError`, naming the items). :func:`refresh_bundle`
(``neo bundle refresh``) records an extension in the manifest (``extension``: the extended table's
hash, the count of new items per type, inactive items); the manifest is replaced in one
``os.replace`` and every other file, with its checksum, stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neo_sdk._files import cached_sha256, replace_dir, sha256_file
from neo_sdk.errors import BundleError, SIDError

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"

logger = logging.getLogger(__name__)


_BASE_FILES = (".json", ".safetensors", ".bin")  # config, tokenizer files and weights of a base folder


def base_model_hash(folder: Path) -> str:
    """Content hash of a base model folder: the name and SHA-256 of each config, tokenizer and
    weights file (``*.json``, ``*.safetensors``, ``*.bin``; not ``neo_conversion.json``).

    A fine-tune of the same shape has other weights, so another hash. Hashing SmolLM2's 540 MB of
    weights takes about a second: the digests are cached
    (:func:`~neo_sdk._files.cached_sha256`, in memory and in ``neo_home()/models/sha256-index.json``),
    keyed on each file's size, times and inode, so later loads cost a ``stat`` per file.
    """
    from neo_sdk._home import neo_home

    index = neo_home() / "models" / "sha256-index.json"
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*")):
        if path.suffix in _BASE_FILES and path.name != "neo_conversion.json" and path.is_file():
            digest.update(path.name.encode() + b"\0")
            digest.update(cached_sha256(path, index).encode())
    return digest.hexdigest()


def _size_hash(folder: Path) -> str:
    """What bundles recorded before :func:`base_model_hash` read contents: JSON files' contents,
    weights files' names and sizes only (a same-shape fine-tune had the same hash)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*")):
        if path.suffix in (".json", ".safetensors") and path.name != "neo_conversion.json":
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
    return digest.hexdigest()


def check_base_model(path: Path, manifest: dict[str, Any], base: str | None = None) -> str:
    """Check that the base model ``base`` (default: the manifest's reference) resolves to the
    folder the bundle was trained on; returns the reference.

    Bundles written before contents were hashed (no ``hash_of`` in the manifest) recorded names
    and sizes only: they are checked that way, with a warning (retrain to record the contents).

    Raises:
        BundleError: another base model (other weights, config or tokenizer files).
    """
    from neo_sdk.model import resolve_base

    recorded = manifest["base_model"]
    ref = base or recorded["ref"]
    folder = resolve_base(ref)
    if recorded.get("hash_of") == "contents":
        same = base_model_hash(folder) == recorded["hash"]
    else:
        same = _size_hash(folder) == recorded["hash"]
        if same:
            logger.warning("%s: this bundle recorded its base model by file sizes only (written before"
                           " contents were hashed): a fine-tune of the same shape would pass for %s; retrain to record its contents",
                           path, ref)
    if not same:
        raise BundleError(f"base model {ref} ({folder}) is not the one this bundle was trained on")
    return str(ref)


@dataclass(frozen=True)
class CatalogExtension:
    """What a catalog's SID table adds to the table a bundle was trained on (:func:`extend_table`).

    Attributes:
        sid_table_hash: content hash of the table served (trained items and new items).
        new_items: ``{entity_type: item ids}`` with SIDs the bundle was not trained on.
        inactive: items of the served table marked inactive (kept in histories, never returned).
        untrained_types: catalog types with SIDs but no tokens in the bundle (not served).
    """

    sid_table_hash: str
    new_items: dict[str, tuple[str, ...]]
    inactive: int = 0
    untrained_types: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of new items."""
        return sum(len(ids) for ids in self.new_items.values())

    def to_json(self) -> dict[str, Any]:
        """What the manifest records (counts, not ids)."""
        return {"sid_table_hash": self.sid_table_hash, "new_items": self.count,
                "new_by_type": {t: len(ids) for t, ids in self.new_items.items()},
                "inactive": self.inactive, "untrained_types": list(self.untrained_types)}


@dataclass(frozen=True)
class BundleContents:
    """What :func:`load_bundle` returns (the model is ready for inference, in eval mode).

    ``table`` is the SID table served (``vocab.table``): the catalog's, when it extends the
    snapshot, else the snapshot; ``trained_table`` is the snapshot the bundle was trained on.
    """

    path: Path
    manifest: dict[str, Any]
    model: Any
    tokenizer: Any
    vocab: Any
    table: Any
    prompts_dir: Path
    trained_table: Any = None
    extension: CatalogExtension | None = None

    def is_new(self, item_id: str) -> bool:
        """The item has a SID served here but was not in the table the bundle was trained on."""
        return self.extension is not None and item_id in self.table and item_id not in self.trained_table


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
    from neo_sdk.model import is_tied

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
        "base_model": {"ref": base_ref, "hash": base_model_hash(base_folder), "hash_of": "contents",
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


def read_manifest(path: Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of a bundle, after checking every file against its checksum.

    Args:
        path: the bundle folder.
        verify: check every file (present, unaltered, nothing extra). ``False`` reads the manifest
            alone (its format checked), for a caller that only needs a field before it calls
            :func:`load_bundle`, which verifies every file itself: one load checksums each once.

    Raises:
        BundleError: not a bundle, another bundle format, or (``verify``) a missing, altered or
            unexpected file.
    """
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
    if not verify:
        return dict(manifest)
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

    In order, before any weights are read: every file against its checksum (once), the SID
    snapshot against the manifest, ``catalog`` (when given) against the snapshot
    (:func:`check_catalog`), the base model's contents against the recorded hash
    (:func:`check_base_model`); then the tokenizer's size.

    Args:
        path: the bundle folder.
        catalog: an open :class:`~neo_sdk.catalog.Catalog` whose SID table must be the trained one
            or extend it (module docstring); the returned ``vocab`` and ``table`` then cover the
            catalog's items as they are now (new items, active flags). ``None``: no catalog is
            checked or opened (not even the one the manifest records: :meth:`neo_sdk.Neo.load`
            opens that one) and the snapshot is served.
        base: override the base model folder (default: the manifest's reference).
        merge: merge LoRA weights into the base weights.

    Raises:
        BundleError: anything missing, altered or mismatched, or a catalog that changed or
            removed the SID of a trained item, or has no SIDs.
    """
    import torch
    from safetensors.torch import load_file

    from neo_sdk.model import load_base_model, untie_output_head
    from neo_sdk.vocab import SIDVocab

    path = Path(path)
    manifest = read_manifest(path)
    table = _trained_table(path, manifest)
    served, extension = table, None
    if catalog is not None:
        served, extension = check_catalog(path, catalog, manifest=manifest, trained=table)
        _log_extension(path, manifest, extension)
    ref = check_base_model(path, manifest, base)
    model, _ = load_base_model(ref, num_hidden_layers=manifest["base_model"].get("num_hidden_layers"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True)
    if len(tokenizer) != manifest["tokenizer_size"]:
        raise BundleError(f"{path}: tokenizer has {len(tokenizer)} tokens, manifest says {manifest['tokenizer_size']}")
    vocab = SIDVocab.from_json((path / "vocab.json").read_text(), table=served)
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
    return BundleContents(path, manifest, model, tokenizer, vocab, served, path / "prompts", table, extension)


def extend_table(trained: Any, current: Any, vocab: Any, *, where: str = "the catalog") -> tuple[Any, CatalogExtension]:
    """The table a bundle serves from a catalog's table ``current``, if it extends ``trained``.

    Args:
        trained: the bundle's SID snapshot.
        current: the catalog's SID table now.
        vocab: the bundle's :class:`~neo_sdk.vocab.SIDVocab` (its types and code ranges).
        where: the catalog, as error messages name it.

    Returns:
        ``(served table, extension)``: ``current`` without types the bundle has no tokens for.

    Raises:
        BundleError: a trained item's SID changed or is gone, a type was rebuilt with another
            shape, or a SID needs a code token the bundle does not have.
    """
    from neo_sdk.sids._table import diff_tables

    diff = diff_tables(trained, current)
    fix = ("a bundle serves a catalog only while every item it was trained on keeps its SID: give new items"
           " SIDs with `neo sids assign` (never `neo sids build`) and deactivate items instead of deleting them;"
           " open the catalog the bundle was trained on, or retrain with `neo train`")
    if diff.reshaped:
        raise BundleError(f"the {', '.join(diff.reshaped)} SIDs of {where} were rebuilt (or removed) after this"
                          f" bundle was trained: their shape differs from the trained one; {fix}")
    if diff.changed:
        shown = "; ".join(str(c) for c in diff.changed[:3])
        more = f" and {len(diff.changed) - 3} more" if len(diff.changed) > 3 else ""
        raise BundleError(f"{len(diff.changed)} item(s) this bundle was trained on have another SID in {where}"
                          f" ({shown}{more}); {fix}")
    untrained = tuple(t for t in current.entity_types if t not in vocab.specs)
    served = current.subset([t for t in current.entity_types if t in vocab.specs])
    inactive = 0
    for name in served.entity_types:
        t, spec = served.by_type(name), vocab.specs[name]
        inactive += int((~t.active).sum())
        if len(t) and (t.codes.min() < 0 or t.codes[:, :-1].max(initial=0) >= spec.codes
                       or t.codes[:, -1].max() >= spec.disambiguation):
            raise BundleError(f"{name} SIDs of {where} use codes this bundle has no tokens for"
                              f" (it has {spec.codes} per level, {spec.disambiguation} last codes);"
                              " retrain with `neo train`")
    if untrained:
        logger.warning("%s: entity types %s have SIDs but this bundle has no tokens for them; their items are"
                       " not served until a retrain", where, list(untrained))
    added = {t: ids for t, ids in diff.added.items() if t in vocab.specs}
    return served, CatalogExtension(served.content_hash, added, inactive, untrained)


def check_catalog(path: str | Path, catalog: Any, *, manifest: dict[str, Any] | None = None,
                  trained: Any = None) -> tuple[Any, CatalogExtension]:
    """Check that ``catalog``'s SID table extends the bundle's (no model is loaded).

    Returns:
        ``(served table, extension)`` as :func:`extend_table`.

    Raises:
        BundleError: a catalog without SIDs, or one that does not extend the bundle's table.
    """
    from neo_sdk.sids import SIDTable
    from neo_sdk.vocab import SIDVocab

    path = Path(path)
    manifest = manifest if manifest is not None else read_manifest(path)
    trained = trained if trained is not None else _trained_table(path, manifest)
    try:
        current = SIDTable.load(catalog)
    except SIDError as exc:
        raise BundleError(
            f"{catalog.path} has no Semantic IDs matching this bundle ({exc}); open the catalog the"
            " bundle was trained on"
        ) from exc
    vocab = SIDVocab.from_json((path / "vocab.json").read_text())
    return extend_table(trained, current, vocab, where=str(catalog.path))


def refresh_bundle(path: str | Path, catalog: Any) -> CatalogExtension:
    """Record in the bundle's manifest that it serves ``catalog``, an extension of its SID table.

    The manifest gets ``extension`` (:meth:`CatalogExtension.to_json`, the catalog, the time and
    the catalog the bundle was trained on) and ``catalog`` becomes this catalog (what
    :meth:`~neo_sdk.Neo.load` opens by default). Only the manifest changes, atomically; the
    snapshot the bundle was trained on stays (new items are new relative to it).

    Raises:
        BundleError: an altered bundle, or a catalog that does not extend its SID table.
    """
    path = Path(path)
    manifest = read_manifest(path)
    _, extension = check_catalog(path, catalog, manifest=manifest)
    trained_on = manifest.get("extension", {}).get("trained_catalog", manifest["catalog"])
    manifest["extension"] = extension.to_json() | {
        "catalog": os.path.abspath(catalog.path), "refreshed_at": time.time(), "trained_catalog": trained_on}
    manifest["catalog"] = os.path.abspath(catalog.path)
    _write_atomic(path / MANIFEST, json.dumps(manifest, sort_keys=True, indent=1))
    return extension


def _write_atomic(target: Path, text: str) -> None:
    """Write a file through a temporary sibling *outside* its folder (a crash leaves no stray
    file inside a bundle) and one ``os.replace``."""
    tmp = target.parent.with_name(f".{target.parent.name}.{target.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _log_extension(path: Path, manifest: dict[str, Any], extension: CatalogExtension) -> None:
    if not extension.count:
        return
    recorded = manifest.get("extension", {}).get("sid_table_hash") == extension.sid_table_hash
    logger.info("%s: serving %d items added after training (%s)%s", path, extension.count,
                ", ".join(f"{n} {t}" for t, n in extension.to_json()["new_by_type"].items()),
                "" if recorded else "; `neo bundle refresh` records them in the bundle")


def _trained_table(path: Path, manifest: dict[str, Any]) -> Any:
    table = _load_table(path)
    if table.content_hash != manifest["sid_table_hash"]:
        raise BundleError(f"{path}: SID snapshot does not match the manifest's hash")
    return table


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


def lora_state(model: Any) -> dict[str, Any]:
    """The adapter weights of a peft model (tensors by name, for ``adapter.safetensors``)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()}
