"""The Domain registry: every domain is declared once and read from there."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lumos.domains import DOMAINS, domain, domain_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_domain_is_whole(name):
    spec = domain(name)
    assert spec.vocabulary.name == name
    with spec.make_toolbox() as box:  # builds without data, models or servers (they load on first use)
        assert box.tool_names == spec.vocabulary.tool_names
    assert spec.make_original_protocol(4, "iterative").round_limit == 4
    assert spec.plan_feedback(1, "Open the menu", "5").endswith(". Should we stop planning?")


def test_training_domains_have_what_training_needs():
    from lumos.convert.annotation import TRAINING_RULES
    from lumos.convert.llm_prompts import conversion_examples

    assert domain_names(training=True) == ("maths", "complex_qa", "web_agent")
    assert set(TRAINING_RULES) == set(conversion_examples()) == set(domain_names(training=True))
    assert "sql" in domain_names(training=False)


def test_the_lists_of_domains_come_from_the_registry():
    from data.process_for_train import DOMAIN_NAMES
    from lumos.convert.pipeline import DOMAINS as CONVERSION_DOMAINS

    assert DOMAIN_NAMES == CONVERSION_DOMAINS == domain_names(training=True)
    listed = subprocess.run([sys.executable, "-m", "lumos.domains", "--training"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert tuple(listed) == domain_names(training=True)  # what scripts/train/finetune.sh accepts as TASK


def test_no_code_compares_domain_names():
    compare = re.compile(r"""domain\s*(==|!=)\s*["']|["'](maths|complex_qa|web_agent|sql)["']\s*(==|!=)\s*\w*domain""")
    hits = [f"{path.relative_to(ROOT)}:{n}" for folder in ("lumos", "eval", "data", "train")
            for path in (ROOT / folder).rglob("*.py")
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if compare.search(line)]
    assert hits == []


def test_unknown_domain_names_the_choices():
    with pytest.raises(ValueError, match="unknown domain 'chess'; choose one of maths, complex_qa, web_agent, sql"):
        domain("chess")
