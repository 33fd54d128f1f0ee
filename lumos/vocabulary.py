"""The per-domain action vocabularies (docs/FORMAT.md §4).

This is the single declaration of which actions a domain has, their signatures and their
one-line descriptions. The grounding prompt's action list is rendered from it
(``lumos.prompts``), and each domain's tool registry in ``lumos.tools`` implements exactly
these names (a contract test checks both), so prompts and tools cannot drift apart.
Import-light on purpose: nothing heavy happens here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    name: str
    params: tuple[str, ...]
    description: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)})"


@dataclass(frozen=True)
class DomainVocabulary:
    name: str
    actions: tuple[ActionSpec, ...]
    # The released prompts list descriptions in their own order (complex_qa repeats Calculator).
    description_order: tuple[str, ...]
    # maths/complex_qa write "'A', 'B', and 'C'"; web_agent writes "'A', 'B', 'C'".
    list_with_and: bool = True

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.actions)

    def spec(self, name: str) -> ActionSpec:
        for spec in self.actions:
            if spec.name == name:
                return spec
        raise KeyError(f"{name!r} is not an action of domain {self.name!r}; "
                       f"available: {', '.join(self.tool_names)}")

    def action_list_text(self) -> str:
        quoted = [f"'{name}'" for name in self.tool_names]
        if self.list_with_and and len(quoted) > 1:
            return ", ".join(quoted[:-1]) + ", and " + quoted[-1]
        return ", ".join(quoted)

    def descriptions_text(self) -> str:
        parts = [f"{self.spec(n).signature}: {self.spec(n).description}" for n in self.description_order]
        return "; ".join(parts) + "."


_CALCULATOR = ActionSpec("Calculator", ("formula",), "Calculate the input formula")
_CODE = ActionSpec("Code", ("pseudo_code",), "Generate a Python function that corresponds to the pseudo code")

MATHS = DomainVocabulary(
    name="maths",
    actions=(
        _CALCULATOR,
        ActionSpec("SetEquation", ("equation",), "Set up an equation to be solved"),
        ActionSpec("SolveEquation", ("equation",), "Solve the previous set equation"),
        ActionSpec("Count", ("list",), "Count the number of elements in the given list"),
        ActionSpec("SolveInequality", ("inequality",), "Solve the previous set inequality"),
        _CODE,
        ActionSpec("Define", ("variable/number",), "Define a variable or a number for latter usage"),
    ),
    description_order=("Calculator", "SetEquation", "SolveEquation", "Count", "SolveInequality", "Code",
                       "Define"),
)

COMPLEX_QA = DomainVocabulary(
    name="complex_qa",
    actions=(
        ActionSpec("KnowledgeQuery", ("query",), "Capture the relevant webpages according to the query"),
        ActionSpec("ParagraphRetrieve", ("context", "query"),
                   "Given a query, retrieve the most relevant paragraphs from the given context"),
        ActionSpec("QA", ("context", "query"), "Given context, answer the given query"),
        _CALCULATOR,
        _CODE,
    ),
    description_order=("Calculator", "KnowledgeQuery", "ParagraphRetrieve", "QA", "Calculator", "Code"),
)

WEB_AGENT = DomainVocabulary(
    name="web_agent",
    actions=(
        ActionSpec("CLICK", ("Env", "Query"), "Click the relevant html region in Env according to Query"),
        ActionSpec("TYPE", ("Env", "Query", "Text"), "Type Text into the relevant html region in Env according to Query"),
        ActionSpec("SELECT", ("Env", "Query", "Text"),
                   "Select the value Text of the relevant selection box in Env according to Query"),
    ),
    description_order=("CLICK", "TYPE", "SELECT"),
    list_with_and=False,
)

SQL = DomainVocabulary(
    name="sql",
    actions=(ActionSpec("SQL", ("query",), "Run the SQL query on the task's database and return the result rows"),),
    description_order=("SQL",),
)


def vocabulary(domain: str) -> DomainVocabulary:
    """The vocabulary of a registered domain (``lumos.domains``; ``ValueError`` naming the choices)."""
    from lumos.domains import domain as lumos_domain

    return lumos_domain(domain).vocabulary
