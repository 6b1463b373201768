"""Quickstart: load a trained bundle, start a session for a user, ask in words.

    make demo                       # imports MovieLens-100k, builds SIDs, trains demo/bundle
    python examples/quickstart.py   # or: --bundle PATH --user ID
"""

from __future__ import annotations

import argparse

from neo_sdk import Neo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="demo/bundle")
    parser.add_argument("--user", default="196", help="a user id of the bundle's catalog")
    parser.add_argument("--sessions", default=":memory:", help="session database (default: in memory)")
    args = parser.parse_args()

    with Neo.load(args.bundle, sessions=args.sessions) as neo:
        session = neo.session(user=args.user)
        for request in ("top 10 for me", "like this, explain why", "more like the first one", "describe my taste"):
            answer = session.ask(request)
            print(f"> {request}\n{answer}\n")
        # Every item is a real catalog record:
        for item in answer.items or session.turns[0].items[:3]:
            print(f"  {item.id:<24} {item.type:<8} {item.title}  score={item.score}")


if __name__ == "__main__":
    main()
