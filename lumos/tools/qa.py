"""The complex-QA execution module: KnowledgeQuery, ParagraphRetrieve, QA, Calculator, Code.

Arguments follow the conventions the complex-QA plans are written in (``lumos.convert.rules_qa``)::

    R1 = KnowledgeQuery(Journal of Psychotherapy Integration)                 -> WikipediaPage(<title>)
    R2 = ParagraphRetrieve(R1, Query: What company published ...?)            -> the best paragraph
    R3 = QA([R2], Question: What company published ...?)                      -> a brief answer or "No answer"

``KnowledgeQuery`` finds one page in a knowledge source (a local bm25s corpus, or Wikipedia
online) and names it; ``ParagraphRetrieve`` ranks that page's paragraphs (BM25, or a
sentence-transformers model when given); ``QA`` asks any ``lumos.llm`` generator, substituting
earlier variables named in the question. ``Calculator`` and ``Code`` are the maths module's.
Everything heavy (corpus index, ranker model, maths worker) starts on first use.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from lumos.llm.base import GenerationError, Generator
from lumos.tools.base import ToolError, Toolbox
from lumos.tools.retrieval import (DenseRanker, KnowledgeSource, LocalCorpus, RetrievalError, WikipediaAPI,
                                   one_line, rank_passages)
from lumos.vocabulary import COMPLEX_QA

PAGE = re.compile(r"WikipediaPage\((.*)\)", re.DOTALL)
_VARIABLE = re.compile(r"\bR([1-9]\d*)\b")
_QUERY_MARK = re.compile(r",\s*(?:Query|Question):\s*", re.IGNORECASE)
NO_ANSWER = "No answer"

QA_PROMPT = ("Answer the question with a brief answer (a few words) using the context. "
             "If the context does not give the answer, reply \"No answer\".\n"
             "Context: {context}\nQuestion: {question}\nAnswer:")


def split_context_and_query(args: str) -> tuple[str, str]:
    """``"[R2, R3], Question: q"`` -> ``("[R2, R3]", "q")``; a call without a marker splits at its first comma."""
    match = _QUERY_MARK.search(args)
    if match:
        return args[:match.start()].strip(), args[match.end():].strip()
    context, comma, query = args.partition(",")
    if not comma:
        raise ToolError(f"expected '<context>, Query: <text>', got {args!r}")
    return context.strip(), query.strip()


def context_variables(context: str) -> list[str]:
    """``"[R2, R3]"`` or ``"R1"`` -> ``["R2", "R3"]`` / ``["R1"]``; ``"[]"`` -> ``[]``."""
    inner = context.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    names = [name.strip() for name in inner.split(",") if name.strip()]
    bad = [name for name in names if not _VARIABLE.fullmatch(name)]
    if bad:
        raise ToolError(f"context must name variables like R2, got {', '.join(map(repr, bad))}")
    return names


def substitute_variables(text: str, variables: Mapping[str, str]) -> str:
    """``"Is R3 more than R6?"`` with their values put in (unknown names stay as written)."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(0), m.group(0)), text)


class NoKnowledgeSource:
    def find_page(self, query: str) -> str | None:
        raise RetrievalError("no knowledge source was given (a corpus JSONL or the Wikipedia API)")

    def paragraphs(self, title: str) -> list[str]:
        raise RetrievalError("no knowledge source was given (a corpus JSONL or the Wikipedia API)")


class QATools:
    """The tools over one knowledge source, one passage ranker and one QA generator."""

    def __init__(self, source: KnowledgeSource, qa_generator: Generator | None, *, ranker=None,
                 max_context_chars: int = 4000, max_new_tokens: int = 32):
        self.source = source
        self.qa_generator = qa_generator
        self.ranker = ranker
        self.max_context_chars = max_context_chars
        self.max_new_tokens = max_new_tokens
        self._maths = None

    # ------------------------------------------------------------------ the tools

    def knowledge_query(self, args: str, variables: Mapping[str, str]) -> list[str]:
        query = one_line(substitute_variables(args, variables))
        if not query:
            raise ToolError("empty query")
        try:
            title = self.source.find_page(query)
        except RetrievalError as error:
            raise ToolError(str(error)) from error
        if title is None:
            raise ToolError(f"no page matches {query!r}")
        return [f"WikipediaPage({title})"]

    def paragraph_retrieve(self, args: str, variables: Mapping[str, str]) -> list[str]:
        context, query = split_context_and_query(args)
        query = substitute_variables(query, variables)
        passages: list[str] = []
        for name in context_variables(context):
            passages += self._passages(variables[name])
        if not passages:
            raise ToolError(f"no paragraph to retrieve from in {context!r}")
        return [rank_passages(query, passages, self.ranker, k=1)[0]]

    def qa(self, args: str, variables: Mapping[str, str]) -> list[str]:
        if self.qa_generator is None:
            raise ToolError("no QA model was given (--qa_model)")
        context, question = split_context_and_query(args)
        question = one_line(substitute_variables(question, variables))
        texts = [self._context_text(variables[name]) for name in context_variables(context)]
        prompt = QA_PROMPT.format(context=" ".join(texts)[:self.max_context_chars] or "None", question=question)
        (reply,) = self.qa_generator.try_generate([prompt], stop=["\n"], max_new_tokens=self.max_new_tokens)
        if isinstance(reply, GenerationError):
            raise ToolError(f"QA model failed: {reply}")
        return [one_line(reply).strip(" .") or NO_ANSWER]

    def calculator(self, args: str, variables: Mapping[str, str]) -> list[str]:
        return self._maths_engine().calculator(args, variables)

    def code(self, args: str, variables: Mapping[str, str]) -> list[str]:
        return self._maths_engine().code(args, variables)

    def close(self) -> None:
        if self._maths is not None:
            self._maths.close()
            self._maths = None

    # ------------------------------------------------------------------ helpers

    def _maths_engine(self):
        if self._maths is None:
            from lumos.tools.maths import MathsEngine

            self._maths = MathsEngine()
        return self._maths

    def _passages(self, value: str) -> list[str]:
        page = PAGE.fullmatch(value.strip())
        if page is None:
            return [value]  # an earlier answer or paragraph used as context
        try:
            return self.source.paragraphs(page.group(1))
        except RetrievalError as error:
            raise ToolError(str(error)) from error

    def _context_text(self, value: str) -> str:
        return " ".join(self._passages(value))


def qa_toolbox(corpus: str | None = None, qa_generator: Generator | None = None, *, wikipedia: bool = False,
               retriever_model: str | None = None, cache_dir: str | None = None) -> Toolbox:
    """The complex-QA toolbox: ``corpus`` (JSONL of title/text) or ``wikipedia=True`` as knowledge source.

    With neither, KnowledgeQuery fails with a ToolError naming the missing source (the other tools work).
    """
    if corpus is not None and wikipedia:
        raise ValueError("give a local corpus or wikipedia=True, not both")
    source: KnowledgeSource = (WikipediaAPI() if wikipedia else LocalCorpus(corpus, cache_dir=cache_dir)
                               if corpus is not None else NoKnowledgeSource())
    ranker = DenseRanker(retriever_model) if retriever_model else None
    tools = QATools(source, qa_generator, ranker=ranker)
    return Toolbox.from_vocabulary(COMPLEX_QA, {
        "KnowledgeQuery": tools.knowledge_query, "ParagraphRetrieve": tools.paragraph_retrieve, "QA": tools.qa,
        "Calculator": tools.calculator, "Code": tools.code,
    }, on_close=tools.close)


def gold_context(paragraphs: Sequence[dict]) -> list[dict]:
    """Corpus records from HotpotQA-style ``[title, [sentences]]`` contexts (for building local corpora)."""
    return [{"title": title, "text": " ".join(sentences)} for title, sentences in paragraphs]
