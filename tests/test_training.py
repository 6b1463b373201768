"""Training plumbing on a 2-layer slice of the real SmolLM2 and the sample catalog.

Quality is measured in bench/ on the demo catalog; these tests pin the mechanics: frozen weights
stay bitwise frozen, loss goes down, labels mask the prompt, checkpoints resume, bundles round-trip
and refuse tampering.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from neo_sdk import BundleError, ConfigError, Item, leave_one_out
from neo_sdk.bundle import load_bundle, read_manifest, save_bundle
from neo_sdk.model import load_base_model, resolve_base
from neo_sdk.prompts import default_prompts_dir, load_prompts
from neo_sdk.sids import SIDConfig, SIDTable, assign_new, build_sids
from neo_sdk.tasks import CatalogFacts, build_alignment_examples, build_instruction_examples
from neo_sdk.training import AlignConfig, ExampleEncoder, InstructConfig, LoopConfig, align, instruct, train_loop
from neo_sdk.training.alignment import anchor_words, init_input_rows, sid_rows
from neo_sdk.vocab import SIDVocab
from tests.conftest import build_sample_catalog

LAYERS = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train")
    catalog = build_sample_catalog(root / "sample.db")
    build_sids(catalog, SIDConfig(levels=2, codes=2), progress=False)
    table = SIDTable.load(catalog)
    prompts = load_prompts()
    facts = CatalogFacts(catalog, prompts)
    return root, catalog, table, prompts, facts


def fresh_model(table: SIDTable):
    torch.manual_seed(0)
    model, tokenizer = load_base_model(num_hidden_layers=LAYERS)
    vocab = SIDVocab.from_table(table)
    vocab.attach(tokenizer)
    vocab.resize_model(model, seed=0)
    return model, tokenizer, vocab


def test_labels_mask_the_prompt_and_items_become_spans(setup) -> None:
    _, catalog, table, prompts, _ = setup
    _, tokenizer, vocab = fresh_model(table)
    encoder = ExampleEncoder(tokenizer, vocab)
    example = build_alignment_examples(catalog, prompts, seed=0, tasks=("text_to_sid",))[0]
    encoded = encoder.encode(example)
    n_prompt = encoded.prompt_length
    assert n_prompt > 5 and all(y == -100 for y in encoded.labels[:n_prompt])
    completion = encoded.input_ids[n_prompt:]
    assert encoded.labels[n_prompt:] == completion
    span = vocab.encode_item(example.meta["item"])
    assert completion == span + [encoder.end_id]
    assert "You are a helpful" not in tokenizer.decode(encoded.input_ids)  # default system prompt dropped


def test_history_loss_supervises_history_codes_of_next_item_examples_only(setup) -> None:
    _, catalog, table, prompts, _ = setup
    _, tokenizer, vocab = fresh_model(table)
    plain = ExampleEncoder(tokenizer, vocab)
    history = ExampleEncoder(tokenizer, vocab, history_loss=("next_item",))
    examples = build_instruction_examples(catalog, leave_one_out(catalog), prompts, seed=0,
                                          tasks=("next_item", "explain"))
    next_item = max((e for e in examples if e.task == "next_item"), key=lambda e: e.prompt.count("[[item:"))
    a, b = plain.encode(next_item), history.encode(next_item)
    assert a.input_ids == b.input_ids and a.prompt_length == b.prompt_length
    codes = set(vocab.sid_token_ids().tolist())
    prompt_ids, prompt_labels = b.input_ids[: b.prompt_length], b.labels[: b.prompt_length]
    history_codes = [t for t in prompt_ids if t in codes]
    assert len(history_codes) >= 2 * vocab.specs["book"].length  # at least two history items
    assert [y for y in prompt_labels if y != -100] == history_codes  # every history code, nothing else
    assert all(y == -100 for y in a.labels[: a.prompt_length])
    assert b.labels[b.prompt_length:] == a.labels[a.prompt_length:]  # the answer is supervised either way
    explain = next(e for e in examples if e.task == "explain")
    assert history.encode(explain).labels == plain.encode(explain).labels  # other tasks: prompt masked


def test_codes_start_as_distinct_title_words(setup) -> None:
    _, _, table, _, facts = setup
    model, tokenizer, vocab = fresh_model(table)
    titles = {i: facts.label(i) for t in facts.by_type for i in facts.by_type[t]}
    anchors = anchor_words(tokenizer, vocab, table, titles)
    used = {int(vocab.code_token_ids(t)[m, c]) for t in table.entity_types
            for m in range(table.by_type(t).codes.shape[1]) for c in set(table.by_type(t).codes[:, m].tolist())}
    assert set(anchors) == used
    assert len(set(anchors.values())) == len(anchors)  # distinct words
    assert max(anchors.values()) < min(sid_rows(vocab))  # real (old-vocabulary) tokens
    words = {k: w[1:] for k, w in zip(anchors, tokenizer.convert_ids_to_tokens(list(anchors.values())), strict=True)}
    assert all(w.isalpha() and w.islower() and len(w) >= 4 for w in words.values())
    t = table.by_type("book")
    grid = vocab.code_token_ids("book")
    from_titles = 0
    for code in set(t.codes[:, 0].tolist()):
        members = " ".join(titles[str(i)].lower() for i in t.item_ids[t.codes[:, 0] == code])
        from_titles += words[int(grid[0, code])] in members
    assert from_titles >= 1  # k-means codes take a word from their items' titles where one exists
    init_input_rows(model, tokenizer, vocab, table, titles, anchors=anchors)
    embed = model.get_input_embeddings().weight
    a, b = (int(grid[0, c]) for c in sorted(set(t.codes[:, 0].tolist()))[:2])
    torch.testing.assert_close(embed[a] - embed[b], embed[anchors[a]] - embed[anchors[b]])


def test_stage2_changes_only_sid_rows(setup) -> None:
    _, catalog, table, prompts, facts = setup
    model, tokenizer, vocab = fresh_model(table)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = torch.as_tensor(sorted(sid_rows(vocab)))
    examples = build_alignment_examples(catalog, prompts, seed=0)
    titles = {i: facts.label(i) for t in facts.by_type for i in facts.by_type[t]}
    result = align(model, tokenizer, vocab, table, examples,
                   AlignConfig(row_steps=4, row_batch_size=8, fit_steps=30),
                   titles=titles, encoder=ExampleEncoder(tokenizer, vocab))
    assert result.rows is not None and result.rows.steps == 4
    assert result.fit_losses[-1] < result.fit_losses[0]
    old = torch.ones(model.get_input_embeddings().weight.shape[0], dtype=torch.bool)
    old[rows] = False
    for name, param in model.named_parameters():
        if name.endswith("embed_tokens.weight"):
            assert torch.equal(param[old], before[name][old])
            assert not torch.equal(param[rows], before[name][rows])
        elif name == "lm_head.weight":  # untied by stage 2: old rows equal the frozen embeddings
            assert torch.equal(param[old], before["model.embed_tokens.weight"][old])
        else:
            assert torch.equal(param, before[name]), name
    head = model.get_output_embeddings().weight
    assert not torch.equal(head[rows], model.get_input_embeddings().weight[rows])


def test_loop_loss_decreases_and_resume_continues(setup, tmp_path: Path) -> None:
    _, catalog, table, prompts, _ = setup
    model, tokenizer, vocab = fresh_model(table)
    encoder = ExampleEncoder(tokenizer, vocab)
    encoded = [encoder.encode(e) for e in build_alignment_examples(catalog, prompts, seed=0)][:16]
    head = [("embed", model.get_input_embeddings().weight)]
    for param in model.parameters():
        param.requires_grad_(False)
    head[0][1].requires_grad_(True)
    config = LoopConfig(max_steps=12, batch_size=16, lr=1e-2, warmup_steps=1, checkpoint_every=6)
    result = train_loop(model, head, encoded, config, pad_id=tokenizer.pad_token_id)
    assert sum(result.losses[-3:]) < sum(result.losses[:3])
    # resume: a run stopped at step 6 continues to 12 with the same schedule
    ckpt = tmp_path / "ckpt"
    model2, tokenizer2, _ = fresh_model(table)
    param = model2.get_input_embeddings().weight
    for p in model2.parameters():
        p.requires_grad_(False)
    param.requires_grad_(True)
    first = train_loop(model2, [("embed", param)], encoded, LoopConfig(max_steps=6, batch_size=16, lr=1e-2,
                       warmup_steps=1, checkpoint_every=3), pad_id=tokenizer2.pad_token_id, checkpoint_dir=ckpt)
    assert json.loads((ckpt / "loop.json").read_text())["step"] == 6
    resumed = train_loop(model2, [("embed", param)], encoded, config, pad_id=tokenizer2.pad_token_id,
                         checkpoint_dir=ckpt, resume=True)
    assert resumed.resumed_from == 6 and resumed.steps == 12
    assert resumed.losses[:6] == first.losses


def test_stage3_lora_trains_and_bundle_round_trips(setup, tmp_path: Path) -> None:
    _, catalog, table, prompts, _ = setup
    model, tokenizer, vocab = fresh_model(table)
    encoder = ExampleEncoder(tokenizer, vocab)
    split = leave_one_out(catalog)
    examples = build_instruction_examples(catalog, split, prompts, seed=0)
    encoded = [encoder.encode(e) for e in examples]
    model, loop = instruct(model, encoded, InstructConfig(lora_layers=1, max_steps=8, max_minutes=None,
                                                         batch_size=8, lr=5e-3),
                           new_rows=sid_rows(vocab), pad_id=tokenizer.pad_token_id)
    assert loop.steps == 8 and loop.losses[-1] < loop.losses[0]
    bundle = tmp_path / "bundle"
    save_bundle(bundle, model=model, tokenizer=tokenizer, vocab=vocab, table=table,
                base_ref="smollm2-135m-instruct", base_folder=resolve_base(), prompts_dir=default_prompts_dir(),
                catalog_path=catalog.path, training={"test": True}, metrics={"steps": loop.steps}, kind="lora",
                num_hidden_layers=LAYERS)
    loaded = load_bundle(bundle, catalog=catalog)
    probe = torch.tensor([encoder.encode(examples[0]).input_ids])
    with torch.no_grad():
        expected = model(probe).logits
        got = loaded.model(probe).logits
    assert torch.allclose(expected, got, atol=1e-4)
    assert loaded.vocab.encode_item("book:dune") == vocab.encode_item("book:dune")
    assert read_manifest(bundle)["metrics"] == {"steps": 8}

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    with open(tampered / "sid_rows.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(tampered)
    (tampered / "sid_rows.safetensors").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tampered)

    other = build_sample_catalog(tmp_path / "other.db")
    build_sids(other, SIDConfig(levels=2, codes=2), progress=False)
    other.add_items([Item("book:new", "book", "A new book", {"genres": "Fantasy"})])
    assign_new(other, progress=False)  # one more SID: a catalog that extends the trained one is served
    grown = load_bundle(bundle, catalog=other)
    assert grown.is_new("book:new") and not grown.is_new("book:dune")
    assert grown.vocab.encode_item("book:dune") == vocab.encode_item("book:dune")
    build_sids(other, SIDConfig(levels=1, codes=3), progress=False)  # rebuilt: trained SIDs changed
    with pytest.raises(BundleError, match="were rebuilt"):
        load_bundle(bundle, catalog=other)
    with pytest.raises(BundleError, match="not a neo-sdk bundle"):
        load_bundle(tmp_path)


def test_completion_loss_equals_the_models_own_loss(setup) -> None:
    from neo_sdk.encoding import Encoded
    from neo_sdk.training._format import collate
    from neo_sdk.training._loop import completion_loss

    model, _, _ = fresh_model(setup[2])
    batch = collate([Encoded([1, 2, 3, 4, 5, 6], [-100, -100, -100, 4, 5, 6], "x"),
                     Encoded([7, 8, 9, 10], [-100, -100, 9, 10], "x")], pad_id=0)
    with torch.no_grad():
        ours = completion_loss(model, batch, "cpu")
        theirs = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_per_example_loss_weighs_every_example_the_same(setup) -> None:
    from neo_sdk.encoding import Encoded
    from neo_sdk.training._format import collate
    from neo_sdk.training._loop import LoopConfig, completion_loss

    model, _, _ = fresh_model(setup[2])
    long = Encoded([1, 2, 3, 4, 5, 6, 7, 8], [-100, -100, 3, 4, 5, 6, 7, 8], "explain")
    short = Encoded([9, 10, 11, 12], [-100, -100, -100, 12], "next_item")
    with torch.no_grad():
        each = [completion_loss(model, collate([e], pad_id=0), "cpu") for e in (long, short)]
        mixed = completion_loss(model, collate([long, short], pad_id=0), "cpu", per_example=True)
        by_token = completion_loss(model, collate([long, short], pad_id=0), "cpu")
    assert torch.allclose(mixed, (each[0] + each[1]) / 2, atol=1e-5)
    assert torch.allclose(by_token, (6 * each[0] + each[1]) / 7, atol=1e-5)
    with pytest.raises(ConfigError, match="loss_per"):
        LoopConfig(max_steps=1, loss_per="batch")


def test_replay_is_balanced_across_tasks_and_types() -> None:
    import random

    from neo_sdk.training._pipeline import balanced_sample

    pool = [("sid_to_type", "person")] * 700 + [("sid_to_type", "movie")] * 300 + [("text_to_sid", "movie")] * 20
    picked = balanced_sample(pool, 300, random.Random(0), key=lambda e: e)
    counts = {k: picked.count(k) for k in set(pool)}
    assert counts == {("text_to_sid", "movie"): 20, ("sid_to_type", "movie"): 140, ("sid_to_type", "person"): 140}
    assert balanced_sample(pool, 5000, random.Random(0), key=lambda e: e).count(("sid_to_type", "person")) == 700


def test_replay_weights_set_each_task_share() -> None:
    import random

    from neo_sdk.training._pipeline import TrainSettings, balanced_sample

    pool = [("text_to_sid", t) for t in ("movie", "person") for _ in range(500)] + [("sid_to_type", "movie")] * 500
    weights = {"text_to_sid": 3.0, "sid_to_type": 1.0}
    picked = balanced_sample(pool, 700, random.Random(0), key=lambda e: e, weight=lambda g: weights[g[0]])
    counts = {k: picked.count(k) for k in set(pool)}
    assert counts == {("text_to_sid", "movie"): 300, ("text_to_sid", "person"): 300, ("sid_to_type", "movie"): 100}
    none = balanced_sample(pool, 700, random.Random(0), key=lambda e: e, weight=lambda g: 0.0 if g[0] == "sid_to_type" else 1.0)
    assert ("sid_to_type", "movie") not in none and len(none) == 700
    with pytest.raises(ConfigError, match="unknown task"):
        TrainSettings(replay_weights=(("next_item", 1.0),))
    with pytest.raises(ConfigError, match=">= 0"):
        TrainSettings(replay_weights=(("text_to_sid", -1.0),))


def test_output_fit_sees_one_query_for_every_item(setup) -> None:
    from neo_sdk.training.alignment import fit_sample

    _, catalog, table, prompts, _ = setup
    _, tokenizer, vocab = fresh_model(table)
    examples = build_alignment_examples(catalog, prompts, seed=0)
    encoded = [ExampleEncoder(tokenizer, vocab).encode(e) for e in examples]
    by_id = {id(enc): ex for ex, enc in zip(examples, encoded)}
    items = {e.meta["item"] for e in examples if e.task == "text_to_sid"}
    picked = fit_sample(examples, encoded, AlignConfig(fit_items=None, fit_other_share=0.2))
    queried = [by_id[id(enc)].meta["item"] for enc in picked if enc.task == "text_to_sid"]
    assert sorted(queried) == sorted(items)  # every item once, though each has two queries
    others = [enc for enc in picked if enc.task != "text_to_sid"]
    assert len(others) == round(len(items) * 0.2 / 0.8) and {e.task for e in others} <= {"sid_to_text", "sid_to_type"}
    capped = fit_sample(examples, encoded, AlignConfig(fit_items=3, fit_other_share=0.0))
    assert len(capped) == 3 and {e.task for e in capped} == {"text_to_sid"}
    with pytest.raises(ConfigError, match="fit_other_share"):
        AlignConfig(fit_other_share=1.0)


def test_row_mask_follows_the_gradient_to_another_device() -> None:
    # `neo train --stage instruct` makes the mask with the model on the CPU, then accelerate moves the
    # model to the GPU (found on the lent H200). The meta device stands in for the GPU here.
    from neo_sdk.training._rows import RowMask

    weight = torch.nn.Parameter(torch.ones(5, 3))
    mask = RowMask([weight], rows=[1, 3])
    (weight * 2).sum().backward()
    assert weight.grad[:, 0].tolist() == [0, 2, 0, 2, 0]
    (hook,) = weight._backward_hooks.values()  # the mask's tensor hook; a CPU mask times this grad raised
    masked = hook(torch.ones(5, 3, device="meta"))
    assert masked.device.type == "meta" and masked.shape == (5, 3)
    mask.remove()
    assert not weight._backward_hooks
