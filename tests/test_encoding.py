"""``ExampleEncoder`` ends every answer with the end-of-turn token its tokenizer defines.

The token is read from the tokenizer (:func:`neo_sdk.model.end_of_turn_id`), never spelled: a
chat template that closes a turn with another token (Gemma's ``<end_of_turn>``), or a tokenizer
without a template (a base model: ``eos``), gets its own id. Checked on copies of the default
base's tokenizer, so no second model has to be installed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from neo_sdk.encoding import ExampleEncoder
from neo_sdk.model import DEFAULT_BASE, load_tokenizer
from neo_sdk.sids import SIDTable, TypeSIDs
from neo_sdk.tasks import Example
from neo_sdk.vocab import SIDVocab

GEMMA_STYLE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def smollm2():
    return load_tokenizer(DEFAULT_BASE)


def encoder_for(tokenizer) -> ExampleEncoder:
    table = SIDTable({"book": TypeSIDs("book", 1, 2, 2, np.array(["book:a", "book:b"], dtype=object),
                                       np.array([[0, 0], [1, 0]], dtype=np.int32), np.ones(2, dtype=bool))})
    vocab = SIDVocab.from_table(table)
    vocab.attach(tokenizer)
    return ExampleEncoder(tokenizer, vocab)


def completion_end(encoder: ExampleEncoder) -> int:
    encoded = encoder.encode(Example("text_to_sid", "the book called A", "[[item:book:a]]", "book", "ids"))
    assert encoded.input_ids[-1] == encoded.labels[-1]  # the end token is a target
    return encoded.input_ids[-1]


def test_smollm2_answers_end_with_im_end(smollm2) -> None:
    encoder = encoder_for(copy.deepcopy(smollm2))
    assert completion_end(encoder) == encoder.end_id == smollm2.convert_tokens_to_ids("<|im_end|>")


def test_another_templates_end_of_turn_token_ends_the_answer(smollm2) -> None:
    tokenizer = copy.deepcopy(smollm2)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tokenizer.chat_template = GEMMA_STYLE
    encoder = encoder_for(tokenizer)
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end != tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert completion_end(encoder) == encoder.end_id == end
    assert tokenizer.decode(encoder.frame_ids()[1]) == "<end_of_turn>\n<start_of_turn>model\n"


def test_without_a_template_the_answer_ends_with_eos(smollm2) -> None:
    tokenizer = copy.deepcopy(smollm2)
    tokenizer.chat_template = None
    tokenizer.eos_token = "<|endoftext|>"
    encoder = encoder_for(tokenizer)
    assert completion_end(encoder) == encoder.end_id == tokenizer.eos_token_id
    assert encoder.end_id != tokenizer.convert_tokens_to_ids("<|im_end|>")
