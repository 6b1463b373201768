"""Facts and target types come from the catalog's own fields, relations and log: nothing assumes movies."""

from __future__ import annotations

import pytest

from neo_sdk import Catalog, Interaction, Item, Relation
from neo_sdk.errors import ConfigError
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import CatalogFacts


def _podcasts() -> Catalog:
    catalog = Catalog(":memory:")
    catalog.declare_type("show", ["title", "topics", "language", "description"])
    catalog.declare_type("episode", ["title", "published", "description"])
    catalog.declare_type("host", ["title"])
    topics = [["Science", "History"], ["Science"], ["Comedy"], ["History", "Politics"]]
    languages = ["English", "English", "Spanish", "German"]
    catalog.add_items(
        [Item(f"s{k}", "show", f"Show {k}", {"topics": topics[k], "language": languages[k],
                                             "description": f"A long free-text description number {k} of the show."})
         for k in range(4)]
        + [Item(f"e{k}", "episode", f"Episode {k}", {"published": f"20{10 + k}-03-0{k + 1}",
                                                     "description": "Words words words."}) for k in range(6)]
        + [Item("h0", "host", "Ada Host")]
    )
    catalog.add_relations([Relation(f"e{k}", "part_of", f"s{k % 4}") for k in range(6)]
                          + [Relation("s0", "hosted_by", "h0")])
    catalog.add_users([(f"u{u}", {}) for u in range(5)])
    catalog.add_interactions(
        [Interaction(f"u{u}", f"e{(u + k) % 6}", float(k)) for u in range(5) for k in range(4)]
        + [Interaction("u0", "s1", 10.0)])
    return catalog


def test_facts_read_category_and_year_fields_of_any_catalog() -> None:
    facts = CatalogFacts(_podcasts(), load_prompts())
    assert facts.category_field["show"] == "topics"  # a list of short labels shared by several shows
    assert facts.genres("s3") == ["History", "Politics"]
    assert facts.year_field["episode"] == "published" and facts.year("e2") == 2012
    assert facts.decade("e0") == "2010s"
    assert facts.year("s0") is None and facts.genres("h0") == []  # no field is assumed
    assert "Show 0" in facts.label("e0") or "Show 0" in facts.label("e4")  # relations in the label


def test_target_types_come_from_the_log_in_order_of_interactions() -> None:
    catalog = _podcasts()
    assert catalog.target_types() == ["episode", "show"]
    assert catalog.target_types(["show"]) == ["show"]
    with pytest.raises(ConfigError, match="not an entity type"):
        catalog.target_types(["movie"])
    with pytest.raises(ConfigError, match="no user interacts"):
        catalog.target_types(["host"])
    empty = Catalog(":memory:")
    empty.declare_type("book")
    with pytest.raises(ConfigError, match="no interactions"):
        empty.target_types()
