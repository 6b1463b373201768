"""``ChatNeo``: LangChain's standard unit tests, then real calls on a trained (tiny) bundle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from neo_sdk import Answer, ChatNeo
from neo_sdk.errors import ConfigError
from neo_sdk.integrations import answer_of
from neo_sdk.session import ItemRef, Neo, Request
from neo_sdk.session._answer import ItemPart, StreamEvent, TextPart


class TestChatNeoStandard(ChatModelUnitTests):
    """The langchain-tests unit suite (construction, standard params, init cost; no model load)."""

    @property
    def chat_model_class(self) -> type[ChatNeo]:
        return ChatNeo

    @property
    def chat_model_params(self) -> dict:
        return {"bundle": "demo/bundle", "user": "196"}

    @property
    def has_structured_output(self) -> bool:
        return False  # only neo_sdk.Answer is supported; generic schemas raise (tested below)


@pytest.fixture(scope="module")
def chat(trained_bundle: Path) -> ChatNeo:
    neo = Neo.load(trained_bundle, sessions=":memory:")
    yield ChatNeo(neo=neo, user="ben")
    neo.close()


# ---------------------------------------------------------- a scripted runtime (no model)
DUNE = ItemRef(id="book:dune", type="book", title="Dune", sid="<a><b>", year=1965)
FOUNDATION = ItemRef(id="book:foundation", type="book", title="Foundation", sid="<a><c>", year=1951)
SEGMENTS = [ItemPart(item=DUNE), TextPart(text=" is a desert epic. Try "), ItemPart(item=FOUNDATION),
            TextPart(text=" next.\nAnd more.")]
TEXT = "Dune (1965) is a desert epic. Try Foundation (1951) next.\nAnd more."


def scripted_answer() -> Answer:
    request = Request(text="books like dune, explain why", task="like_this", entity_type="book", format="mixed", k=1)
    return Answer(text=TEXT, segments=SEGMENTS, items=[DUNE, FOUNDATION], task="like_this", entity_type="book",
                  format="mixed", request=request, session_id="s", turn=0)


class ScriptedSession:
    """What ChatNeo uses of a Session; streams the scripted answer in 4-character pieces."""

    def __init__(self, user: str | None) -> None:
        self.user, self.answers, self.focus, self.max_new_tokens = user, [], None, None

    def ask(self, text: str, **steering) -> Answer:
        return scripted_answer()

    def stream(self, text: str, **steering):
        for segment in SEGMENTS:
            if isinstance(segment, ItemPart):
                yield StreamEvent(segment.item.label(), item=segment.item)
            else:
                for at in range(0, len(segment.text), 4):
                    yield StreamEvent(segment.text[at : at + 4])
        yield StreamEvent(answer=scripted_answer())


class ScriptedNeo:
    def __init__(self) -> None:
        self.users: list[str | None] = []

    def session(self, user: str | None = None, **kwargs) -> ScriptedSession:
        self.users.append(user)
        return ScriptedSession(user)


def streamed(model: ChatNeo, **kwargs):
    chunks = list(model.stream("books like dune, explain why", **kwargs))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    return chunks, whole


def check_consistent(message, text: str, ids: list[str]) -> None:
    assert message.content == text
    assert [i["id"] for i in message.response_metadata.get("neo_items", [])] == ids
    answer = answer_of(message)
    assert answer.text == text and [i.id for i in answer.items] == ids
    assert "".join(s.text if isinstance(s, TextPart) else s.item.label() for s in answer.segments) == text


@pytest.mark.parametrize(("stop", "text", "ids"), [
    (["\n"], "Dune (1965) is a desert epic. Try Foundation (1951) next.", ["book:dune", "book:foundation"]),
    ([" Try", "nothing"], "Dune (1965) is a desert epic.", ["book:dune"]),
    (["desert epic"], "Dune (1965) is a ", ["book:dune"]),  # the stop spans two streamed pieces
    (["Found"], "Dune (1965) is a desert epic. Try ", ["book:dune"]),  # inside a label: the item goes
    (["(1951) next", "epic"], "Dune (1965) is a desert ", ["book:dune"]),  # the first match cuts
    (["Dune"], "", []),
    (["absent"], TEXT, ["book:dune", "book:foundation"]),
])
def test_stop_cuts_the_text_and_drops_the_items_after_the_cut(stop: list[str], text: str, ids: list[str]) -> None:
    model = ChatNeo(neo=ScriptedNeo())
    check_consistent(model.invoke("books like dune, explain why", stop=stop), text, ids)
    chunks, whole = streamed(model, stop=stop)
    check_consistent(whole, text, ids)
    item_chunks = [c for c in chunks if c.response_metadata.get("neo_items")]
    assert [c.content for c in item_chunks] == [i.label() for i in (DUNE, FOUNDATION) if i.id in ids]


def test_the_stop_field_applies_unless_the_call_names_its_own() -> None:
    model = ChatNeo(neo=ScriptedNeo(), stop_sequences=["\n"])
    assert model.invoke("books like dune").content == TEXT.split("\n")[0]
    assert streamed(model)[1].content == TEXT.split("\n")[0]
    assert model.invoke("books like dune", stop=[" Try"]).content == "Dune (1965) is a desert epic."
    assert ChatNeo(neo=ScriptedNeo(), stop=["."]).invoke("books like dune").content == "Dune (1965) is a desert epic"


def test_temperature_other_than_greedy_is_refused() -> None:
    """The runtime decodes greedily (no sampling path): 0 or None, anything else is an error."""
    for ok in (None, 0, 0.0):
        assert ChatNeo(bundle="demo/bundle", temperature=ok).temperature == ok
    with pytest.raises(ConfigError, match="greedy"):
        ChatNeo(bundle="demo/bundle", temperature=0.7)
    model = ChatNeo(neo=ScriptedNeo())
    with pytest.raises(ConfigError, match="greedy"):
        model.invoke("books like dune", temperature=0.5)
    assert model.invoke("books like dune", temperature=0).content == TEXT


def test_the_bound_or_configured_user_is_the_sessions_user() -> None:
    neo = ScriptedNeo()
    model = ChatNeo(neo=neo, user="ben")
    model.invoke("hi")
    model.bind(user="chloe").invoke("hi")
    model.invoke("hi", config={"metadata": {"neo_user": "ana"}})
    model.invoke("hi", config={"configurable": {"neo_user": "dan"}})
    list(model.bind(user="eve").stream("hi"))
    assert neo.users == ["ben", "chloe", "ana", "dan", "eve"]


def items_of(message) -> list[dict]:
    return message.response_metadata["neo_items"]


@pytest.mark.slow
def test_invoke_puts_real_items_in_the_metadata(chat: ChatNeo) -> None:
    message = chat.invoke("find books, top 3")
    assert isinstance(message, AIMessage)
    items = items_of(message)
    assert 1 <= len(items) <= 3
    neo = chat.runtime()
    for item in items:
        assert neo.catalog.get(item["id"]).entity_type == item["type"] == "book"
        assert item["title"] in message.content
    assert message.response_metadata["neo"]["task"] == "search"


@pytest.mark.slow
def test_stream_sends_text_then_each_item_when_its_span_completes(chat: ChatNeo) -> None:
    chunks = list(chat.stream("books like this, explain why"))
    item_chunks = [c for c in chunks if c.response_metadata.get("neo_items")]
    assert item_chunks and all(len(c.response_metadata["neo_items"]) == 1 for c in item_chunks)
    assert item_chunks[0].content == item_chunks[0].response_metadata["neo_items"][0]["title"] + (
        f" ({item_chunks[0].response_metadata['neo_items'][0]['year']})"
    )
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    answer = answer_of(whole)
    assert whole.content == answer.text and answer.format == "mixed"
    assert [i["id"] for i in whole.response_metadata["neo_items"]] == [i.id for i in answer.items]


@pytest.mark.slow
def test_batch_and_async(chat: ChatNeo) -> None:
    batch = chat.batch(["find books", "recommend 2 books"])
    assert [m.response_metadata["neo"]["task"] for m in batch] == ["search", "next_item"]
    result = asyncio.run(chat.ainvoke("find books", k=2))
    assert len(items_of(result)) == 2

    async def collect() -> list:
        return [c async for c in chat.astream("find books", k=2)]

    chunks = asyncio.run(collect())
    assert sum(bool(c.response_metadata.get("neo_items")) for c in chunks) == 2


@pytest.mark.slow
def test_user_comes_from_config_or_binding(chat: ChatNeo) -> None:
    as_ana = chat.invoke("recommend 3 books", config={"metadata": {"neo_user": "ana"}})
    ana_seen = {i.item_id for i in chat.runtime().catalog.history("ana")}
    assert not {i["id"] for i in items_of(as_ana)} & ana_seen
    neo = chat.runtime()
    opened = []
    session = neo.session

    def spy(*args, **kwargs):
        opened.append(session(*args, **kwargs))
        return opened[-1]

    neo.session = spy
    try:
        bound = chat.bind(user="chloe").invoke("describe my taste")
        as_ben = chat.invoke("describe my taste")
    finally:
        del neo.session
    assert bound.response_metadata["neo"]["task"] == "profile"
    assert [s.user for s in opened] == ["chloe", "ben"]  # bound user, then the model's own
    chloe_seen = [i.item_id for i in neo.catalog.history("chloe")]
    assert opened[0].history[-len(chloe_seen):] == chloe_seen != opened[1].history[-len(chloe_seen):]
    assert as_ben.response_metadata["neo"]["task"] == "profile"
    configurable = chat.invoke("recommend 3 books", config={"configurable": {"neo_user": "ana"}})
    assert not {i["id"] for i in items_of(configurable)} & ana_seen


@pytest.mark.slow
def test_max_tokens_caps_one_model_not_the_shared_runtime(chat: ChatNeo) -> None:
    neo = chat.runtime()
    short = ChatNeo(neo=neo, user="ben", max_tokens=4).invoke("describe my taste")
    assert short.response_metadata["neo"]["task"] == "profile"
    assert len(neo.tokenizer(short.content)["input_ids"]) <= 4
    assert neo.max_new_tokens == 64


@pytest.mark.slow
def test_lcel_chain(chat: ChatNeo) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "find {topic} books, top {k}")])
    chain = prompt | chat | StrOutputParser()
    # a search stating only facts recommends within them, consumed items excluded: ben has read
    # both fantasy books, neither romance
    text = chain.invoke({"topic": "romance", "k": 2})
    assert text.startswith("1. ") and {line[3:] for line in text.splitlines()} == {"Emma (1815)", "Persuasion (1817)"}


@pytest.mark.slow
def test_message_history_follow_ups(chat: ChatNeo) -> None:
    stores: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    with_history = RunnableWithMessageHistory(
        prompt | chat, lambda sid: stores.setdefault(sid, InMemoryChatMessageHistory()),
        input_messages_key="input", history_messages_key="history",
    )
    config = {"configurable": {"session_id": "s1"}}
    first = with_history.invoke({"input": "find books, top 3"}, config=config)
    second = with_history.invoke({"input": "more like the second one"}, config=config)
    assert second.response_metadata["neo"]["request"]["focus"] == items_of(first)[1]["id"]
    assert len(stores["s1"].messages) == 4


@pytest.mark.slow
def test_stored_neo_session_continues_across_calls(chat: ChatNeo) -> None:
    config = {"metadata": {"neo_session": "chat-1"}}
    first = chat.invoke([HumanMessage("find books, top 3")], config=config)
    second = chat.invoke([HumanMessage("more like the second one")], config=config)
    assert second.response_metadata["neo"]["request"]["focus"] == items_of(first)[1]["id"]
    assert second.response_metadata["neo"]["turn"] == 1


@pytest.mark.slow
def test_structured_output(chat: ChatNeo) -> None:
    answer = chat.with_structured_output(Answer).invoke("find books, top 2")
    assert isinstance(answer, Answer) and len(answer.items) == 2

    class Person(BaseModel):
        name: str

    with pytest.raises(NotImplementedError, match="neo_sdk.Answer"):
        chat.with_structured_output(Person)


def test_clear_errors_without_a_bundle_or_a_request() -> None:
    with pytest.raises(ConfigError, match="needs bundle="):
        ChatNeo().invoke("hi")
    with pytest.raises(ConfigError, match="not produced by ChatNeo"):
        answer_of(AIMessage("hello"))
