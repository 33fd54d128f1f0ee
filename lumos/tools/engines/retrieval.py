"""Pages and paragraphs for the complex-QA tools: a local BM25 corpus, Wikipedia online, passage ranking.

A *knowledge source* answers two questions: which page best matches a query (``find_page``) and
what that page's paragraphs are (``paragraphs``). :class:`LocalCorpus` reads a JSONL corpus of
``{"title", "text"}`` paragraphs and indexes it with bm25s once; the index is cached on disk
under the corpus file's SHA-256, so a changed corpus is re-indexed and an unchanged one never is.
:class:`WikipediaAPI` asks the MediaWiki API (online runs only). :func:`rank_passages` orders
paragraphs for a query with BM25, or with a sentence-transformers model when one is named.

A ranker model named on a command line is checked twice before a run writes anything:
:func:`check_ranker_model` (cheap, no model loaded: the folder holds a model of the right kind, or the
hub id is in the local cache or the hub will serve it) when the flags are read, and the ranker's
``load()`` (the model loaded once and run on one pair) when the run starts; both raise
:class:`RankerModelError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from lumos import hub
from lumos.jsonl import BadRecord, read_records

_SPACE = re.compile(r"\s+")


class RetrievalError(ValueError):
    """A corpus that cannot be read or a page that cannot be fetched."""


@dataclass(frozen=True)
class Paragraph:
    title: str
    text: str


@dataclass(frozen=True)
class PageLookup:
    """What a Wikipedia search URL serves for a query: the article whose title it names (``title`` and
    its ``paragraphs``; none when nothing was found), or a result list of ``candidates`` titles."""

    title: str | None
    paragraphs: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()


class KnowledgeSource(Protocol):
    def find_page(self, query: str) -> str | None: ...

    def paragraphs(self, title: str) -> list[str]: ...

    def lookup(self, query: str) -> PageLookup: ...


def one_line(text: str) -> str:
    """Tool results are single-line text (docs/FORMAT.md §1)."""
    return _SPACE.sub(" ", text).strip()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("LUMOS_CACHE", Path.home() / ".cache" / "lumos")) / "bm25"


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


# --------------------------------------------------------------------------- the one BM25 and the rankers


class BM25Index:
    """A bm25s index over ``texts`` (English stopwords out), built once; ``scores(query)`` gives one score per
    text, all 0 when no query term is in the index; ``top(query, k)`` the best. The corpus, the web ranker and
    WebShop search use it."""

    def __init__(self, texts: Sequence[str] = (), *, k1: float = 1.5, b: float = 0.75, retriever=None,
                 size: int | None = None):
        import bm25s

        self.size = len(texts) if size is None else size
        if retriever is None:
            tokens = _tokenize(texts) if texts else []
            if any(tokens):
                retriever = bm25s.BM25(k1=k1, b=b)
                retriever.index(tokens, show_progress=False)
        self.retriever = retriever
        self._vocabulary = set(retriever.vocab_dict) if retriever is not None else set()

    @classmethod
    def load(cls, folder: str | os.PathLike, size: int) -> "BM25Index":
        """An index saved by :meth:`save` over ``size`` texts."""
        import bm25s

        return cls(retriever=bm25s.BM25.load(str(folder)), size=size)

    def save(self, folder: str | os.PathLike) -> None:
        self.retriever.save(str(folder))

    def scores(self, query: str) -> list[float]:
        tokens = [token for token in _tokenize([query])[0] if token in self._vocabulary]
        if not tokens:
            return [0.0] * self.size
        return [float(score) for score in self.retriever.get_scores(tokens)]

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """``(position, score)`` of the ``k`` best texts, best first (ties in text order), those scoring above 0."""
        scores = self.scores(query)
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [(i, scores[i]) for i in best if scores[i] > 0]


class Ranker(Protocol):
    """Scores texts against a query; higher is more relevant."""

    def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


class BM25Ranker:
    """Lexical ranking with bm25s over the texts of one call (indexed per call: a page, a few paragraphs)."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1 = k1
        self.b = b

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return BM25Index(texts, k1=self.k1, b=self.b).scores(query)


# --------------------------------------------------------------------------- ranker models: checks and loading


class RankerModelError(ValueError):
    """A ranker model that cannot be used: missing, not a model of its kind, or failing to load; one line."""


RANKER_KINDS_LAYOUT = {
    "cross_encoder": "a cross-encoder: config.json of a *ForSequenceClassification model of one relevance label "
                     "(or two), its weights and tokenizer",
    "bi_encoder": "a sentence-transformers model: modules.json or config.json, its weights and tokenizer",
    "dpr": "a DPR reader: config.json, its weights and tokenizer",
}
_MODEL_FILES = ("config.json", "modules.json")  # one of them makes a folder a model
_CONFIG_FILES = (*_MODEL_FILES, "config_sentence_transformers.json")


def _cached_files(hub_id: str) -> dict[str, Path]:
    """The model's config files found in the local Hugging Face cache (no network)."""
    found = {name: hub.cached_file(hub_id, name) for name in _CONFIG_FILES}
    return {name: path for name, path in found.items() if path is not None}


def _local_or_cached_files(name_or_path: str) -> dict[str, Path]:
    """The config files of a local model folder, else of a hub id in the local cache ({} when neither)."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return {name: path / name for name in _CONFIG_FILES if (path / name).is_file()}
    if hub.HUB_ID.fullmatch(str(name_or_path)) and not path.exists():
        return _cached_files(str(name_or_path))
    return {}


def _read_json(files: dict[str, Path], name: str, where: str) -> dict:
    if name not in files:
        return {}
    try:
        data = json.loads(files[name].read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RankerModelError(f"{where}: {name} cannot be read ({one_line(str(error))[:200]})") from None
    if not isinstance(data, dict):
        raise RankerModelError(f"{where}: {name} is not a JSON object")
    return data


def _check_model_config(files: dict[str, Path], kind: str, where: str) -> None:
    """What a model's config files say about its kind: a sentence-transformers bi-encoder or a bare encoder is
    no cross-encoder (its relevance head would be drawn at random), a classifier no bi-encoder, a classifier of
    three labels or more no ranker."""
    config = _read_json(files, "config.json", where)
    if kind == "dpr":
        if config.get("model_type") not in (None, "dpr"):
            raise RankerModelError(f"{where} is a {config['model_type']} model, not a DPR reader")
        return
    if "modules.json" in files:  # a sentence-transformers model: what it was saved as
        saved_as = _read_json(files, "config_sentence_transformers.json", where).get("model_type") \
            or "SentenceTransformer"  # (older versions saved bi-encoders only this way)
        if kind == "cross_encoder" and saved_as != "CrossEncoder":
            raise RankerModelError(f"{where} is a sentence-transformers embedding model ({saved_as}), not a "
                                   "cross-encoder: its relevance head would be drawn at random")
        if kind == "bi_encoder" and saved_as == "CrossEncoder":
            raise RankerModelError(f"{where} is a sentence-transformers CrossEncoder, not a bi-encoder: it scores "
                                   "pairs and makes no embeddings to compare")
        return
    architectures = [name for name in config.get("architectures") or [] if isinstance(name, str)]
    classifier = any(name.endswith("ForSequenceClassification") for name in architectures)
    if kind == "bi_encoder" and classifier:
        raise RankerModelError(f"{where} is a cross-encoder ({architectures[0]}), not a sentence-transformers "
                               "bi-encoder: its embeddings would rank at random")
    if kind == "cross_encoder":
        if architectures and not classifier:
            raise RankerModelError(f"{where} is not a cross-encoder: its config.json names {architectures[0]}, "
                                   "not a *ForSequenceClassification model (its relevance head would be drawn at "
                                   "random)")
        labels = _num_labels(config)
        if labels > 2:
            raise RankerModelError(_too_many_labels(where, labels))


def _num_labels(config: dict) -> int:
    """A transformers config's number of labels (its own default, 2, when it names none)."""
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    return int(config.get("num_labels") or 2)


def _too_many_labels(where: str, labels: int) -> str:
    return (f"{where} is a classifier of {labels} labels: a ranker needs one relevance score (a cross-encoder "
            "of one label, or of two where label 1 is 'relevant')")


def check_ranker_model(name_or_path: str, kind: str = "cross_encoder") -> str | None:
    """Whether ``name_or_path`` can be a ``kind`` ranker ('cross_encoder', 'bi_encoder' or 'dpr'), decided
    without loading it or importing torch: a local folder holding a model config of that kind, or a hub id
    found in the local Hugging Face cache, or one the hub can serve (not offline).

    Raises :class:`RankerModelError` (one line); returns a note to show the user (a model that will be
    downloaded when the run starts), else None.
    """
    if kind not in RANKER_KINDS_LAYOUT:
        raise ValueError(f"unknown ranker kind {kind!r}; choose one of {', '.join(RANKER_KINDS_LAYOUT)}")
    expected = RANKER_KINDS_LAYOUT[kind]
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        files = _local_or_cached_files(text)
        if not any(name in files for name in _MODEL_FILES):
            raise RankerModelError(f"folder {text} holds no model (no config.json or modules.json): expected "
                                   f"{expected}")
        _check_model_config(files, kind, f"folder {text}")
        return None
    if path.exists():
        raise RankerModelError(f"{text} is a file: expected {expected}")
    if not hub.HUB_ID.fullmatch(text):
        raise RankerModelError(f"no such folder {text}: expected {expected}")
    cached = _cached_files(text)
    if any(name in cached for name in _MODEL_FILES):
        _check_model_config(cached, kind, f"{text!r} (cached)")
        return None
    where = f"no folder {text} here and {text!r} is not in the local Hugging Face cache"
    if hub.offline():
        raise RankerModelError(f"{where}, and HF_HUB_OFFLINE=1 keeps the hub off: give a local folder or a "
                               f"cached hub id ({expected})")
    if not hub.reachable():
        raise RankerModelError(f"{where}, and the hub cannot be reached (offline?): give a local folder or a "
                               f"cached hub id ({expected})")
    return "not in the local Hugging Face cache: it will be downloaded from the hub when the run starts"


_PROGRESS_BAR = re.compile(r"\d+%\|")


@contextlib.contextmanager
def _quiet_stderr():
    """What loading writes to stderr (progress bars, library warnings) is held back: dropped when the
    load fails (its one-line error says it all), written out without the progress bars when it succeeds."""
    held = io.StringIO()
    with contextlib.redirect_stderr(held):
        yield
    lines = [line for line in held.getvalue().replace("\r", "\n").splitlines()
             if line.strip() and not _PROGRESS_BAR.search(line)]
    if lines:
        print("\n".join(lines), file=sys.stderr)


def _load_error(what: str, error: BaseException) -> RankerModelError:
    text = one_line(f"{type(error).__name__}: {error}")
    return RankerModelError(f"{what} failed: {text if len(text) <= 300 else text[:297] + '...'}")


class _SentenceTransformersRanker:
    """A sentence-transformers model behind ``scores``; loaded by :meth:`load`, or on the first call that
    has texts."""

    kind = "bi_encoder"

    def __init__(self, model_name_or_path: str, device: str | None = None, batch_size: int = 64):
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def load(self) -> "_SentenceTransformersRanker":
        """Load the model now and score one pair with it, so that a model that cannot rank fails here
        (at start-up) rather than at a task's first call: :class:`RankerModelError`, one line."""
        if self._model is not None:
            return self
        what = f"loading {self.model_name_or_path!r} as a {self.kind.replace('_', '-')}"
        try:
            with _quiet_stderr():
                model = self._load()
                files = _local_or_cached_files(self.model_name_or_path)  # (a model just downloaded is cached)
                if any(name in files for name in _MODEL_FILES):
                    _check_model_config(files, self.kind, repr(self.model_name_or_path))
        except RankerModelError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the libraries raise, one line
            raise _load_error(what, error) from error
        self._model = model
        try:
            scores = self._score("query", ["text"])
        except Exception as error:  # noqa: BLE001
            self._model = None
            raise _load_error(f"scoring a pair with {self.model_name_or_path!r}", error) from error
        if len(scores) != 1:
            self._model = None
            raise RankerModelError(f"{self.model_name_or_path!r} gave {len(scores)} scores for one text")
        return self

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        if self._model is None:
            self.load()
        return self._score(query, texts)

    def _load(self):
        raise NotImplementedError

    def _score(self, query: str, texts: Sequence[str]) -> list[float]:
        raise NotImplementedError


class CrossEncoderRanker(_SentenceTransformersRanker):
    """A sentence-transformers cross-encoder scoring (query, text) pairs, each pair cut at ``max_length``
    tokens or at the model's own limit (its tokenizer's ``model_max_length``) when that is shorter
    (``max_length=None``: the model's own limit only)."""

    kind = "cross_encoder"

    def __init__(self, model_name_or_path: str, device: str | None = None, max_length: int | None = 512,
                 batch_size: int = 64):
        super().__init__(model_name_or_path, device, batch_size)
        self.max_length = max_length
        self.num_labels = None  # known once loaded

    def _load(self):
        from sentence_transformers import CrossEncoder

        # The checkpoint's own number of labels: forcing one would replace a two-label head by a random one.
        model = CrossEncoder(self.model_name_or_path, device=self.device)
        # Two labels are scored as sentence-transformers scores them with a softmax activation: the
        # probability of label 1, the "relevant" class of binary relevance classifiers (monoBERT-style
        # rerankers, cross-encoders trained with cross-entropy on 0/1 labels). MindAct's candidate ranker and
        # WebShop's stsb cross-encoder have one label, but a binary ranker fine-tuned in their place is the
        # other usual shape, and its P(relevant) orders the texts as its logit difference does, in [0, 1] like
        # a one-label model's sigmoid. Three labels or more (NLI) name no relevance score: refused.
        self.num_labels = model.num_labels
        if self.num_labels > 2:
            raise RankerModelError(_too_many_labels(repr(self.model_name_or_path), self.num_labels))
        # CrossEncoder(max_length=...) would replace the model's own limit, and a pair longer than the
        # model's position embeddings would then fail in the forward pass: lower the limit, never raise it.
        own = model.tokenizer.model_max_length
        if self.max_length is not None and (own is None or own > self.max_length):
            model.tokenizer.model_max_length = self.max_length
        return model

    def _score(self, query: str, texts: Sequence[str]) -> list[float]:
        pairs = [[query, text] for text in texts]
        options = dict(batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        if self.num_labels == 2:
            import torch

            predicted = self._model.predict(pairs, activation_fn=torch.nn.Softmax(dim=-1), **options)
            return [float(row[1]) for row in predicted]
        predicted = self._model.predict(pairs, **options)
        return [float(score) for score in predicted]


class BiEncoderRanker(_SentenceTransformersRanker):
    """A sentence-transformers bi-encoder: cosine similarity of query and text embeddings, the query
    encoded with the model's ``query`` prompt and the texts with its ``document`` prompt when the model
    defines them (retrievers trained with prompts such as ``"query: "`` expect them)."""

    def _load(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(self.model_name_or_path, device=self.device)

    def _score(self, query: str, texts: Sequence[str]) -> list[float]:
        options = dict(batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
        query_embedding = self._model.encode_query([query], **options)[0]
        embeddings = self._model.encode_document(list(texts), **options)
        return [float(score) for score in embeddings @ query_embedding]


def load_corpus(path: str | os.PathLike) -> list[Paragraph]:
    """Paragraphs of a JSONL corpus; a record without string ``title``/``text`` is an error naming its line."""
    paragraphs = []
    for record in read_records(path):
        if isinstance(record, BadRecord):
            raise RetrievalError(f"corpus {record}")
        data = record.data
        if not isinstance(data.get("title"), str) or not isinstance(data.get("text"), str):
            raise RetrievalError(f"corpus {path}:{record.line_no}: expected string fields 'title' and 'text'")
        paragraphs.append(Paragraph(data["title"].strip(), one_line(data["text"])))
    if not paragraphs:
        raise RetrievalError(f"corpus {path} holds no paragraph")
    return paragraphs


class LocalCorpus:
    """A paragraph corpus searched with bm25s; loaded and indexed on first use, index cached on disk."""

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise RetrievalError(f"corpus file {self.path} does not exist")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._paragraphs: list[Paragraph] | None = None
        self._by_title: dict[str, list[int]] = {}
        self._retriever = None
        self.index_dir: Path | None = None
        self.built_index = False  # True when this instance had to build (not load) the index

    def _ensure(self) -> None:
        if self._retriever is not None:
            return
        self._paragraphs = load_corpus(self.path)
        for i, paragraph in enumerate(self._paragraphs):
            self._by_title.setdefault(paragraph.title.lower(), []).append(i)
        self.index_dir = self.cache_dir / file_sha256(self.path)
        if (self.index_dir / "params.index.json").is_file():
            self._retriever = BM25Index.load(self.index_dir, len(self._paragraphs))
            return
        retriever = BM25Index([f"{p.title} {p.text}" for p in self._paragraphs])
        # Written beside the final folder and renamed, so a killed run never leaves half an index.
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".staging-"))
        retriever.save(staging)
        try:
            os.replace(staging, self.index_dir)
        except OSError:  # another process published the same index first
            shutil.rmtree(staging, ignore_errors=True)
        self._retriever = retriever
        self.built_index = True

    def search(self, query: str, k: int = 5) -> list[tuple[Paragraph, float]]:
        self._ensure()
        return [(self._paragraphs[i], score) for i, score in self._retriever.top(query, k)]

    def find_page(self, query: str) -> str | None:
        """The exact title when one matches (case-insensitively), else the best paragraph's title."""
        self._ensure()
        exact = self._by_title.get(one_line(query).lower())
        if exact:
            return self._paragraphs[exact[0]].title
        hits = self.search(query, k=1)
        return hits[0][0].title if hits else None

    def paragraphs(self, title: str) -> list[str]:
        self._ensure()
        return [self._paragraphs[i].text for i in self._by_title.get(title.strip().lower(), [])]

    def lookup(self, query: str, max_candidates: int = 5) -> PageLookup:
        """The page titled ``query`` (any case), else up to ``max_candidates`` titles of the best paragraphs."""
        self._ensure()
        exact = self._by_title.get(one_line(query).lower())
        if exact:
            return PageLookup(self._paragraphs[exact[0]].title, tuple(self._paragraphs[i].text for i in exact))
        titles: list[str] = []
        for paragraph, _ in self.search(query, k=10 * max_candidates):
            if paragraph.title not in titles:
                titles.append(paragraph.title)
        return PageLookup(None, candidates=tuple(titles[:max_candidates]))


class WikipediaAPI:
    """Pages from the MediaWiki API (online option; plain-text extracts split into paragraphs)."""

    def __init__(self, endpoint: str = "https://en.wikipedia.org/w/api.php", timeout_s: float = 20.0,
                 user_agent: str = "lumos-agent/0.1 (research evaluation)"):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._pages: dict[str, list[str]] = {}

    def _get(self, **params: str) -> dict:
        url = self.endpoint + "?" + urllib.parse.urlencode({**params, "format": "json", "formatversion": "2"})
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RetrievalError(f"Wikipedia API request {params} failed: {error}") from error

    def find_page(self, query: str) -> str | None:
        hits = self._get(action="query", list="search", srsearch=query, srlimit="1").get("query", {}).get("search", [])
        return hits[0]["title"] if hits else None

    def lookup(self, query: str, max_candidates: int = 5) -> PageLookup:
        """The article titled ``query`` (after redirects), else the first ``max_candidates`` search results."""
        pages = self._get(action="query", redirects="1", titles=query).get("query", {}).get("pages", [])
        if pages and not pages[0].get("missing") and not pages[0].get("invalid"):
            title = pages[0]["title"]
            return PageLookup(title, tuple(self.paragraphs(title)))
        hits = self._get(action="query", list="search", srsearch=query,
                         srlimit=str(max_candidates)).get("query", {}).get("search", [])
        return PageLookup(None, candidates=tuple(hit["title"] for hit in hits))

    def paragraphs(self, title: str) -> list[str]:
        if title not in self._pages:
            pages = self._get(action="query", prop="extracts", explaintext="1", redirects="1",
                              titles=title).get("query", {}).get("pages", [])
            extract = pages[0].get("extract", "") if pages else ""
            self._pages[title] = [one_line(p) for p in extract.split("\n") if p.strip() and not p.startswith("=")]
        return self._pages[title]


def DenseRanker(model_name_or_path: str, device: str | None = None) -> BiEncoderRanker:  # noqa: N802
    """ParagraphRetrieve's sentence-transformers ranker: the bi-encoder, at its encode() default batch of 32."""
    return BiEncoderRanker(model_name_or_path, device=device, batch_size=32)


class DPRReaderRanker:
    """The released QA evaluation's relevance model: a ``DPRReader``'s relevance logit of each
    (question, title, text), ten passages per forward pass, padded to 512 tokens as there."""

    uses_titles = True

    def __init__(self, model_name_or_path: str = "facebook/dpr-reader-multiset-base", device: str | None = None,
                 chunk: int = 10, max_length: int = 512):
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.chunk = chunk
        self.max_length = max_length
        self._model = None
        self._tokenizer = None

    def load(self) -> "DPRReaderRanker":
        """Load the reader now and score one passage with it, so that a model that cannot rank fails here
        (at start-up): :class:`RankerModelError`, one line."""
        if self._model is not None:
            return self
        try:
            with _quiet_stderr():
                import torch
                from transformers import DPRReader, DPRReaderTokenizer

                self.device = self.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
                tokenizer = DPRReaderTokenizer.from_pretrained(self.model_name_or_path)
                model = DPRReader.from_pretrained(self.model_name_or_path).to(self.device).eval()
        except Exception as error:  # noqa: BLE001 - whatever the libraries raise, one line
            raise _load_error(f"loading {self.model_name_or_path!r} as a DPR reader", error) from error
        self._tokenizer, self._model = tokenizer, model
        try:
            self.scores("query", ["text"], titles=["title"])
        except Exception as error:  # noqa: BLE001
            self._tokenizer = self._model = None
            raise _load_error(f"scoring a passage with {self.model_name_or_path!r}", error) from error
        return self

    def scores(self, query: str, texts: Sequence[str], titles: Sequence[str] | None = None) -> list[float]:
        import torch

        if self._model is None:
            self.load()
        titles = list(titles) if titles is not None else [""] * len(texts)
        scores: list[float] = []
        for start in range(0, len(texts), self.chunk):
            encoded = self._tokenizer(questions=query, titles=titles[start:start + self.chunk],
                                      texts=list(texts[start:start + self.chunk]), padding="max_length",
                                      truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                scores += self._model(**encoded).relevance_logits.float().cpu().tolist()
        return scores


DPR_READER = "facebook/dpr-reader-multiset-base"


def ranker_spec_model(spec: str) -> tuple[str, str]:
    """``(model, kind)`` a ParagraphRetrieve ranker spec names: ``dpr:<model>`` a DPR reader (default
    :data:`DPR_READER`), anything else a sentence-transformers bi-encoder."""
    if spec.startswith("dpr:"):
        return spec[len("dpr:"):] or DPR_READER, "dpr"
    return spec, "bi_encoder"


def make_ranker(spec: str | None):
    """A paragraph ranker by name: None -> BM25 (per call), ``dpr:<model>`` -> :class:`DPRReaderRanker`
    (the released evaluation's), anything else -> a sentence-transformers :class:`DenseRanker`."""
    if not spec:
        return None
    model, kind = ranker_spec_model(spec)
    return DPRReaderRanker(model) if kind == "dpr" else DenseRanker(model)


def rank_passages(query: str, passages: Sequence[str], ranker=None, k: int = 1) -> list[str]:
    """The ``k`` passages most relevant to ``query`` (stable: ties keep corpus order)."""
    if not passages:
        return []
    scores = (ranker or BM25Ranker()).scores(query, passages)
    order = sorted(range(len(passages)), key=lambda i: -scores[i])
    return [passages[i] for i in order[:k]]
