"""The transformers backend on a tiny randomly initialised LLaMA built in the test."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from lumos.llm import get_generator
from lumos.llm.kv_cache import _length_groups
from lumos.llm.hf_backend import HFGenerator

WORDS = "apples pears dogs fox lazy total number calculate".split()
PROMPTS = [f"<|user|>\nTask: how many {WORDS[i % 8]} and {WORDS[(i * 3) % 8]}?" * (i % 3 + 1) + "\n<|assistant|>\n"
           for i in range(7)]


def count_forward_calls(model) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def greedy_ids(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """The token ids plain ``model.generate`` picks for one unpadded prompt."""
    prompt_ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    output = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return output[0, prompt_ids.shape[1]:].tolist()


def test_batched_equals_one_at_a_time_in_input_order(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer, batch_size=3)  # 3 batches, sorted by length: order must be restored
    batched = generator.generate(PROMPTS, stop=[], max_new_tokens=16)
    one_by_one = [generator.generate([p], stop=[], max_new_tokens=16)[0] for p in PROMPTS]
    assert batched == one_by_one
    assert len(set(batched)) > 3, "the random model should answer different prompts differently"


def test_each_row_stops_at_its_own_first_newline(tiny_model):
    model, tokenizer = tiny_model
    free = HFGenerator(model, tokenizer, batch_size=8).generate(PROMPTS[:2], stop=[], max_new_tokens=12)
    assert not any("\n" in text for text in free)
    ids = [greedy_ids(model, tokenizer, prompt, 12) for prompt in PROMPTS[:2]]
    assert [tokenizer.decode(row) for row in ids] == free
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    # Give the newline token the output weights of a token that row 0 generates and row 1 never does:
    # argmax takes the first of equal logits and newline's id is smaller, so row 0 now writes a newline
    # exactly where it wrote that token, and row 1 is unaffected.
    position, token = next((k, t) for k, t in enumerate(ids[0]) if k > 0 and t > newline and t not in ids[1])
    patched = copy.deepcopy(model)
    with torch.no_grad():
        patched.lm_head.weight[newline] = patched.lm_head.weight[token]
    calls = count_forward_calls(patched)
    stopped = HFGenerator(patched, tokenizer, batch_size=8, max_padding=1.0).generate(PROMPTS[:2], max_new_tokens=12)
    assert stopped[0] == tokenizer.decode(ids[0][:position]) and stopped[0] != free[0]
    assert stopped[1] == free[1]
    groups = len(_length_groups([len(tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]))  # prefill passes
    assert calls[0] == groups + 11  # row 1 ran to the token limit

    calls[0] = 0
    assert HFGenerator(patched, tokenizer).generate(PROMPTS[:1], max_new_tokens=12) == [stopped[0]]
    assert calls[0] == position + 1, "generation went on after the only row had stopped"


def test_batch_ends_when_every_row_has_stopped(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer, batch_size=8)
    free = generator.generate(PROMPTS[:4], stop=[], max_new_tokens=20)
    stops = [text[3:5] for text in free]  # each row hits its own stop string after a few tokens
    patched_generator = HFGenerator(copy.deepcopy(model), tokenizer, batch_size=8, max_padding=1.0)
    calls = count_forward_calls(patched_generator.model)
    stopped = patched_generator.generate(PROMPTS[:4], stop=stops, max_new_tokens=20)
    for text, full, stop in zip(stopped, free, stops):
        assert full.startswith(text) and stop not in text and len(text) <= 3
    assert calls[0] < 20


def test_special_token_policy(tiny_model):
    model, tokenizer = tiny_model
    with_bos = HFGenerator(model, tokenizer, add_special_tokens=True)
    without = HFGenerator(model, tokenizer, add_special_tokens=False)
    with_bos.generate(PROMPTS[:3], max_new_tokens=2)
    without.generate(PROMPTS[:3], max_new_tokens=2)
    assert with_bos.usage.prompt_tokens - without.usage.prompt_tokens == 3  # one BOS per prompt


def test_get_generator_loads_a_saved_checkpoint(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    loaded = get_generator(str(tmp_path / "tiny"), batch_size=4)
    assert isinstance(loaded, HFGenerator) and loaded.model.dtype == torch.float32
    assert loaded.generate(PROMPTS, stop=[], max_new_tokens=8) == \
        HFGenerator(model, tokenizer).generate(PROMPTS, stop=[], max_new_tokens=8)


def test_bad_options_are_rejected(tiny_model):
    model, tokenizer = tiny_model
    with pytest.raises(ValueError, match="batch_size"):
        HFGenerator(model, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match="max_padding"):
        HFGenerator(model, tokenizer, max_padding=1.5)
    with pytest.raises(ValueError, match="dtype"):
        HFGenerator.from_pretrained("unused", dtype="int8")


def test_prompts_of_very_different_lengths_go_to_separate_sub_batches(tiny_model):
    model, tokenizer = tiny_model
    lengths = [100, 30, 95, 90, 29, 80, 10, 28]
    generator = HFGenerator(model, tokenizer, batch_size=3, max_padding=0.2)
    assert generator._sub_batches(lengths) == [[0, 2, 3], [5], [1, 4, 7], [6]]
    # max_padding=1 only caps the rows: plain length-sorted chunks of batch_size
    assert HFGenerator(model, tokenizer, batch_size=3, max_padding=1.0)._sub_batches(lengths) == [
        [0, 2, 3], [5, 1, 4], [7, 6]]
    split = HFGenerator(model, tokenizer, batch_size=8, max_padding=0.0)
    together = HFGenerator(model, tokenizer, batch_size=8, max_padding=1.0)
    assert split.generate(PROMPTS, stop=[], max_new_tokens=8) == together.generate(PROMPTS, stop=[], max_new_tokens=8)


# --------------------------------------------------------------------------- the real LLaMA-2 tokenizer


class SteeredLlama:
    """A tiny random LLaMA (32,000-token vocabulary) whose greedy choice is scripted per row; counts forwards."""

    @staticmethod
    def build(scripts: list[list[int]]):
        from transformers import LlamaConfig, LlamaForCausalLM

        class Steered(LlamaForCausalLM):
            def forward(self, input_ids=None, **kwargs):
                output = super().forward(input_ids=input_ids, **kwargs)
                self.calls += 1
                self.step = 0 if input_ids.shape[1] > 1 else self.step + 1  # a prefill starts a generation
                logits = torch.full_like(output.logits[:, -1], -1e4)
                for row, script in enumerate(self.scripts):
                    logits[row, script[self.step] if self.step < len(script) else self.config.eos_token_id] = 1e4
                output.logits[:, -1] = logits
                return output

        config = LlamaConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
        torch.manual_seed(0)
        model = Steered(config).eval()
        model.scripts, model.calls, model.step = scripts, 0, 0
        return model


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_stops_at_a_newline_that_is_a_byte_token(llama2_tokenizer):
    tokenizer = llama2_tokenizer
    newline = tokenizer.convert_tokens_to_ids("<0x0A>")
    # the original stopped on the last id of "\n" (SentencePiece writes "▁" + "<0x0A>")
    assert tokenizer.convert_ids_to_tokens(_ids(tokenizer, "\n")) == ["▁", "<0x0A>"]
    first = _ids(tokenizer, "R1 = Calculator(2 + 3)\nR2 = Calculator(R1 * 5)")
    second = _ids(tokenizer, "Subgoal 1: Calculate the total number of apples.") + \
        tokenizer.convert_tokens_to_ids(["▁", "<0x0A>"]) + _ids(tokenizer, "Subgoal 2: Stop.")
    for script in (first, second):
        assert newline in script
    model = SteeredLlama.build([first, second])
    generator = HFGenerator(model, tokenizer, batch_size=2, max_padding=1.0)
    prompts = ["<|user|>\nTask: one\n<|assistant|>\n", "<|user|>\nTask: two\n<|assistant|>\n"]
    assert len(set(len(ids) for ids in generator.encode(prompts))) == 1  # one sub-batch, rows in input order
    texts = generator.generate(prompts, max_new_tokens=40)
    assert texts[0] == "R1 = Calculator(2 + 3)"
    assert texts[1].rstrip() == "Subgoal 1: Calculate the total number of apples."
    # the batch ended with the token that completed the later row's newline, not at the token limit
    assert model.calls == max(first.index(newline), second.index(newline)) + 1

    model.calls = 0
    model.scripts = [first]
    assert HFGenerator(model, tokenizer).generate(prompts[:1], stop=[], max_new_tokens=40) == \
        ["R1 = Calculator(2 + 3)\nR2 = Calculator(R1 * 5)"]
    assert model.calls == len(first) + 1  # ran on to EOS without a stop string


@pytest.fixture(scope="module")
def maths_conversations(shared_data) -> list[list[dict]]:
    path = shared_data / "lumos_reference" / "A_training" / "maths" / "gsm8k_train_first300" / "output"
    conversations = []
    for name in ("lumos_maths_plan_iterative.jsonl", "lumos_maths_ground_iterative.jsonl"):
        with open(path / name, encoding="utf-8") as handle:
            conversations += [json.loads(line)["messages"] for _, line in zip(range(60), handle)]
    return conversations


def test_tulu_prompts_are_the_training_text_up_to_the_answer(maths_conversations, llama2_tokenizer):
    """BOS first, EOS + "▁\\n" after each earlier answer: the prompt's ids are the training ids up to the
    first labelled token of the answer asked for."""
    from lumos.prompts import render_prompt
    from train.data import IGNORE_INDEX, encode_conversation

    tokenizer = llama2_tokenizer
    generator = HFGenerator(SteeredLlama.build([[]]), tokenizer, add_special_tokens=True)
    checked = 0
    for messages in maths_conversations:
        training = encode_conversation(messages, tokenizer, max_seq_length=100_000)
        for turn, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            (ids,) = generator.encode([render_prompt(messages[:turn], tokenizer.eos_token, style="tulu")])
            assert training["input_ids"][:len(ids)] == ids
            assert training["labels"][len(ids) - 1] == IGNORE_INDEX != training["labels"][len(ids)]
            assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
            eos = [i for i, token in enumerate(ids) if token == tokenizer.eos_token_id]
            assert len(eos) == sum(m["role"] == "assistant" for m in messages[:turn])
            for position in eos:
                assert tokenizer.convert_ids_to_tokens(ids[position + 1:position + 3]) == ["▁", "<0x0A>"]
            assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<0x0A>"
            checked += 1
    assert checked > 200


def test_original_prompts_are_tokenised_without_special_tokens(shared_data, llama2_tokenizer):
    """The recorded prompts of the original GSM8K evaluation, as the original tokenised them."""
    from lumos.prompts import render_prompt

    tokenizer = llama2_tokenizer
    generator = HFGenerator(SteeredLlama.build([[]]), tokenizer, add_special_tokens=False)
    prompts = []
    path = shared_data / "lumos_reference" / "B_eval" / "gsm" / "lumos_iterative.transcripts.jsonl"
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            calls = [call for call in json.loads(line)["calls"] if call["type"] == "lm"]
            assert all(call["add_special_tokens"] is False for call in calls)
            prompts += [call["prompt"] for call in calls]
    assert len(prompts) > 20
    for prompt, ids in zip(prompts, generator.encode(prompts)):
        assert ids == _ids(tokenizer, prompt)
        assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids
        assert tokenizer.convert_ids_to_tokens(ids[0]) == "▁<"  # SentencePiece's prefix space, no BOS
    later = [{"role": "user", "content": "Task: 2 + 3"}, {"role": "assistant", "content": "Subgoal 1: Add."},
             {"role": "user", "content": "The executed result for Subgoal 1 is 5. Should we stop planning?"}]
    (ids,) = generator.encode([render_prompt(later, tokenizer.eos_token, style="original")])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    answer_end = pieces.index(".")  # "Add." then "\n\n<|user|>": two byte tokens, no EOS
    assert pieces[answer_end + 1:answer_end + 4] == ["<0x0A>", "<0x0A>", "<"]


# --------------------------------------------------------------------------- quantised loading


@pytest.fixture(scope="module")
def llama2_checkpoint(llama2_tokenizer, tmp_path_factory):
    """A saved random LLaMA with the real tokenizer (32,000 tokens)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("llama2_tiny")
    config = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    llama2_tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("bits", [8, 4])
def test_bitsandbytes_loading_quantises_and_generates(llama2_checkpoint, bits, caplog):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes

    with caplog.at_level("WARNING", logger="lumos.llm.hf"):
        generator = HFGenerator.from_pretrained(llama2_checkpoint, device="cpu", **{f"load_in_{bits}bit": True})
    assert [r.message for r in caplog.records if r.name == "lumos.llm.hf"] == \
        [f"{bits}-bit weights on the CPU: bitsandbytes' CPU kernels work but are slow; they are meant for a CUDA GPU"]
    layer = generator.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bitsandbytes.nn.Linear8bitLt if bits == 8 else bitsandbytes.nn.Linear4bit)
    texts = generator.generate(["<|user|>\nTask: 2 + 3\n<|assistant|>\n"] * 2, stop=[], max_new_tokens=4)
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0]


def test_gptq_refuses_what_cannot_load_in_one_line(llama2_checkpoint, tmp_path):
    from lumos.llm.hf_backend import QuantizedLoadError

    with pytest.raises(QuantizedLoadError, match="is not a GPTQ checkpoint") as plain:
        HFGenerator.from_pretrained(llama2_checkpoint, gptq=True)
    auto_gptq = tmp_path / "auto_gptq"
    auto_gptq.mkdir()
    (auto_gptq / "config.json").write_text((llama2_checkpoint / "config.json").read_text())
    (auto_gptq / "quantize_config.json").write_text('{"bits": 4, "group_size": 128}')
    with pytest.raises(QuantizedLoadError, match="AutoGPTQ's own layout"):
        HFGenerator.from_pretrained(auto_gptq, gptq=True)
    gptq = tmp_path / "gptq"
    gptq.mkdir()
    config = json.loads((llama2_checkpoint / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (gptq / "config.json").write_text(json.dumps(config))
    import importlib.util

    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("gptqmodel") is None:
        with pytest.raises(QuantizedLoadError, match="pip install .*(optimum|gptqmodel)") as missing:
            HFGenerator.from_pretrained(gptq, gptq=True)
        assert "\n" not in str(missing.value)
    with pytest.raises(QuantizedLoadError, match="choose one"):
        HFGenerator.from_pretrained(llama2_checkpoint, load_in_8bit=True, gptq=True)
    assert "\n" not in str(plain.value)


def test_eval_flags_reach_the_local_model_loader(llama2_checkpoint, capsys):
    """run_eval's --load_in_8bit / --gptq / --prompt_style, as eval.runner hands them to the HF backend."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes

    from eval.runner import EvalConfig, EvalSetupError, load_generator

    original = load_generator(str(llama2_checkpoint), EvalConfig(prompt_style="original", load_in_8bit=True))
    assert original.add_special_tokens is False
    assert isinstance(original.model.model.layers[0].mlp.up_proj, bitsandbytes.nn.Linear8bitLt)
    tulu = load_generator(str(llama2_checkpoint), EvalConfig())
    assert tulu.add_special_tokens is True and isinstance(tulu.model.model.layers[0].mlp.up_proj, torch.nn.Linear)
    with pytest.raises(EvalSetupError, match="not a GPTQ checkpoint"):
        load_generator(str(llama2_checkpoint), EvalConfig(gptq=True))
    load_generator("http://127.0.0.1:9/v1", EvalConfig(load_in_8bit=True)).close()
    assert "--load_in_8bit applies to local models: http://127.0.0.1:9/v1" in capsys.readouterr().err
