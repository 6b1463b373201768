"""Dependencies point one way: catalog → sids → vocab/prompts → tasks → encoding → decoding →
bundle → runtime (session) → integrations/cli, with training and evaluation beside the runtime.

Every ``import`` in the package is read (module-level and function-level alike) and checked
against the layer each module belongs to.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import neo_sdk

PACKAGE = Path(neo_sdk.__file__).parent

# the rooms of each layer, lowest first; a module may import its own room and lower layers
ORDER: list[tuple[str, ...]] = [
    ("errors", "_names"),
    ("_files", "_home", "_assets", "_sqlite"),
    ("catalog",),
    ("sids",),
    ("model", "vocab", "prompts"),
    ("tasks",),
    ("encoding", "retrieval"),
    ("decoding",),
    ("bundle",),
    ("session", "evaluation"),  # the runtime; evaluation beside it
    ("training",),  # beside the runtime: its probes score with neo_sdk.evaluation
    ("integrations", "server", "client"),  # beside each other: none imports another
    ("cli",),
    ("__main__", "__init__"),
]
LAYERS: dict[str, int] = {room: n for n, rooms in enumerate(ORDER) for room in rooms}
def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_rooms(path: Path) -> set[str]:
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "neo_sdk":
                names = [f"neo_sdk.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "neo_sdk" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


def test_every_room_has_a_layer() -> None:
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(LAYERS), f"rooms without a layer: {sorted(rooms - set(LAYERS))}"


def test_imports_point_down() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = room_of(path)
        for target in imported_rooms(path):
            if target == room or target not in LAYERS:
                continue
            if LAYERS[target] > LAYERS[room] or (LAYERS[target] == LAYERS[room] and room != "__init__"):
                wrong.append(f"{path.relative_to(PACKAGE)} imports neo_sdk.{target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_the_runtime_does_not_load_training() -> None:
    """Loading the runtime (and the LangChain integration) never imports the training pipeline."""
    code = (
        "import sys, neo_sdk.session, neo_sdk.integrations, neo_sdk.bundle, neo_sdk.decoding\n"
        "from neo_sdk import Neo, Session, ChatNeo\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('neo_sdk.training', 'neo_sdk.evaluation')))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the runtime imported: {out.stdout.strip()}"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from neo_sdk.training._loop import train_loop\n    from neo_sdk import Neo\n")
    assert imported_rooms(bad) == {"training", "Neo"}
