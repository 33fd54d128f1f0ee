"""Ranker models are checked before a run writes anything: ``check_ranker_model`` (cheap: no model loaded,
no torch imported) and the rankers' ``load()`` (the model loaded once and run on one pair), both failing
with one-line :class:`RankerModelError` messages. Two-label cross-encoders score P(label 1)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.tools.engines.retrieval import (BiEncoderRanker, CrossEncoderRanker, DPRReaderRanker, RankerModelError,
                                           check_ranker_model)
from tests.tools.ranker_models import build_broken, build_cross_encoder, build_models

REPO = Path(__file__).resolve().parents[2]
QUERY = "what is the capital of france"
TEXTS = ["paris is the capital and largest city of france", "berlin is the capital of germany", "europe"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("rankers")
    paths = build_models(root)
    paths["cross2"] = build_cross_encoder(root / "cross2", num_labels=2, seed=1)
    paths["cross3"] = build_cross_encoder(root / "cross3", num_labels=3, seed=2)
    paths["broken_cross"] = build_broken(root / "broken_cross", paths["cross"])
    paths["broken_bi"] = build_broken(root / "broken_bi", paths["bi"])
    (root / "empty").mkdir()
    (root / "empty" / "README.md").write_text("no model here\n")
    paths["empty"] = str(root / "empty")
    return paths


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and len(text) < 600, text
    return text


# --------------------------------------------------------------------------- the cheap check


@pytest.mark.parametrize("name,kind", [("bi", "bi_encoder"), ("bi_prompts", "bi_encoder"), ("bert", "bi_encoder"),
                                       ("cross", "cross_encoder"), ("cross2", "cross_encoder")])
def test_local_models_of_the_right_kind_pass_quickly(models, name, kind):
    started = time.perf_counter()
    assert check_ranker_model(models[name], kind) is None
    assert time.perf_counter() - started < 0.5


def test_the_check_imports_no_model_library(models):
    code = ("import sys; from lumos.tools.engines.retrieval import check_ranker_model; "
            f"check_ranker_model({models['cross']!r}); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("value,kind,expected", [
    ("./no-such-ranker", "cross_encoder", "no such folder ./no-such-ranker: expected a cross-encoder"),
    ("{empty}", "cross_encoder", "holds no model (no config.json or modules.json)"),
    ("{empty}/README.md", "bi_encoder", "is a file"),
    ("{cross3}", "cross_encoder", "is a classifier of 3 labels"),
    ("{bert}", "cross_encoder", "is not a cross-encoder: its config.json names BertModel"),
    ("{cross}", "bi_encoder", "is a cross-encoder (BertForSequenceClassification), not a sentence-transformers"),
    ("{bi}", "cross_encoder", "is a sentence-transformers embedding model (SentenceTransformer), not a cross-encoder"),
    ("{cross}", "dpr", "is a bert model, not a DPR reader"),
], ids=["missing", "empty", "file", "three_labels", "bare_encoder", "cross_as_bi", "bi_as_cross", "not_dpr"])
def test_unusable_local_models_are_refused_in_one_line(models, value, kind, expected):
    value = value.format(**models)
    started = time.perf_counter()
    with pytest.raises(RankerModelError) as error:
        check_ranker_model(value, kind)
    assert expected in _one_line(error)
    assert time.perf_counter() - started < 0.5


def test_a_hub_id_not_cached_is_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RankerModelError) as error:
        check_ranker_model("some-org/no-such-ranker-7f3a", "cross_encoder")
    assert "'some-org/no-such-ranker-7f3a' is not in the local Hugging Face cache" in _one_line(error)
    assert "HF_HUB_OFFLINE=1" in str(error.value)


@pytest.fixture
def local_hub(monkeypatch):
    """``HF_ENDPOINT`` on 127.0.0.1: ``up()`` makes it answer (a listening socket), else nothing listens."""
    import socket

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield lambda: listener.listen(1)
    listener.close()


def test_a_hub_id_not_cached_is_refused_when_the_hub_cannot_be_reached(local_hub):
    with pytest.raises(RankerModelError) as error:  # bound, not listening: the connection is refused
        check_ranker_model("some-org/no-such-ranker-7f3a", "bi_encoder")
    assert "the hub cannot be reached" in _one_line(error)


def test_a_hub_id_not_cached_will_be_downloaded_when_the_hub_answers(local_hub):
    local_hub()
    note = check_ranker_model("some-org/no-such-ranker-7f3a", "cross_encoder")
    assert "will be downloaded" in note


# --------------------------------------------------------------------------- loading at start-up


def test_a_good_model_loads_once_and_scores(models):
    ranker = CrossEncoderRanker(models["cross"], device="cpu")
    assert ranker.load() is ranker and ranker.num_labels == 1
    model = ranker._model
    assert ranker.load()._model is model  # loaded once
    assert len(ranker.scores(QUERY, TEXTS)) == len(TEXTS)
    assert BiEncoderRanker(models["bi"], device="cpu").load()._model is not None


@pytest.mark.parametrize("make", [lambda m: CrossEncoderRanker(m["broken_cross"], device="cpu"),
                                  lambda m: BiEncoderRanker(m["broken_bi"], device="cpu")], ids=["cross", "bi"])
def test_a_broken_model_fails_to_load_in_one_line_and_quietly(models, make, capsys):
    ranker = make(models)
    with pytest.raises(RankerModelError) as error:
        ranker.load()
    assert f"loading {ranker.model_name_or_path!r} as a" in _one_line(error) and "failed" in str(error.value)
    assert capsys.readouterr().err == ""  # the libraries' progress bars and warnings are held back
    with pytest.raises(RankerModelError):  # a scoring call meets the same one-line error
        ranker.scores(QUERY, TEXTS)


def test_a_three_label_cross_encoder_is_refused_at_load(models):
    with pytest.raises(RankerModelError) as error:
        CrossEncoderRanker(models["cross3"], device="cpu").load()
    assert "is a classifier of 3 labels" in _one_line(error)


def test_a_dpr_reader_that_is_no_dpr_model_fails_to_load_in_one_line(models):
    with pytest.raises(RankerModelError) as error:
        DPRReaderRanker(models["empty"], device="cpu").load()
    assert "as a DPR reader failed" in _one_line(error)


# --------------------------------------------------------------------------- two labels


def _two_label_by_hand(path, query, texts):
    """softmax over the classifier's two logits, label 1's probability, through plain transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    scores = []
    for text in texts:
        encoded = tokenizer(query, text, truncation=True, return_tensors="pt")
        with torch.no_grad():
            scores.append(torch.softmax(model(**encoded).logits.float(), dim=-1)[0, 1].item())
    return np.asarray(scores)


def test_a_two_label_cross_encoder_scores_the_probability_of_label_one(models):
    ranker = CrossEncoderRanker(models["cross2"], device="cpu")
    scores = ranker.scores(QUERY, TEXTS)
    assert ranker.num_labels == 2 and all(0.0 <= score <= 1.0 for score in scores)
    expected = _two_label_by_hand(models["cross2"], QUERY, TEXTS)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)  # (batched with padding vs one by one)
    assert np.ptp(expected) > 1e-2  # the texts are told apart: the comparison is not vacuous
    batched = CrossEncoderRanker(models["cross2"], device="cpu", batch_size=1).scores(QUERY, TEXTS)
    np.testing.assert_allclose(batched, scores, rtol=0, atol=1e-5)


def test_loading_checks_the_kind_too(models):
    """A ranker built without the command line's check (or a model just downloaded) is checked when it loads."""
    with pytest.raises(RankerModelError) as error:
        CrossEncoderRanker(models["bi"], device="cpu").load()
    assert "is a sentence-transformers embedding model (SentenceTransformer), not a cross-encoder" in _one_line(error)
    with pytest.raises(RankerModelError) as error:
        BiEncoderRanker(models["cross"], device="cpu").load()
    assert "is a cross-encoder (BertForSequenceClassification)" in _one_line(error)
