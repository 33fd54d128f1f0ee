"""The sentence-transformers rankers run for real: tiny BERT models built here (a WordPiece vocabulary
written out, random weights, saved with save_pretrained) and loaded by path through the rankers' own
loading code. A random model ranks nothing meaningfully, so scores are checked against an independent
computation (the embeddings' cosines by hand, the classifier's logits through plain transformers);
what a random model still guarantees (the query's own text is its best match under cosine) is
checked as a ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer  # in requirements.txt: a missing install fails here

from lumos.tools.engines.retrieval import (BiEncoderRanker, CrossEncoderRanker, DenseRanker, make_ranker,
                                           rank_passages)

from tests.tools.ranker_models import POSITIONS, build_models

QUERY = "what is the capital of france"
TEXTS = [
    "paris is the capital and largest city of france",
    "berlin is the capital of germany",
    "the rhine flows through germany",
    "the seine flows through paris",
    "europe",
    "which country has the largest population in europe",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Paths of a bi-encoder, the same bi-encoder with query/document prompts, and a cross-encoder."""
    return build_models(tmp_path_factory.mktemp("dense"))


def _cosines(query_embedding, text_embeddings):
    q = np.asarray(query_embedding, dtype=np.float64)
    t = np.asarray(text_embeddings, dtype=np.float64)
    return (t @ q) / (np.linalg.norm(t, axis=1) * np.linalg.norm(q))


def _cross_encoder_by_hand(path, query, texts, max_length=POSITIONS):
    """sigmoid of the classifier's logit for each (query, text), through plain transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    scores = []
    for text in texts:  # one pair at a time: no padding involved
        encoded = tokenizer(query, text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            scores.append(torch.sigmoid(model(**encoded).logits.float()).item())
    return np.asarray(scores)


# --------------------------------------------------------------------------- the bi-encoder


def test_bi_encoder_scores_are_the_cosines_of_its_embeddings(models):
    ranker = DenseRanker(models["bi"], device="cpu")
    scores = ranker.scores(QUERY, TEXTS)
    assert len(scores) == len(TEXTS) and all(isinstance(score, float) for score in scores)
    model = SentenceTransformer(models["bi"], device="cpu")
    embeddings = model.encode([QUERY, *TEXTS], convert_to_numpy=True)  # not normalised: the cosine is ours
    expected = _cosines(embeddings[0], embeddings[1:])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.05  # the model tells the texts apart: the check above is not vacuous
    assert ranker.scores(QUERY, []) == []


def test_a_paragraph_identical_to_the_query_ranks_first(models):
    ranker = DenseRanker(models["bi"], device="cpu")
    passages = [*TEXTS, QUERY]  # last: a tie would keep an earlier passage first
    scores = ranker.scores(QUERY, passages)
    assert scores[-1] == pytest.approx(1.0, abs=1e-5)
    assert max(scores[:-1]) < scores[-1] - 1e-3
    assert rank_passages(QUERY, passages, ranker, k=1) == [QUERY]


def test_bi_encoder_scores_do_not_depend_on_the_batch_size(models):
    texts = [*TEXTS, " ".join(TEXTS)]  # lengths differ: batches pad differently
    alone = BiEncoderRanker(models["bi"], device="cpu", batch_size=1).scores(QUERY, texts)
    together = BiEncoderRanker(models["bi"], device="cpu", batch_size=64).scores(QUERY, texts)
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-5)


def test_rankings_are_deterministic_across_loads(models):
    from lumos.tools.web import Element, rank

    first = DenseRanker(models["bi"], device="cpu")
    second = DenseRanker(models["bi"], device="cpu")
    assert first.scores(QUERY, TEXTS) == second.scores(QUERY, TEXTS) == first.scores(QUERY, TEXTS)
    order = rank_passages(QUERY, TEXTS, first, k=len(TEXTS))
    assert order == rank_passages(QUERY, TEXTS, second, k=len(TEXTS))
    assert sorted(order) == sorted(TEXTS)
    # the same text on two elements scores the same; the tie keeps page order
    elements = [Element("1", TEXTS[1]), Element("2", TEXTS[0]), Element("3", TEXTS[1])]
    ranked = [element.id for element, _ in rank(first, QUERY, elements)]
    assert ranked.index("1") < ranked.index("3")


def test_bi_encoder_encodes_with_the_models_query_and_document_prompts(models):
    """A model saved with prompts (as e5/bge-style retrievers are) gets them on the query and the texts."""
    scores = BiEncoderRanker(models["bi_prompts"], device="cpu").scores(QUERY, TEXTS)
    model = SentenceTransformer(models["bi_prompts"], device="cpu")
    assert model.prompts["query"] == "query what "
    query = model.encode(["query what " + QUERY], convert_to_numpy=True, prompt="")[0]
    texts = model.encode(["passage " + text for text in TEXTS], convert_to_numpy=True, prompt="")
    np.testing.assert_allclose(scores, _cosines(query, texts), rtol=0, atol=1e-5)
    plain = model.encode([QUERY, *TEXTS], convert_to_numpy=True, prompt="")
    assert np.abs(np.asarray(scores) - _cosines(plain[0], plain[1:])).max() > 1e-3


# --------------------------------------------------------------------------- the cross-encoder


def test_cross_encoder_scores_are_the_classifiers_own(models):
    ranker = CrossEncoderRanker(models["cross"], device="cpu")
    scores = ranker.scores(QUERY, TEXTS)
    assert len(scores) == len(TEXTS) and all(isinstance(score, float) for score in scores)
    expected = _cross_encoder_by_hand(models["cross"], QUERY, TEXTS)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert len(set(np.round(expected, 6))) == len(TEXTS)  # distinct: the order below is the model's
    by_hand = [TEXTS[i] for i in np.argsort(-expected, kind="stable")]
    assert rank_passages(QUERY, TEXTS, ranker, k=len(TEXTS)) == by_hand


def test_cross_encoder_scores_do_not_depend_on_the_batch_size(models):
    texts = [*TEXTS, " ".join(TEXTS[:3])]
    alone = CrossEncoderRanker(models["cross"], device="cpu", batch_size=1).scores(QUERY, texts)
    together = CrossEncoderRanker(models["cross"], device="cpu", batch_size=64).scores(QUERY, texts)
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-6)
    assert together == CrossEncoderRanker(models["cross"], device="cpu").scores(QUERY, texts)


def test_cross_encoder_truncates_at_the_models_own_limit(models):
    """A pair longer than the model's 64 positions is cut there, not at the default 512 (which crashed)."""
    long_text = " ".join(TEXTS * 4)  # about 150 tokens
    (score,) = CrossEncoderRanker(models["cross"], device="cpu").scores(QUERY, [long_text])
    assert score == pytest.approx(_cross_encoder_by_hand(models["cross"], QUERY, [long_text])[0], abs=1e-6)


def test_cross_encoder_truncates_at_a_shorter_max_length(models):
    long_text = " ".join(TEXTS * 4)
    (score,) = CrossEncoderRanker(models["cross"], device="cpu", max_length=16).scores(QUERY, [long_text])
    assert score == pytest.approx(_cross_encoder_by_hand(models["cross"], QUERY, [long_text], 16)[0], abs=1e-6)
    assert score != pytest.approx(_cross_encoder_by_hand(models["cross"], QUERY, [long_text])[0], abs=1e-6)


# --------------------------------------------------------------------------- through the project's entry points


def test_the_rankers_by_name(models):
    from lumos.tools.web import make_ranker as make_web_ranker

    qa_ranker = make_ranker(models["bi"])
    assert isinstance(qa_ranker, BiEncoderRanker) and qa_ranker.model_name_or_path == models["bi"]
    web_ranker = make_web_ranker(models["cross"], "cross_encoder", device="cpu")
    assert isinstance(web_ranker, CrossEncoderRanker)
    np.testing.assert_allclose(web_ranker.scores(QUERY, TEXTS), _cross_encoder_by_hand(models["cross"], QUERY, TEXTS),
                               rtol=0, atol=1e-6)
    bi = make_web_ranker(models["bi"], "bi_encoder", device="cpu")
    assert bi.scores(QUERY, TEXTS) == pytest.approx(DenseRanker(models["bi"], device="cpu").scores(QUERY, TEXTS),
                                                    abs=1e-6)


def test_paragraph_retrieve_with_a_local_retriever_model(models, tmp_path):
    """run_eval's --retriever_model: accepted at start-up, and ParagraphRetrieve ranks with it."""
    from eval.hotpotqa.benchmark import BENCHMARK
    from eval.runner import parse_config
    from lumos.tools.qa import qa_toolbox

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"title": "France", "text": text}) + "\n" for text in [*TEXTS, QUERY]))
    config = parse_config(BENCHMARK, ["--planner", "scripted:x", "--grounder", "scripted:y", "--qa_model",
                                      "scripted:q", "--corpus", str(corpus), "--retriever_model", models["bi"]])
    assert config.retriever_model == models["bi"]
    box = qa_toolbox(corpus=str(corpus), retriever_model=config.retriever_model, cache_dir=str(tmp_path / "cache"))
    try:
        tools = box.qa_tools
        assert isinstance(tools.ranker, BiEncoderRanker)
        found = tools.paragraph_retrieve(f"R1, Query: {QUERY}", {"R1": "WikipediaPage(France)"})
        assert found == [QUERY]
    finally:
        box.close()


def test_webshop_feature_ranker_accepts_a_local_cross_encoder(models, tmp_path):
    """WebShop's --feature_ranker under --prompt_style original: the start-up check passes, the benchmark is built."""
    from eval.runner import parse_config
    from eval.webshop.benchmark import BENCHMARK, configure

    argv = ["--prompt_style", "original", "--planner", "scripted:x", "--grounder", "scripted:y",
            "--feature_ranker", models["cross"], "--save_dir", str(tmp_path / "out")]
    config = parse_config(BENCHMARK, argv, parents=[BENCHMARK.flags()])
    assert config.extra["feature_ranker"] == models["cross"]
    benchmark = configure(config)
    assert benchmark.name == "webshop"
