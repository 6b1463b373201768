"""Integrations over the session runtime: ``ChatNeo`` (LangChain chat model)."""

from neo_sdk.integrations._langchain import ChatNeo, answer_of

__all__ = ["ChatNeo", "answer_of"]
