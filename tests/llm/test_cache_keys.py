"""Response-cache keys computed over a shared prefix, batched lookups and inserts, grouped appends."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.jsonl import JsonlStore
from lumos.llm.cache import ResponseCache, SharedPrefixKeys, request_key

message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text()})
fields = st.fixed_dictionaries({"endpoint": st.just("chat"), "model": st.text(min_size=1),
                                "temperature": st.floats(0, 2), "max_tokens": st.integers(1, 4096)},
                               optional={"stop": st.lists(st.text(min_size=1), max_size=3)})


@settings(max_examples=200, deadline=None)
@given(fields, st.lists(message, max_size=4), st.lists(message, max_size=3))
def test_shared_prefix_key_is_the_whole_request_key(request_fields, prefix, tail):
    keys = SharedPrefixKeys(request_fields, prefix)
    assert keys.key(tail) == request_key({**request_fields, "messages": prefix + tail})


def test_marker_text_inside_a_message_falls_back_to_whole_requests():
    prefix = [{"role": "user", "content": "\x00lumos-cache-tail\x00"}]
    tail = [{"role": "user", "content": "q"}]
    fields_ = {"endpoint": "chat", "model": "m"}
    assert SharedPrefixKeys(fields_, prefix).key(tail) == request_key({**fields_, "messages": prefix + tail})


def test_get_many_and_put_many(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    requests = [{"endpoint": "chat", "model": "m", "messages": [{"role": "user", "content": str(i)}]}
                for i in range(1200)]  # more than one SELECT's worth of keys
    cache.put_many([(request_key(r), r, f"reply {i}", i, 1) for i, r in enumerate(requests[::2])])
    keys = [request_key(r) for r in requests]
    found = cache.get_many(keys)
    assert len(found) == 600 and found[keys[2]] == ("reply 1", 1, 1) and keys[1] not in found
    assert cache.get(requests[4]) == ("reply 2", 2, 1) and len(cache) == 600


def test_append_many_writes_whole_lines_and_refuses_repeats(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlStore(path) as store:
        store.append_many([{"id": "a:1"}, {"id": "a:2"}])
        with pytest.raises(ValueError, match="a:2"):
            store.append_many([{"id": "a:3"}, {"id": "a:2"}])
        with pytest.raises(ValueError, match="a:4"):
            store.append_many([{"id": "a:4"}, {"id": "a:4"}])
        store.append({"id": "a:3"})
    with open(path, "ab") as handle:  # a killed writer's torn last line
        handle.write(b'{"id": "a:')
    reopened = JsonlStore(path)
    assert reopened.done == {"a:1", "a:2", "a:3"}
    reopened.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a:1", "a:2", "a:3"]
