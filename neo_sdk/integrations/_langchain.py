"""``ChatNeo``: a trained bundle as a LangChain chat model.

* The last human message is the request; earlier AI messages produced by ``ChatNeo`` carry their
  request and items in ``response_metadata``, so follow-ups ("more like the second one") work
  with any message store, e.g. ``RunnableWithMessageHistory``.
* Item references: ``message.response_metadata["neo_items"]`` (id, type, title, SID, score) and
  the whole answer in ``response_metadata["neo"]``.
* Streaming: text token by token; each item reference as its SID span completes (a chunk whose
  content is the item's title and whose ``neo_items`` holds it).
* Per call: the user comes from ``invoke(..., user=...)`` / ``.bind(user=...)``, from
  ``config={"metadata": {"neo_user": ...}}`` or ``config={"configurable": {"neo_user": ...}}``,
  else from the ``user`` field. ``neo_session`` (same places) continues a stored ``Session``
  instead of reading the dialogue from the messages.
* ``stop`` (``invoke(..., stop=[...])``, else the ``stop`` / ``stop_sequences`` field) cuts the
  answer before the first occurrence of any stop string, as LangChain chat models do: the message
  text ends there, and the items whose label does not end before the cut are dropped from
  ``neo_items`` and from the answer in ``response_metadata["neo"]`` (a label cut in two stays as
  plain text). Streaming holds back only text that could start a stop string. A stored session
  (``neo_session``) keeps the whole answer the runtime produced.
* ``temperature``: the runtime decodes greedily, so only ``None`` or ``0`` is accepted (at
  construction and per call); any other value raises :class:`~neo_sdk.errors.ConfigError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from neo_sdk.errors import ConfigError
from neo_sdk.session._answer import Answer, Steering
from neo_sdk.session._stops import StopCutter, cut_at_stop

_OPTIONS = tuple(Steering.__annotations__)  # call options passed on to Session.ask


class ChatNeo(BaseChatModel):
    """A neo-sdk bundle behind LangChain's chat model interface.

    Example:
        >>> chat = ChatNeo(bundle="demo/bundle", user="196")         # doctest: +SKIP
        >>> chat.invoke("movies like this, explain why").content     # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    bundle: str | None = Field(default=None, description="bundle folder (loaded on first use)")
    catalog: str | None = Field(default=None, description="catalog path overriding the bundle's")
    sessions: str | None = Field(default=None, description="session database for neo_session calls")
    neo: Any = Field(default=None, exclude=True, description="an already loaded neo_sdk.Neo")
    user: str | None = Field(default=None, description="default catalog user id")
    k: int | None = Field(default=None, description="default number of items of id answers")
    temperature: float | None = Field(
        default=None, description="None or 0 only: the runtime decodes greedily (another value raises ConfigError)")
    max_tokens: int | None = Field(default=None, description="cap on generated tokens (text/mixed)")
    stop: list[str] | None = Field(default=None, alias="stop_sequences",
                                   description="cut answers before the first of these strings (a call's stop wins)")
    streaming: bool = False
    model_name: str = Field(default="neo", alias="model")

    _loaded: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @field_validator("temperature")
    @classmethod
    def _greedy_only(cls, value: float | None) -> float | None:
        _check_temperature(value)
        return value

    @property
    def _llm_type(self) -> str:
        return "neo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "bundle": self.bundle, "user": self.user, "k": self.k}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "neo"
        params["ls_model_name"] = kwargs.get("model") if isinstance(kwargs.get("model"), str) else self.model_name
        return params

    # ----------------------------------------------------------------------------- runtime
    def runtime(self) -> Any:
        """The :class:`~neo_sdk.Neo` behind this model (loaded from ``bundle`` on first use)."""
        if self.neo is not None:
            return self.neo
        with self._lock:
            if self._loaded is None:
                if not self.bundle:
                    raise ConfigError("ChatNeo needs bundle= (a trained bundle folder) or neo= (a loaded Neo)")
                from neo_sdk.session import Neo

                self._loaded = Neo.load(Path(self.bundle), catalog=self.catalog, sessions=self.sessions)
            return self._loaded

    def _session(self, messages: Sequence[BaseMessage], run_manager: Any, kwargs: dict[str, Any]) -> tuple[Any, str]:
        neo = self.runtime()
        user = self._option("neo_user", "user", run_manager, kwargs) or self.user
        stored = self._option("neo_session", "session_id", run_manager, kwargs)
        request = _last_human_text(messages)
        if stored:
            session = neo.session(user=user, session_id=str(stored))
        else:  # the dialogue is the messages: earlier ChatNeo answers carry their requests and items
            session = neo.session(user=user, persist=False)
            for message in messages[:-1]:
                if message.type == "ai" and "neo" in (message.response_metadata or {}):
                    session.remember(answer_of(message))
        session.max_new_tokens = self.max_tokens
        return session, request

    @staticmethod
    def _option(name: str, kwarg: str, run_manager: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs.get(kwarg) is not None:
            return kwargs[kwarg]
        metadata = getattr(run_manager, "metadata", None) or {}
        return metadata.get(name)

    def _ask_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {key: kwargs[key] for key in _OPTIONS if kwargs.get(key) is not None}
        if "k" not in options and self.k is not None:
            options["k"] = self.k
        return options

    # ------------------------------------------------------ per-call config -> call options
    @staticmethod
    def _configured(config: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``configurable`` ``neo_user`` / ``neo_session`` of a call's config, as call options."""
        configurable = (config or {}).get("configurable") or {}
        for key, option in (("neo_user", "user"), ("neo_session", "session_id")):
            if configurable.get(key) is not None and kwargs.get(option) is None:
                kwargs[option] = configurable[key]
        return kwargs

    def invoke(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return super().invoke(input, config, stop=stop, **self._configured(config, kwargs))

    async def ainvoke(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return await super().ainvoke(input, config, stop=stop, **self._configured(config, kwargs))

    def stream(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return super().stream(input, config, stop=stop, **self._configured(config, kwargs))

    def astream(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return super().astream(input, config, stop=stop, **self._configured(config, kwargs))

    # ------------------------------------------------------------------------- generation
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _check_temperature(kwargs.get("temperature"))
        session, request = self._session(messages, run_manager, kwargs)
        answer = cut_at_stop(session.ask(request, **self._ask_options(kwargs)), self._stops(stop))
        message = AIMessage(content=answer.text, response_metadata=self._metadata(answer))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        _check_temperature(kwargs.get("temperature"))
        session, request = self._session(messages, run_manager, kwargs)
        cutter = StopCutter(self._stops(stop))
        for event in session.stream(request, **self._ask_options(kwargs)):
            if event.answer is not None:
                parts = cutter.finish()
            else:
                parts = cutter.feed(event.text, event.item)
            for text, item in parts:
                if item is not None:
                    message = AIMessageChunk(content=text, response_metadata={"neo_items": [item.model_dump(mode="json")]})
                elif text:
                    message = AIMessageChunk(content=text)
                else:
                    continue
                yield self._emit(ChatGenerationChunk(message=message), run_manager)
            if event.answer is not None:
                metadata = self._metadata(cut_at_stop(event.answer, cutter.stops))
                del metadata["neo_items"]  # already sent, one per item chunk
                yield self._emit(ChatGenerationChunk(message=AIMessageChunk(
                    content="", response_metadata=metadata, chunk_position="last")), run_manager)

    @staticmethod
    def _emit(chunk: ChatGenerationChunk, run_manager: Any) -> ChatGenerationChunk:
        if run_manager:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        return chunk

    def _stops(self, stop: list[str] | None) -> tuple[str, ...]:
        """The call's stop strings, else the field's (empty strings ignored)."""
        chosen = stop if stop is not None else self.stop
        return tuple(s for s in chosen or () if s)

    def _metadata(self, answer: Answer) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "neo": answer.model_dump(mode="json", exclude={"items"}),
            "neo_items": [item.model_dump(mode="json") for item in answer.items],
        }

    # ------------------------------------------------------------------------ structured
    def with_structured_output(self, schema: Any = None, *, include_raw: bool = False, **kwargs: Any) -> Any:
        """Only ``schema=neo_sdk.Answer`` is supported: the structured answer with its catalog items.

        Raises:
            NotImplementedError: any other schema (the model emits catalog items, not free JSON).
        """
        if schema is not Answer:
            raise NotImplementedError(
                "ChatNeo returns catalog items, not free-form JSON: use with_structured_output(neo_sdk.Answer)"
                " for the structured answer, or read message.response_metadata['neo_items']"
            )
        if include_raw:
            return self | RunnableLambda(lambda message: {"raw": message, "parsed": answer_of(message),
                                                          "parsing_error": None})
        return self | RunnableLambda(answer_of)


def answer_of(message: BaseMessage) -> Answer:
    """The :class:`Answer` carried by a ``ChatNeo`` message (invoked or aggregated from a stream)."""
    meta = message.response_metadata
    if "neo" not in meta:
        raise ConfigError("this message was not produced by ChatNeo (no 'neo' in response_metadata)")
    return Answer.model_validate({**meta["neo"], "items": meta.get("neo_items", [])})


def _check_temperature(value: Any) -> None:
    if value is not None and value != 0:
        raise ConfigError(
            f"ChatNeo has no sampling: its decoding is greedy (the most likely allowed token each"
            f" step), so temperature must be None or 0, got {value!r}"
        )


def _last_human_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or getattr(message, "type", "") == "human":
            text = message.text if isinstance(message.text, str) else message.text()
            if text.strip():
                return text
    raise ConfigError("ChatNeo needs a human message with the request text")
