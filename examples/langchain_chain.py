"""ChatNeo in LangChain: an LCEL chain with per-conversation message history.

    python examples/langchain_chain.py --bundle demo/bundle --user 196
"""

from __future__ import annotations

import argparse

from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from neo_sdk import ChatNeo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="demo/bundle")
    parser.add_argument("--user", default="196")
    args = parser.parse_args()

    chat = ChatNeo(bundle=args.bundle, user=args.user, sessions=":memory:")
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    histories: dict[str, InMemoryChatMessageHistory] = {}
    bot = RunnableWithMessageHistory(
        prompt | chat, lambda session_id: histories.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="input", history_messages_key="history",
    )
    config = {"configurable": {"session_id": "demo"}}
    for turn in ("find 3 items for me", "more like the second one", "not that one"):
        print(f"> {turn}")
        reply = None
        for chunk in bot.stream({"input": turn}, config=config):  # text streams, items as they complete
            print(chunk.content, end="", flush=True)
            reply = chunk if reply is None else reply + chunk
        items = [f"{i['id']} ({i['type']})" for i in reply.response_metadata["neo_items"]]
        print(f"\n  items: {', '.join(items)}\n")


if __name__ == "__main__":
    main()
