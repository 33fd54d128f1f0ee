from __future__ import annotations

import json

import pytest

from lumos.llm import BatchGenerationError, GenerationError, get_generator
from lumos.llm.scripted import ScriptedGenerator


def test_rules_match_prompt_or_last_user_turn_in_order():
    generator = ScriptedGenerator([(r"Subgoal \d", "R1 = Calculator(1 + 1)\nmore"), (r"Subgoal", "never reached")])
    assert generator.generate(["Subgoal 2: add"]) == ["R1 = Calculator(1 + 1)"]  # cut at the default newline
    assert generator.generate(["Subgoal 2: add"], stop=[]) == ["R1 = Calculator(1 + 1)\nmore"]
    conversation = [{"role": "user", "content": "Subgoal 1"}, {"role": "assistant", "content": "x"},
                    {"role": "user", "content": "nothing scripted"}]
    [result] = generator.try_chat([conversation])
    assert isinstance(result, GenerationError) and "nothing scripted" in str(result)
    with pytest.raises(BatchGenerationError):
        generator.chat([conversation])
    assert generator.calls[-1] == "nothing scripted" and generator.usage.failures == 2


def test_function_replies_and_default():
    generator = ScriptedGenerator(lambda text: text.upper())
    assert generator.chat([[{"role": "user", "content": "yes"}]], stop=None) == ["YES"]
    assert ScriptedGenerator({}, default="No answer").generate(["anything"]) == ["No answer"]


def test_from_file_through_get_generator(tmp_path):
    rules = tmp_path / "replies.json"
    rules.write_text(json.dumps({"rules": [["France", "Paris"]], "default": "?"}))
    generator = get_generator(f"scripted:{rules}")
    assert generator.chat([[{"role": "user", "content": "capital of France"}]]) == ["Paris"]
    assert generator.generate(["other"]) == ["?"]
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        get_generator(f"scripted:{tmp_path / 'broken.json'}")


def test_exact_replies_answer_whole_prompts_byte_for_byte(tmp_path):
    path = tmp_path / "exact.json"
    path.write_text(json.dumps({"exact": [["<|user|>\nQ?\n<|assistant|>\n", "Answer is 3.\nextra"]]}))
    generator = get_generator(f"scripted:{path}")
    assert generator.generate(["<|user|>\nQ?\n<|assistant|>\n"]) == ["Answer is 3."]
    # a prompt one byte off (a BOS, a missing newline) is not answered
    [missing] = generator.try_generate(["<s><|user|>\nQ?\n<|assistant|>\n"])
    assert isinstance(missing, GenerationError) and "no recorded prompt" in str(missing)
    assert ScriptedGenerator.exact({"a": "b"}, default="d").generate(["a", "c"]) == ["b", "d"]
