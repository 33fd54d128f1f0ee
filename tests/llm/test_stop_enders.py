"""The decoding loop decodes a reply's tail only after a token that can complete a stop string: checked with
the real LLaMA-2 tokenizer (SentencePiece, byte fallback) on text where stop strings end in every way."""

import pytest

from lumos.llm.kv_cache import _stop_enders

TEXTS = [
    "R1 = Calculator(16 - 3 - 4)\nR2 = Calculator(R1 * 2)\nSubgoal 2: Calculate how much she makes.",
    "Observation: the page shows [button] Add to cart; Observation:done\n\nThought: café au lait, naïve résumé.",
    "Yes, I will stop planning.\r\n日本語のテキスト\nfoo bar foo  baz\tqux\u00e9\u0301 end",
]
STOPS = [["\n"], ["Observation:"], ["\n", "."], ["é"], ["日本"], ["foo "], [" "], ["\t"], ["planning."]]


@pytest.mark.parametrize("stop", STOPS, ids=repr)
def test_every_newly_completed_stop_is_looked_at(llama2_tokenizer, stop):
    tokenizer = llama2_tokenizer
    may_end = _stop_enders(tokenizer, stop)
    checked = skipped = 0
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        before = ""
        for k in range(1, len(ids) + 1):
            now = tokenizer.decode(ids[:k], skip_special_tokens=True)
            completed = any(now.count(s) > before.count(s) for s in stop)
            if completed:
                assert may_end(ids[k - 1]), (stop, now[-20:], tokenizer.convert_ids_to_tokens(ids[k - 1]))
            checked += completed
            skipped += not may_end(ids[k - 1])
            before = now
    assert checked > 0
    if not any(s[-1].isspace() and s[-1] != "\n" for s in stop):
        assert skipped > 0  # most tokens are passed over without decoding the tail
