"""Where text -> SID is lost: which items the stage-2 output fit saw, and adapters vs. output rows.

    python bench/text_to_sid_diag.py --db demo/catalog.db --stage2 S2_BUNDLE [--final FINAL_BUNDLE]

``S2_BUNDLE`` is a stage-2 bundle (``neo train --stage align``) trained with the default
``AlignConfig`` and seed 0, so the items of its output-fit sample can be rebuilt. Prints text ->
SID hit@10 on held-out phrasings (the training probe's item sample) split by whether the item's
query was in the fit sample. With ``--final`` (a LoRA bundle trained from the same SIDs) it also
scores the four combinations of {adapters on, off} x {final, stage-2 SID output rows}; SID input
rows are not trained in stage 3, so the swap isolates the two kinds of drift. ``NEO_DEVICE=cuda``
runs it on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import load_file

from neo_sdk.bundle import load_bundle
from neo_sdk.catalog import Catalog
from neo_sdk.decoding import build_decoder
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import CatalogFacts, build_alignment_examples
from neo_sdk.training import AlignConfig, ExampleEncoder
from neo_sdk.training._probe import (
    probe_text_to_sid,
    text_to_sid_rankings,
)
from neo_sdk.training.alignment import fit_sample


def hits_by_coverage(contents, catalog, prompts, facts, n: int) -> dict[str, dict[str, float]]:
    encoder = ExampleEncoder(contents.tokenizer, contents.vocab, system=prompts.system)
    examples = build_alignment_examples(catalog, prompts, seed=0, facts=facts)
    encoded = [encoder.encode(e) for e in examples]
    origin = {id(enc): ex for ex, enc in zip(examples, encoded, strict=True)}
    fitted = {origin[id(enc)].meta["item"] for enc in fit_sample(examples, encoded, AlignConfig())
              if enc.task == "text_to_sid"}
    rankings = text_to_sid_rankings(build_decoder(contents.model, encoder), facts, prompts, n=n)
    tally = {True: [0, 0], False: [0, 0]}
    for item, got in rankings.items():
        tally[item in fitted][0] += item in got
        tally[item in fitted][1] += 1
    return {("in fit sample" if k else "not in fit sample"): {"items": v[1], "hit@10": round(v[0] / max(1, v[1]), 3)}
            for k, v in tally.items()}


def drift(final: str, stage2: str, catalog, prompts, facts, n: int) -> dict[str, float]:
    contents = load_bundle(final, catalog=catalog, merge=False)
    model = contents.model.to(os.environ.get("NEO_DEVICE", "cpu"))
    encoder = ExampleEncoder(contents.tokenizer, contents.vocab, system=prompts.system)
    decoder = build_decoder(model, encoder)
    head = model.get_output_embeddings().weight
    rows = load_file(f"{stage2}/sid_rows.safetensors")
    index = rows["rows"].long().to(head.device)
    final_rows = head[index].detach().clone()

    def hit() -> float:
        return probe_text_to_sid(decoder, facts, prompts, n=n)["hit@10"]

    out = {"adapters on, final rows": hit()}
    with torch.no_grad():
        head[index] = rows["output"].to(head.device, head.dtype)
    out["adapters on, stage-2 rows"] = hit()
    with model.disable_adapter():
        out["adapters off, stage-2 rows"] = hit()
        with torch.no_grad():
            head[index] = final_rows
        out["adapters off, final rows"] = hit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--stage2", required=True, help="stage-2 bundle (neo train --stage align)")
    parser.add_argument("--final", help="LoRA bundle trained from the same SIDs")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    catalog = Catalog(args.db)
    prompts = load_prompts()
    facts = CatalogFacts(catalog, prompts)
    stage2 = load_bundle(args.stage2, catalog=catalog)
    stage2.model.to(os.environ.get("NEO_DEVICE", "cpu"))
    result = {"coverage": hits_by_coverage(stage2, catalog, prompts, facts, args.items)}
    if args.final:
        result["drift"] = drift(args.final, args.stage2, catalog, prompts, facts, args.items)
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
