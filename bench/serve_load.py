"""Load on ``neo serve`` over loopback: throughput, latency, errors and session isolation under N clients.

One server process (``neo serve`` on a free 127.0.0.1 port, two API keys, SQLite sessions in a temp
folder) is started; then for each concurrency level two phases run, each bounded by ``--seconds``
AND by ``--requests`` per client:

* ``mix``: every client cycles through id lists (chat "top 10 for me" and ``/v1/recommend``),
  mixed answers ("recommend one and explain why"), the same request streamed, and the playground's
  own requests (the page, its script and style, catalog, models, users, the user's history, the
  session list, then the cards of the user's recent items);
* ``ids``: id lists only, so the micro-batching of beam searches shows directly (the ratio of
  N-client to 1-client id-list throughput is printed; the goal is 8 clients >= 2x one).

Every client has its own stored session (``session_id``) under one of two keys (alternating) and its
own catalog user. Leaks are counted: an answer naming another session, a turn number that does not
grow, a session of the other key that answers anything but 404, a stored turn of another session.

Writes the numbers as JSON (``--out``) and a plot next to it (``.png``).

Usage: python bench/serve_load.py --bundle demo/bundle --clients 1,8,16 --seconds 20 --requests 50
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx

from neo_sdk.client import NeoClient
from neo_sdk.errors import APIError, NotFoundError

IDS, MIXED, STREAM, PAGE = "ids", "mixed", "stream", "page"
MIX_CYCLE = [(IDS, "chat"), (MIXED, "chat"), (IDS, "recommend"), (STREAM, "chat"), (PAGE, "playground")]
# what the playground asks for when it opens and after an answer (its chat turns are the stream kind)
PAGE_GETS = ["/", "/playground/playground.js", "/playground/playground.css", "/v1/catalog", "/v1/models",
             "/v1/users?limit=100", "/v1/users/{user}?recent=8", "/v1/sessions?limit=20"]
IDS_CYCLE = [(IDS, "chat"), (IDS, "recommend")]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def catalog_users(bundle: Path, db: str | None, n: int) -> list[str]:
    """``n`` user ids of the catalog (the one the bundle names unless ``db`` is given)."""
    path = db or json.loads((bundle / "manifest.json").read_text())["catalog"]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        users = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id LIMIT ?", [n])]
    if not users:
        raise SystemExit(f"{path}: the catalog has no users")
    return users


# ----------------------------------------------------------------------------- the server
class Server:
    """``neo serve`` as a child process on loopback; stopped by :meth:`stop` (always, see main)."""

    def __init__(self, args: argparse.Namespace, workdir: Path, keys: dict[str, str]) -> None:
        self.port = args.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        command = [sys.executable, "-m", "neo_sdk", "serve", "--bundle", str(args.bundle), "--host", "127.0.0.1",
                   "--port", str(self.port), "--sessions", str(workdir / "sessions.db")]
        if args.db:
            command += ["--db", args.db]
        if args.threads:
            command += ["--threads", str(args.threads)]
        env = {**os.environ, "NEO_API_KEYS": ",".join(f"{name}={key}" for name, key in keys.items())}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)  # Ctrl-C reaches us; we stop it

    def wait_ready(self, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise SystemExit(f"neo serve exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).json().get("status") == "ok":
                    return time.monotonic() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"neo serve was not ready within {timeout_s:.0f} s:\n{self.tail()}")

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/health", timeout=10).json()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful stop
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----------------------------------------------------------------------------- the clients
@dataclass
class Tally:
    """What one phase measured, filled by every client thread."""

    latency: dict[str, list[float]] = field(default_factory=lambda: {IDS: [], MIXED: [], STREAM: [], PAGE: []})
    first_text: list[float] = field(default_factory=list)  # streams: seconds to the first text
    errors: Counter = field(default_factory=Counter)  # HTTP status (0: no connection) → count
    leaks: Counter = field(default_factory=Counter)  # kind of leak → count
    probes: int = 0  # reads of another key's session
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0


@dataclass
class Client:
    index: int
    key_name: str
    key: str
    user: str
    session_id: str
    strangers: list[str]  # sessions of the other key


def run_client(url: str, client: Client, cycle: list[tuple[str, str]], deadline: float, max_requests: int,
               tally: Tally, stop: threading.Event, timeout: float) -> None:
    """One client: its own session, requests until the deadline or its count, leak checks as it goes."""
    last_turn = -1
    with NeoClient(url, client.key, timeout=timeout) as neo:
        session = neo.session(user=client.user, session_id=client.session_id)
        for n in range(max_requests):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            kind, route = cycle[(n + client.index) % len(cycle)]
            started, first = time.perf_counter(), None
            try:
                if kind == PAGE:
                    playground(url, client)
                    with tally.lock:
                        tally.latency[PAGE].append(time.perf_counter() - started)
                    continue
                if kind == IDS and route == "recommend":
                    got = neo.recommend(client.user, k=10, session_id=client.session_id)
                    session_id, turn = got.session_id, got.turn
                elif kind == IDS:
                    answer = session.ask("top 10 for me")
                    session_id, turn = answer.session_id, answer.turn
                elif kind == MIXED:
                    answer = session.ask("recommend one and explain why")
                    session_id, turn = answer.session_id, answer.turn
                else:
                    answer = None
                    for event in session.stream("recommend one and explain why"):
                        if first is None and event.text:
                            first = time.perf_counter() - started
                        answer = event.answer or answer
                    assert answer is not None
                    session_id, turn = answer.session_id, answer.turn
            except APIError as exc:
                with tally.lock:
                    tally.errors[exc.status] += 1
                continue
            elapsed = time.perf_counter() - started
            with tally.lock:
                tally.latency[kind].append(elapsed)
                tally.done += 1
                if first is not None:
                    tally.first_text.append(first)
                if session_id != client.session_id:
                    tally.leaks["answer names another session"] += 1
                if turn <= last_turn:
                    tally.leaks["turn did not grow"] += 1
            last_turn = max(last_turn, turn)
            if n % 4 == 3:
                probe(neo, client, tally, n)
        probe(neo, client, tally, 0)
        try:  # the stored session holds only its own turns
            stored = session.turns()
            with tally.lock:
                tally.leaks["stored turn of another session"] += sum(t.session_id != client.session_id
                                                                     for t in stored)
        except NotFoundError:
            pass  # no request of this client succeeded
        except APIError as exc:
            with tally.lock:
                tally.errors[exc.status] += 1


def playground(url: str, client: Client) -> None:
    """What the playground requests when it opens, then the cards of the user's recent items (an
    error raises :class:`APIError` with its status)."""
    headers = {"Authorization": f"Bearer {client.key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        recent: list[str] = []
        for path in PAGE_GETS:
            try:
                response = http.get(path.format(user=client.user))
            except httpx.HTTPError as exc:
                raise APIError(f"{path}: {exc}", status=0) from exc
            if response.status_code != 200:
                raise APIError(f"{path}: {response.text[:200]}", status=response.status_code)
            if "recent=" in path:
                recent = [item["id"] for item in response.json()["recent"]]
        if recent:
            response = http.get("/v1/items", params=[("id", i) for i in recent])
            if response.status_code != 200:
                raise APIError(f"/v1/items: {response.text[:200]}", status=response.status_code)


def probe(neo: NeoClient, client: Client, tally: Tally, n: int) -> None:
    """Read a session of the other key: anything but 404 is a leak."""
    stranger = client.strangers[n % len(client.strangers)]
    try:
        neo.session(session_id=stranger).turns()
        leak = True
    except NotFoundError:
        leak = False
    except APIError as exc:
        with tally.lock:
            tally.errors[exc.status] += 1
        return
    with tally.lock:
        tally.probes += 1
        tally.leaks["another key's session readable"] += leak


def run_phase(url: str, name: str, clients: int, keys: dict[str, str], users: list[str], probes: dict[str, str],
              args: argparse.Namespace, stop: threading.Event, server: Server) -> dict[str, Any]:
    cycle = MIX_CYCLE if name == "mix" else IDS_CYCLE
    names = list(keys)
    sessions = [f"bench-{name}-{clients}-{i}-{uuid.uuid4().hex[:8]}" for i in range(clients)]
    roster = []
    for i in range(clients):
        key_name = names[i % 2]
        strangers = [probes[k] for k in names if k != key_name]
        strangers += [s for j, s in enumerate(sessions) if names[j % 2] != key_name][:3]
        roster.append(Client(i, key_name, keys[key_name], users[i % len(users)], sessions[i], strangers))
    tally = Tally()
    before = server.health()
    started = time.monotonic()
    deadline = started + args.seconds
    threads = [threading.Thread(target=run_client, daemon=True, name=f"client-{c.index}",
                                args=(url, c, cycle, deadline, args.requests, tally, stop, args.timeout))
               for c in roster]
    for thread in threads:
        thread.start()
    last_report = started
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.5)
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            print(f"    {name} x{clients}: {tally.done} answers, {sum(tally.errors.values())} errors,"
                  f" {last_report - started:.0f} s", flush=True)
    elapsed = time.monotonic() - started
    after = server.health()
    return summarize(name, clients, tally, elapsed, before, after)


def summarize(name: str, clients: int, tally: Tally, elapsed: float, before: dict[str, Any],
              after: dict[str, Any]) -> dict[str, Any]:
    answers = sum(len(v) for kind, v in tally.latency.items() if kind != PAGE)
    batches = after.get("beam_batches", 0) - before.get("beam_batches", 0)
    queries = after.get("beam_queries", 0) - before.get("beam_queries", 0)
    return {
        "phase": name, "clients": clients, "seconds": round(elapsed, 2), "answers": answers,
        "throughput": round(answers / elapsed, 3), "ids_throughput": round(len(tally.latency[IDS]) / elapsed, 3),
        "latency": {kind: {"n": len(v), "p50": percentile(v, 0.5), "p95": percentile(v, 0.95)}
                    for kind, v in tally.latency.items() if v},
        "stream_first_text_p50": percentile(tally.first_text, 0.5),
        "errors": {str(k): v for k, v in sorted(tally.errors.items())},
        "errors_5xx": sum(v for k, v in tally.errors.items() if k >= 500),
        "leaks": sum(tally.leaks.values()), "leak_kinds": {k: v for k, v in tally.leaks.items() if v}, "isolation_probes": tally.probes,
        "beam_batches": batches, "beam_queries": queries,
        "mean_beam_batch": round(queries / batches, 2) if batches else None,
    }


def report(result: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    lat = "  ".join(f"{kind} p50/p95 {ms(v['p50'])}/{ms(v['p95'])} ms (n={v['n']})"
                    for kind, v in result["latency"].items())
    print(f"  {result['phase']:>3} x{result['clients']:<2}: {result['throughput']:.2f} answers/s"
          f" (id lists {result['ids_throughput']:.2f}/s) in {result['seconds']:.1f} s; {lat}")
    first = result["stream_first_text_p50"]
    print(f"         errors {result['errors'] or 'none'} (5xx: {result['errors_5xx']}); leaks {result['leaks']}"
          f" over {result['isolation_probes']} probes {result['leak_kinds'] or ''}; beam batches"
          f" {result['beam_batches']} for {result['beam_queries']} searches (mean {result['mean_beam_batch']})"
          + (f"; stream first text p50 {ms(first)} ms" if first is not None else ""), flush=True)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for phase, key, label in [("ids", "throughput", "id lists only"), ("mix", "throughput", "mix: all answers"),
                              ("mix", "ids_throughput", "mix: id lists")]:
        rows = [r for r in results if r["phase"] == phase]
        left.plot([r["clients"] for r in rows], [r[key] for r in rows], marker="o", label=label)
    left.set(xlabel="concurrent clients", ylabel="answers / s", title="throughput")
    for phase, kind in [("ids", IDS), ("mix", IDS), ("mix", MIXED), ("mix", STREAM), ("mix", PAGE)]:
        rows = [r for r in results if r["phase"] == phase and kind in r["latency"]]
        right.plot([r["clients"] for r in rows], [r["latency"][kind]["p95"] for r in rows], marker="o",
                   label=f"{phase}: {kind}")
    right.set(xlabel="concurrent clients", ylabel="p95 latency (s)", title="p95 latency", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("neo serve on loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("demo/bundle"))
    parser.add_argument("--db", help="catalog file (default: the bundle's)")
    parser.add_argument("--clients", default="1,8,16", help="concurrency levels, comma separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit of each phase")
    parser.add_argument("--requests", type=int, default=50, help="requests per client per phase (at most)")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request (s)")
    parser.add_argument("--threads", type=int, help="torch threads of the server (default: torch's choice)")
    parser.add_argument("--port", type=int, help="server port (default: a free one)")
    parser.add_argument("--startup", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--out", type=Path, default=Path("bench/serve_load.json"))
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    if not levels or min(levels) < 1 or args.seconds <= 0 or args.requests < 1:
        parser.error("--clients, --seconds and --requests must be positive")
    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"{args.bundle}: not a bundle (no manifest.json)")
    users = catalog_users(args.bundle, args.db, max(levels))
    bound = 2 * len(levels) * args.seconds
    print(f"serve_load: start `neo serve` on 127.0.0.1 for {args.bundle}, then for {levels} clients run a 'mix'"
          f" phase (id lists, explanations, streams, the playground's requests) and an 'ids' phase (id lists only), each at most"
          f" {args.seconds:.0f} s and {args.requests} requests per client (about {bound / 60:.1f} min of load, plus"
          f" the server's start); {len(users)} catalog users; results to {args.out}", flush=True)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # a plain kill stops the server too
    keys = {"a": f"sk-bench-{secrets.token_hex(12)}", "b": f"sk-bench-{secrets.token_hex(12)}"}
    stop = threading.Event()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="serve_load-") as tmp:
        server = Server(args, Path(tmp), keys)
        try:
            print(f"  waiting for {server.url}/health ...", flush=True)
            print(f"  server ready in {server.wait_ready(args.startup):.1f} s", flush=True)
            probes = {}
            for name, key in keys.items():  # one stored session per key (the other key must not see it)
                with NeoClient(server.url, key, timeout=args.timeout) as neo:
                    probes[name] = f"bench-probe-{name}-{uuid.uuid4().hex[:8]}"
                    session = neo.session(user=users[0], session_id=probes[name])
                    session.ask("top 10 for me")  # also warms each kind up, unmeasured
                    session.ask("recommend one and explain why")
                    list(session.stream("recommend one and explain why"))
                    neo.recommend(users[0], k=10)
            for clients in levels:
                for phase in ("mix", "ids"):
                    print(f"  {phase} phase, {clients} client{'s' if clients > 1 else ''} ...", flush=True)
                    result = run_phase(server.url, phase, clients, keys, users, probes, args, stop, server)
                    results.append(result)
                    report(result)
        except KeyboardInterrupt:
            print("  interrupted: stopping the server", flush=True)
            stop.set()
        finally:
            server.stop()
    if not results:
        return 1

    ids = {r["clients"]: r["throughput"] for r in results if r["phase"] == "ids"}
    ratios = {c: round(t / ids[1], 2) for c, t in ids.items() if 1 in ids and ids[1] > 0 and c != 1}
    for c, ratio in ratios.items():
        print(f"id-list throughput, {c} clients vs 1: {ratio:.2f}x" + (" (goal >= 2x)" if c == 8 else ""))
    alone = next((r["latency"][IDS]["p50"] for r in results if r["phase"] == "ids" and r["clients"] == 1), None)
    for r in results:
        if r["phase"] == "mix" and alone and IDS in r["latency"]:
            r["ids_p50_vs_alone"] = round(r["latency"][IDS]["p50"] / alone, 2)
            print(f"id-list p50 under mixed load, {r['clients']} clients: {r['ids_p50_vs_alone']:.2f}x its p50 alone"
                  " (goal <= 3x)")
    errors = sum(sum(r["errors"].values()) for r in results)
    print(f"leaks: {sum(r['leaks'] for r in results)} in all; errors: {errors}; 5xx:"
          f" {sum(r['errors_5xx'] for r in results)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"config": config, "levels": results, "ids_ratio_vs_1": ratios}, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(results, png)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
