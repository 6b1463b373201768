"""``neo ask`` (one request) and ``neo chat`` (an interactive session) over a trained bundle."""

from __future__ import annotations

import argparse
import sys

from neo_sdk._names import OUTPUT_FORMATS, TASKS


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ask = sub.add_parser("ask", help="answer one request with a trained bundle",
                         description="Answer one request. The bundle knows its catalog; --db overrides it.")
    _common(ask)
    ask.add_argument("text", help='the request, e.g. "movies like this, explain why"')
    ask.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    ask.add_argument("--task", choices=TASKS)
    ask.add_argument("--type", dest="entity_type", help="entity type of the items to return")
    ask.add_argument("--format", choices=OUTPUT_FORMATS)
    ask.add_argument("-k", "--k", type=int, help="number of items of an id list")
    ask.set_defaults(handler=_ask)

    chat = sub.add_parser("chat", help="interactive session (type a request; /record ID, /quit)")
    _common(chat)
    chat.set_defaults(handler=_chat)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder (neo train --out)")
    parser.add_argument("--db", help="catalog SQLite file (default: the one the bundle was trained on)")
    parser.add_argument("--user", help="catalog user id: the session starts from their history")
    parser.add_argument("--history", help="comma-separated item ids to start from")
    parser.add_argument("--session", help="resume (or create) this session id")
    parser.add_argument("--sessions", help="session database (default: $NEO_HOME/sessions.db)")


def _open(args: argparse.Namespace):
    from neo_sdk.session import Neo

    neo = Neo.load(args.bundle, catalog=args.db, sessions=args.sessions)
    history = [h.strip() for h in (args.history or "").split(",") if h.strip()]
    session = neo.session(user=args.user, history=history or None, session_id=args.session)
    return neo, session


def _ask(args: argparse.Namespace) -> int:
    neo, session = _open(args)
    with neo:
        answer = session.ask(args.text, task=args.task, entity_type=args.entity_type, format=args.format, k=args.k)
        print(answer.model_dump_json(indent=1) if args.json else answer)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from neo_sdk.errors import NeoError

    neo, session = _open(args)
    out = sys.stdout
    with neo:
        print(f"session {session.id} (user {session.user or '-'}); /record ITEM, /quit", file=out)
        for line in sys.stdin:
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            try:
                if text.startswith("/record "):
                    session.record(text.split(maxsplit=1)[1])
                    print(f"recorded; focus is now {session.focus}", file=out)
                    continue
                answer = None
                for event in session.stream(text):
                    answer = event.answer or answer
                    if event.text:
                        out.write(event.text)
                        out.flush()
                assert answer is not None
                print(f"\n  [{answer.task} · {answer.entity_type} · {answer.format}]", file=out)
            except NeoError as exc:  # a bad request ends the turn, not the chat
                print(f"error: {exc}", file=out)
    return 0
