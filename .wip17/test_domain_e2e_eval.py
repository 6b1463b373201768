# Proposed replacement for tests/test_domain_e2e.py::test_eval_prints_model_and_baselines
# (neo eval's JSON and table changed shape in issue 17; not run by the helper).
@pytest.mark.slow
def test_eval_prints_model_and_baselines(podcasts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    quick = ["--sasrec-minutes", "0.05", "--steer-prompts", "2", "--cold-start", "0", "--bootstrap", "100"]
    assert main(["eval", "--bundle", podcasts["bundle"], "--users", "12", "--split", "valid", "--json", *quick]) == 0
    result = json.loads(capsys.readouterr().out)
    by_type = result["next_item"]
    assert set(by_type) | set(result["skipped"]) == {"episode", "show"} and "episode" in by_type
    for etype, comparison in by_type.items():
        assert comparison["stage"] == "valid" and 0 < comparison["n_users"] <= 12
        assert comparison["model"] == "neo (beam search)"
        assert list(comparison["methods"]) == ["neo (beam search)", "popularity", "popularity (seen incl.)",
                                               "item-knn", "sasrec-ce"]
        for method in comparison["methods"].values():
            assert {"HR@10", "NDCG@10", "HR@5", "NDCG@5"} <= set(method["metrics"])
            assert method["invalid_rate"] == 0.0
            assert method["excluded_rate"] == 0.0 or not method["exclude_seen"]  # only plain popularity repeats
        assert comparison["validity"]["wrong_type_rate"] == 0.0
        assert all(r["config"]["entity_type"] == etype for r in comparison["per_seed"][0]["reports"])
    assert main(["eval", "--bundle", podcasts["bundle"], "--db", podcasts["db"], "--users", "6", "--type", "episode",
                 "--no-sasrec", "--steer-prompts", "0", "--cold-start", "none"]) == 0
    text = capsys.readouterr().out
    assert "next episode: test split, 6 users" in text and "neo (beam search)" in text
    assert "item-knn" in text and "/ popularity" in text
    assert main(["eval", "--bundle", podcasts["bundle"], "--type", "podcast"]) == 1
    assert "not an entity type of this catalog" in capsys.readouterr().err
