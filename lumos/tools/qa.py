"""The complex-QA execution module: KnowledgeQuery, ParagraphRetrieve, QA, Calculator, Code.

Arguments follow the conventions the complex-QA plans are written in (``lumos.convert.rules_qa``)::

    R1 = KnowledgeQuery(Journal of Psychotherapy Integration)                 -> WikipediaPage(<title>)
    R2 = ParagraphRetrieve(R1, Query: What company published ...?)            -> the best paragraph
    R3 = QA([R2], Question: What company published ...?)                      -> a brief answer or "No answer"

``KnowledgeQuery`` finds one page in a knowledge source (a local bm25s corpus, or Wikipedia
online) and names it; ``ParagraphRetrieve`` ranks that page's paragraphs (BM25, or a
sentence-transformers model when given); ``QA`` asks any ``lumos.llm`` generator, substituting
earlier variables named in the question. ``Calculator`` and ``Code`` are the maths toolbox's own
tools (``lumos.tools.maths.maths_toolbox``), so every limit of theirs holds here unchanged: the
deadline of each call, the size of the formula after substitution, the nesting depth, the sandbox.
Everything heavy (corpus index, ranker model, maths worker) starts on first use.

:class:`OriginalQAExecutor` runs the same actions the way the released evaluation
(``eval/{hotpotqa,strategyqa}/run_eval.py``) ran them, for ``--prompt_style original``:
KnowledgeQuery gives a *list* of ``"<title> *** <sentence>"``, ParagraphRetrieve the top five as
``"Evidence k: ...\n"`` lines, QA ``"Question: <q>; Answer: <a>"`` from the original's chat
prompts, and a failing action records ``""`` under the name ``""`` instead of stopping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, MutableMapping, Sequence

from lumos.format import ORIGINAL_VARIABLE, VARIABLE_IN_TEXT
from lumos.llm.base import ChatGenerator, GenerationError, Generator
from lumos.tools.base import ToolError, Toolbox
from lumos.tools.engines.retrieval import (KnowledgeSource, LocalCorpus, PageLookup, RetrievalError, WikipediaAPI,
                                   BM25Ranker, make_ranker, one_line, rank_passages)
from lumos.tools.maths import maths_toolbox
from lumos.vocabulary import COMPLEX_QA

PAGE = re.compile(r"WikipediaPage\((.*)\)", re.DOTALL)
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
    bad = [name for name in names if not VARIABLE_IN_TEXT.fullmatch(name)]
    if bad:
        raise ToolError(f"context must name variables like R2, got {', '.join(map(repr, bad))}")
    return names


def substitute_variables(text: str, variables: Mapping[str, str]) -> str:
    """``"Is R3 more than R6?"`` with their values put in (unknown names stay as written)."""
    return VARIABLE_IN_TEXT.sub(lambda m: variables.get(m.group(0), m.group(0)), text)


class NoKnowledgeSource:
    def find_page(self, query: str) -> str | None:
        raise RetrievalError("no knowledge source was given (a corpus JSONL or the Wikipedia API)")

    def paragraphs(self, title: str) -> list[str]:
        raise RetrievalError("no knowledge source was given (a corpus JSONL or the Wikipedia API)")

    def lookup(self, query: str) -> PageLookup:
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
        self._maths: Toolbox | None = None  # the maths toolbox, started on the first Calculator or Code

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
        return self._maths_tool("Calculator")(args, variables)

    def code(self, args: str, variables: Mapping[str, str]) -> list[str]:
        return self._maths_tool("Code")(args, variables)

    def close(self) -> None:
        if self._maths is not None:
            self._maths.close()
            self._maths = None

    # ------------------------------------------------------------------ helpers

    def _maths_tool(self, name: str):
        """The maths toolbox's tool ``name``, run as that toolbox runs it (its deadline, its limits)."""
        if self._maths is None:
            self._maths = maths_toolbox()
        return self._maths.tools[name]

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
               retriever_model: str | None = None, cache_dir: str | None = None,
               source: KnowledgeSource | None = None, ranker=None) -> Toolbox:
    """The complex-QA toolbox: ``corpus`` (JSONL of title/text), ``wikipedia=True`` or a ``source`` object
    as knowledge source; ``ranker`` (``scores(query, texts)``) or ``retriever_model`` orders paragraphs.

    With no source, KnowledgeQuery fails with a ToolError naming the missing source (the other tools work).
    """
    if sum((corpus is not None, wikipedia, source is not None)) > 1:
        raise ValueError("give one knowledge source: a local corpus, wikipedia=True or a source object")
    if ranker is not None and retriever_model:
        raise ValueError("give a ranker or a retriever_model, not both")
    if source is None:
        source = (WikipediaAPI() if wikipedia else LocalCorpus(corpus, cache_dir=cache_dir)
                  if corpus is not None else NoKnowledgeSource())
    ranker = ranker or make_ranker(retriever_model)
    tools = QATools(source, qa_generator, ranker=ranker)
    box = Toolbox.from_vocabulary(COMPLEX_QA, {
        "KnowledgeQuery": tools.knowledge_query, "ParagraphRetrieve": tools.paragraph_retrieve, "QA": tools.qa,
        "Calculator": tools.calculator, "Code": tools.code,
    }, on_close=tools.close)
    box.qa_tools = tools  # what OriginalQAExecutor runs on (same source, ranker and QA model)
    return box


def gold_context(paragraphs: Sequence[dict]) -> list[dict]:
    """Corpus records from HotpotQA-style ``[title, [sentences]]`` contexts (for building local corpora)."""
    return [{"title": title, "text": " ".join(sentences)} for title, sentences in paragraphs]


# --------------------------------------------------------------------------- the original evaluation's execution
#
# Literal prompts of the released evaluation's QA tool (GPT-3.5 in the paper) and its final-answer call.
ORIGINAL_QA_PROMPT = ("Please answer the following question according to the context. Please answer with one brief "
                      "entity, beginning with 'Answer: '. If the answer can't be found in the context, answer "
                      "'No answer'. No more details and explanations.\n\nQuestion: {question}\nContext: {context}\n")
ORIGINAL_QA_PROMPT_NO_CONTEXT = ("Please answer the following question. Please answer with one brief entity, beginning "
                                 "with 'Answer: '. If the answer can't be answered, output 'No answer'. No more "
                                 "details and explanations.\n\nQuestion: {question}\n")
ORIGINAL_QA_PROMPT_FORCED = ("Please answer the following question. Please answer with one brief entity, beginning "
                             "with 'Answer: '.\n\nQuestion: {question}\n")
YES_NO_SUFFIX = " Must answer yes/no."
TITLE_SEPARATOR = "***"  # "<title> *** <sentence>" in KnowledgeQuery's list
SENTENCE_SEPARATOR = "*****"  # between sentences of a fetched page
ORIGINAL_QA_MAX_TOKENS = 100
_MATH_OPERATORS = ("*", "/", "+", "-", "^", "=", "<", ">")

Flavour = Literal["hotpotqa", "strategyqa"]


class OriginalActionFailed(ToolError):
    """An action the original's ``execute`` returned nothing for (unknown name, ``Code``, an unanswered
    HotpotQA ``Calculator``): the original then stops executing that example and never scores it."""


class _Swallowed(Exception):
    """An error the original's ``execute`` caught: it records ``""`` under the name ``""`` and goes on."""


@dataclass(frozen=True)
class ActionContext:
    """What the original's ``execute`` was told besides the action and the results so far.

    ``subgoals``: the planner reply of the step split on ``"; "`` (its last item names the subgoal a
    ``Calculator`` answers); ``last_of_onetime``: the action is the last of a onetime grounding, at
    position ``index`` (HotpotQA then gives its QA the task's ``question``; StrategyQA asks for yes/no,
    but only when ``index`` > 0, as the original tested ``if idx:``).
    """

    question: str
    subgoals: tuple[str, ...] = ()
    index: int = 0
    last_of_onetime: bool = False


def page_sentences(paragraphs: Sequence[str], limit: int) -> list[str]:
    """A fetched page as the original read it: paragraphs over ten words, cut at ``". "``, each given a
    final ``"."`` (so a sentence that ended with one now ends ``".."``), the first ``limit`` kept."""
    text = "".join(p if p.endswith("\n") else p + "\n" for p in paragraphs if len(p.split(" ")) > 10)
    sentences = []
    for paragraph in (p.strip() for p in text.split("\n")):
        if paragraph:
            sentences += paragraph.split(". ")
    return [s.strip() + "." for s in sentences if s.strip()][:limit]


def answer_part(result: str) -> str:
    """``"Question: q; Answer: a"`` -> ``"a"`` (the text between the first and any second ``"Answer: "``)."""
    return result.split("Answer: ")[1] if "Answer: " in result else result


class OriginalQAExecutor:
    """The released evaluation's ``execute`` for complex QA, over our knowledge source, ranker and QA model.

    ``flavour`` picks the benchmark's variant (HotpotQA and StrategyQA differ in their last action and
    in ``Calculator``). Values are what the original stored: a list for KnowledgeQuery, text otherwise.

    Where the page source differs: the original scraped Wikipedia's HTML (``index.php?search=``:
    the article, or up to five result titles); :meth:`WikipediaAPI.lookup` asks the API the same
    question, so infobox rows (the original's leading ``Reference Table: *** ...`` entry) and
    disambiguation link lists are not reproduced, and the original's unicode-escape clean-up of page
    text is not applied. Its relevance model is the toolbox's ranker: ``retriever_model``
    ``dpr:facebook/dpr-reader-multiset-base`` is the original's (``DPRReader`` logits over title and
    text); the default BM25 can order ``Evidence`` differently. The original fell back on a
    Google search when QA found no answer; offline, that search is one knowledge-source lookup of
    the question (the top page, read like a search-result entry).
    """

    def __init__(self, tools: QATools, flavour: Flavour):
        if flavour not in ("hotpotqa", "strategyqa"):
            raise ValueError(f"flavour must be 'hotpotqa' or 'strategyqa', got {flavour!r}")
        self.tools = tools
        self.flavour = flavour

    # ------------------------------------------------------------------ the original's execute

    def execute(self, tool: str, args: str, name: str, results: MutableMapping[str, Any] | None,
                context: ActionContext) -> tuple[str, Any]:
        """``(name, value)`` the original stored for ``name = tool(args)``; ``("", "")`` where it swallowed an error.

        ``results`` is the task's table so far (None once the task lost it: then only an action that
        reads no variable still runs, as there). Raises :class:`OriginalActionFailed` where the
        original's ``execute`` returned nothing.
        """
        handlers = {"KnowledgeQuery": self._knowledge_query, "ParagraphRetrieve": self._paragraph_retrieve,
                    "QA": self._qa, "Calculator": self._calculator}
        handler = handlers.get(tool)
        if tool == "":  # no name before "(": the original's branch for it fails on an unset variable
            return "", ""
        if handler is None:
            raise OriginalActionFailed(f"the original evaluation does not execute {tool or 'this action'!r}")
        try:
            value = handler(args, results, context)
        except (_Swallowed, KeyError, IndexError, TypeError, AttributeError):
            return "", ""
        if value is None:
            raise OriginalActionFailed(f"{tool}({args}) found no answer and the original records none")
        return name, value

    def decide_final_answer(self, results: Mapping[str, Any], question: str) -> str:
        """The original's ``decide_final_ans``: QA over every text result holding ``"Question: "``."""
        context = "".join(value + "; " for value in results.values()
                          if isinstance(value, str) and "Question: " in value).strip()
        suffix = YES_NO_SUFFIX if self.flavour == "strategyqa" else ""
        return self.ask(context, question + suffix)

    # ------------------------------------------------------------------ the tools

    def _knowledge_query(self, args: str, results: Mapping[str, Any], context: ActionContext) -> list[str]:
        query = args
        for variable in ORIGINAL_VARIABLE.findall(args):  # the original's findvariables: no word boundary
            query = query.replace(variable, str(results[variable]))
        page = self._lookup(query)
        if not page.candidates:
            return self._entries(query, page, 40)
        entries: list[str] = []
        for title in page.candidates:  # a search-result page: each listed title read with 15 sentences
            entry = self._lookup(title)
            if not entry.candidates:
                entries += self._entries(title, entry, 15)
        return entries

    def _paragraph_retrieve(self, args: str, results: Mapping[str, Any], context: ActionContext) -> str:
        question = args.split(", Query: ")[1]
        entries = results[ORIGINAL_VARIABLE.findall(args)[0]]
        if isinstance(entries, str):
            raise _Swallowed("ParagraphRetrieve over text, not a KnowledgeQuery list")
        titles = [entry.split(TITLE_SEPARATOR)[0].strip() for entry in entries]
        texts = [entry.split(TITLE_SEPARATOR)[1].strip() for entry in entries]
        if not texts:
            raise _Swallowed("no paragraph")
        return self.evidence(question, texts, titles=titles)

    def _qa(self, args: str, results: Mapping[str, Any], context: ActionContext) -> str | None:
        head, _, _ = args.partition(", Question: ")
        question = args.split(", Question: ")[1]
        text = ""
        for variable in head[1:-1].split(", "):
            value = results[variable]
            if not isinstance(value, str):
                raise _Swallowed("a KnowledgeQuery list given to QA as context")
            text += value + "\n"
        text = text.strip()
        if self.flavour == "strategyqa":
            if context.last_of_onetime and context.index > 0:
                return self.ask(text, question + YES_NO_SUFFIX)
            answer = self.ask(text, question)
            return answer if "no answer" not in answer.lower() else self._search_fallback(question, text)
        if context.last_of_onetime:  # HotpotQA: the plan's last QA answers the task's own question
            answer = self.ask(text, context.question)
            if "no answer" not in answer.lower():
                return answer
            answer = self.ask(text, question)
            if "no answer" not in answer.lower():
                return answer
            return self._search_fallback(question, text)
        answer = self.ask(text, question)
        return answer if "no answer" not in answer.lower() else self._search_fallback(question, text)

    def _calculator(self, args: str, results: Mapping[str, Any], context: ActionContext) -> str | None:
        formula = args
        for variable in ORIGINAL_VARIABLE.findall(args):
            formula = formula.replace(variable, str(results[variable]) + ".")
        for operator in _MATH_OPERATORS:
            formula = formula.replace(operator, "")
        subgoal = context.subgoals[-1] if context.subgoals else ""
        subgoal = subgoal[subgoal.find(":") + 2:]
        if self.flavour == "strategyqa":
            yes_no = context.last_of_onetime and context.index > 0
            return self.ask(formula, subgoal + (YES_NO_SUFFIX if yes_no else ""))
        if context.subgoals:
            answer = self.ask(formula, subgoal)
            if "no answer" not in answer.lower():
                return answer
        if context.last_of_onetime:
            answer = self.ask(formula, context.question)
            return answer if "no answer" not in answer.lower() else "No answer."
        return None

    # ------------------------------------------------------------------ the original's QA tool and retriever

    def ask(self, context: str, question: str) -> str:
        """The original's ``QAActions.QA``: ``"Question: <q>; <reply>"``, asked again without the context
        (or, for a yes/no question, told to answer) when the reply contains ``No answer``."""
        reply = self._chat(ORIGINAL_QA_PROMPT.format(question=question, context=context))
        if "No answer" in reply:
            retry = ORIGINAL_QA_PROMPT_NO_CONTEXT if "Must answer yes/no" not in question else ORIGINAL_QA_PROMPT_FORCED
            reply = self._chat(retry.format(question=question))
        return f"Question: {question}; {reply}"

    def evidence(self, question: str, texts: Sequence[str], k: int = 5, titles: Sequence[str] | None = None) -> str:
        """The ``k`` texts most relevant to ``question`` as ``"Evidence i: <text>\n"`` lines, best first
        (ties ordered as the original's ``np.argsort(scores)[-k:][::-1]`` orders them)."""
        import numpy as np

        ranker = self.tools.ranker or BM25Ranker()
        if getattr(ranker, "uses_titles", False):
            scores = ranker.scores(question, list(texts), titles=list(titles) if titles else None)
        else:
            scores = ranker.scores(question, list(texts))
        order = np.argsort(np.asarray(scores, dtype=float))[-k:][::-1]
        return "".join(f"Evidence {rank}: {texts[i]}\n" for rank, i in enumerate(order, start=1))

    def _chat(self, prompt: str) -> str:
        model = self.tools.qa_generator
        if model is None:
            raise ToolError("no QA model was given (--qa_model)")
        if isinstance(model, ChatGenerator):
            (reply,) = model.try_chat([[{"role": "user", "content": prompt}]], temperature=0.0,
                                      max_tokens=ORIGINAL_QA_MAX_TOKENS)
        else:
            (reply,) = model.try_generate([prompt], stop=["\n"], max_new_tokens=ORIGINAL_QA_MAX_TOKENS)
        if isinstance(reply, GenerationError):
            raise ToolError(f"QA model failed: {reply}")
        return reply

    def _lookup(self, query: str) -> PageLookup:
        lookup = getattr(self.tools.source, "lookup", None)
        if lookup is None:
            raise ToolError(f"knowledge source {type(self.tools.source).__name__} cannot look pages up")
        try:
            return lookup(query)
        except RetrievalError as error:
            raise ToolError(str(error)) from error

    def _entries(self, title: str, page: PageLookup, limit: int) -> list[str]:
        text = f" {SENTENCE_SEPARATOR} ".join(page_sentences(page.paragraphs, limit))
        return [f"{title} {TITLE_SEPARATOR} " + part.strip() for part in text.split(SENTENCE_SEPARATOR)]

    def _search_fallback(self, question: str, context: str) -> str:
        """Stand-in for the original's Google search: the knowledge source's best page for the question."""
        page = self._lookup(question)
        title = page.candidates[0] if page.candidates else page.title
        if title is None:
            return "No answer."
        if page.candidates:
            page = self._lookup(title)
        texts = [entry.split(TITLE_SEPARATOR)[1].strip() for entry in self._entries(title, page, 40)]
        if texts and any(texts):
            answer = self.ask(self.evidence(question, texts, titles=[title] * len(texts)), question)
            if "no answer" not in answer.lower():
                return answer
        return "No answer."


def original_executor(toolbox: Toolbox, flavour: Flavour) -> OriginalQAExecutor:
    """The original evaluation's execution over a toolbox built by :func:`qa_toolbox`."""
    tools = getattr(toolbox, "qa_tools", None)
    if tools is None:
        raise ValueError("the original QA execution needs a toolbox built by lumos.tools.qa.qa_toolbox")
    return OriginalQAExecutor(tools, flavour)
