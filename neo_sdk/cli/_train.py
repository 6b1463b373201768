"""``neo train``: staged training into a bundle (``neo bundle`` lives in :mod:`neo_sdk.cli._bundle`)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = sub.add_parser(
        "train", help="stage 2 (alignment) and stage 3 (instruction tuning) into a bundle",
        description="Train a bundle from a catalog whose SIDs are built (neo sids build)."
                    " Multi-GPU: accelerate launch -m neo_sdk train ...",
    )
    train.add_argument("--db", required=True, help="catalog SQLite file with SIDs")
    train.add_argument("--out", required=True, help="bundle folder to write")
    train.add_argument("--stage", choices=["align", "instruct", "all"], default="all",
                       help="instruct continues from the stage-2 bundle at --out")
    train.add_argument("--max-minutes", type=float, default=15.0,
                       help="budget for the whole run (loading, both stages, saving); the plan of what it"
                            " buys is printed first; the probes run after it, timed apart")
    train.add_argument("--type", action="append", dest="types", metavar="TYPE",
                       help="entity type next-item probes target (repeatable; default: every type users"
                            " interact with, in proportion)")
    train.add_argument("--align-share", type=float, default=0.25,
                       help="largest share of the budget stage 2 may take (its feature pass shrinks to fit)")
    train.add_argument("--max-steps", type=int, help="cap on stage 3 optimizer steps")
    train.add_argument("--base", default=None, help="base model alias or local HF folder")
    train.add_argument("--layers", type=int, help="fast preset: keep only the first N layers")
    train.add_argument("--lora-layers", type=int, default=8, help="LoRA on the top N layers (0: all)")
    train.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    train.add_argument("--batch-size", type=int, default=8,
                       help="stage 3 batch (8 beat 4 and 16 at 15 CPU minutes; see bench/RESULTS.md)")
    train.add_argument("--lr", type=float, default=1e-3,
                       help="stage 3 learning rate (1e-3 beat 5e-4 at batch 8 and 15 CPU minutes)")
    train.add_argument("--tasks", default="next_item,search,explain,profile,like_this",
                       help="stage 3 tasks, comma-separated")
    train.add_argument("--replay-share", type=float, default=0.2,
                       help="share of stage 2 examples mixed into stage 3")
    train.add_argument("--replay-weights", type=_task_weights, default=None, metavar="TASK=W,...",
                       help="relative replay share per stage 2 task; tasks left out are not replayed"
                            " (default: sid_to_type=4,sid_to_text=1,text_to_sid=1)")
    train.add_argument("--loss-per", choices=["token", "example"], default="token",
                       help="stage 3 loss: mean over tokens, or each example weighs the same")
    train.add_argument("--no-history-loss", action="store_true",
                       help="next-item examples supervise only the answer, not the codes of their history")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--no-probes", action="store_true", help="skip the quality probes")
    train.add_argument("--probe-users", type=int, default=200, help="users sampled for the next-item probe")
    train.add_argument("--probe-items", type=int, default=200,
                       help="items sampled for the text -> SID and SID -> type probes")
    train.set_defaults(handler=_train)


def _task_weights(text: str) -> tuple[tuple[str, float], ...]:
    """``"text_to_sid=3,sid_to_type=2"`` -> ``(("text_to_sid", 3.0), ("sid_to_type", 2.0))``."""
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        task, _, value = part.partition("=")
        try:
            pairs.append((task.strip(), float(value)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected TASK=WEIGHT, e.g. text_to_sid=3") from None
    return tuple(pairs)


def _train(args: argparse.Namespace) -> int:
    from neo_sdk.model import DEFAULT_BASE
    from neo_sdk.training import TrainSettings, train

    settings = TrainSettings(
        base=args.base or DEFAULT_BASE, num_hidden_layers=args.layers, stage=args.stage,
        max_minutes=args.max_minutes, max_steps=args.max_steps, full=args.full,
        lora_layers=args.lora_layers or None, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        target_types=tuple(t.strip() for arg in args.types or () for t in arg.split(",") if t.strip()),
        align_share=args.align_share,
        probe_users=args.probe_users, probe_items=args.probe_items, replay_share=args.replay_share, loss_per=args.loss_per,
        history_loss=not args.no_history_loss,
        **({"replay_weights": args.replay_weights} if args.replay_weights is not None else {}),
        instruction_tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
    )
    metrics = train(args.db, args.out, settings, resume=args.resume, probes=not args.no_probes)
    print(json.dumps(metrics, indent=1, sort_keys=True))
    return 0
