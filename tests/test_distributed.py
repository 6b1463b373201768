"""The distributed training path, run for real with two processes on the CPU (gloo).

``accelerate launch --multi_gpu --num_processes 2`` is the launcher many GPUs use (torchrun under the
hood); on a machine without GPUs (or with ``ACCELERATE_USE_CPU=1``) neo-sdk forms a CPU process
group instead (:func:`neo_sdk.training._loop.process_state`). ``accelerate launch --cpu
--num_processes 2`` is not used: accelerate's ``--cpu`` launcher starts a single process (several CPU
processes need MPI), so it would test nothing distributed.

What must hold with two processes: each trains on its own share of the batches (disjoint, equal in
number), both stop at the same step when the main process's time budget ends (a process stopping
alone would hang the other in the gradient all-reduce: these tests would then time out), the
parameters stay identical, only the main process writes, and the bundle it writes loads and answers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``accelerate launch --multi_gpu --num_processes 2 ARGS`` on the CPU, in its own process group
    (killed whole on timeout: a hung rank must not outlive the test)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
           "ACCELERATE_USE_CPU": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"accelerate launch did not finish in {timeout:.0f} s (a rank waiting alone?)\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


SHARED_BUDGET_SCRIPT = '''
import json, random, sys
from pathlib import Path
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from neo_sdk.encoding import Encoded
from neo_sdk.training._loop import LoopConfig, process_state, train_loop

state = process_state()
out = Path(sys.argv[1])
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False))
for param in model.parameters():
    param.requires_grad_(False)
head = model.get_output_embeddings().weight
head.requires_grad_(True)
rng = random.Random(0)
examples = []
for _ in range(37):  # 19 batches of 2: an odd count, so the last one is left for the next epoch
    ids = [rng.randrange(1, 64) for _ in range(rng.randint(6, 12))]
    examples.append(Encoded(ids, [-100] * (len(ids) - 3) + ids[-3:], "toy"))
# each process's own budget: the main process's lasts ~3 s; the other's would end after one step
minutes = 0.05 if state.is_main_process else 1e-5
config = LoopConfig(max_minutes=minutes, batch_size=2, lr=1e-2, warmup_steps=1, checkpoint_every=5)
result = train_loop(model, [("lm_head", head)], examples, config, pad_id=0,
                    checkpoint_dir=out / f"ckpt-rank{state.process_index}")
record = result.to_json() | {"head_sum": float(head.detach().double().sum()), "lr": config.lr}
(out / f"rank{state.process_index}.json").write_text(json.dumps(record))
'''


def test_two_processes_share_data_budget_and_writes(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(SHARED_BUDGET_SCRIPT)
    done = launch(str(script), str(tmp_path), cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # the main process's time budget stopped both at the same step, well after the other's own budget
    assert ranks[0]["steps"] == ranks[1]["steps"] > 3
    assert ranks[0]["losses"] == ranks[1]["losses"]  # shared: the mean over both processes
    assert ranks[0]["head_sum"] == pytest.approx(ranks[1]["head_sum"], abs=1e-9)  # same updates, same LR
    assert ranks[0]["world_size"] == 2
    shares = ranks[0]["processes"]
    assert [p["rank"] for p in shares] == [0, 1]
    assert shares[0]["batches"] == shares[1]["batches"] == ranks[0]["steps"]
    assert set(shares[0]["first_batches"]).isdisjoint(shares[1]["first_batches"])
    assert all(i % 2 == 0 for i in shares[0]["first_batches"]) and all(i % 2 == 1 for i in shares[1]["first_batches"])
    assert ranks[0]["examples"] == shares[0]["examples"] + shares[1]["examples"]
    # only the main process writes checkpoints
    assert (tmp_path / "ckpt-rank0" / "loop.json").exists()
    assert not (tmp_path / "ckpt-rank1").exists()
    assert json.loads((tmp_path / "ckpt-rank0" / "loop.json").read_text())["step"] == ranks[0]["steps"]


def test_accelerate_launch_trains_a_bundle_that_loads_and_answers(tmp_path: Path) -> None:
    from tests.test_domain_e2e import build_podcast_catalog

    db = build_podcast_catalog(tmp_path)
    bundle = tmp_path / "bundle"
    done = launch("-m", "neo_sdk", "train", "--db", db, "--out", str(bundle), "--layers", "2", "--max-steps", "4",
                  "--max-minutes", "3", "--batch-size", "4", "--no-probes", cwd=tmp_path, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((bundle / "manifest.json").read_text())
    loop = manifest["metrics"]["instruct"]["loop"]
    assert loop["world_size"] == 2 and loop["steps"] == 4
    shares = loop["processes"]
    assert [p["batches"] for p in shares] == [4, 4]  # each process its own half of the batches
    assert set(shares[0]["first_batches"]).isdisjoint(shares[1]["first_batches"])
    assert loop["examples"] == sum(p["examples"] for p in shares) == 2 * 4 * 4

    from neo_sdk import Neo

    with Neo.load(bundle, sessions=":memory:") as neo:
        answer = neo.session(user="listener001").ask("recommend 3 episodes")
        assert answer.entity_type == "episode" and len(answer.items) == 3
        assert all(neo.catalog.get(item.id).entity_type == "episode" for item in answer.items)
