"""Fixtures of the training tests: GSM8K-derived training files (made by the project's own data CLIs),
the tiny-model flags, and running train/finetune.py as the scripts do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDS = 200

# Flags that make the embedded model small enough for a few dozen CPU steps in seconds.
TINY_FLAGS = ["--model_name_or_path", "tiny", "--tiny_hidden_size", "64", "--tiny_num_layers", "2",
              "--tiny_vocab_size", "800", "--max_seq_length", "384", "--learning_rate", "3e-3",
              "--lr_scheduler_type", "constant", "--seed", "7"]


def make_gsm8k_training_files(source: Path, work_dir: Path, records: int = RECORDS) -> dict[str, Path]:
    """First ``records`` GSM8K records -> rule-based conversion -> iterative plan/ground training files."""
    raw = work_dir / "gsm8k.jsonl"
    with open(source, encoding="utf-8") as handle:
        raw.write_text("".join(line for _, line in zip(range(records), handle)), encoding="utf-8")
    data_dir = work_dir / "train"
    convert = subprocess.run(
        [sys.executable, "-m", "data.prompt_convertion", "--domain", "maths", "--data_fn", str(raw),
         "--convert_all", "--backend", "rules", "--output_dir", str(data_dir / "maths" / "converted"),
         "--no_progress"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    # Exit status 1 means some records had no calculation to convert; they are reported, not fatal here.
    assert convert.returncode in (0, 1), convert.stderr
    process = subprocess.run(
        [sys.executable, "-m", "data.process_for_train", "--domain", "maths", "--formulation", "lumos_iterative",
         "--data_dir", str(data_dir)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    files = {module: data_dir / "maths" / "train_annots" / f"lumos_maths_{module}_iterative.jsonl"
             for module in ("plan", "ground")}
    for path in files.values():
        assert path.stat().st_size > 0, f"{path} is empty"
    return files


def run_finetune(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train/finetune.py in a fresh process (``accelerate launch`` is exercised through ./train.sh)."""
    command = [sys.executable, str(REPO_ROOT / "train" / "finetune.py"), *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def gsm8k_train_files(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    return make_gsm8k_training_files(shared_data / "gsm8k" / "train_socratic.jsonl",
                                     tmp_path_factory.mktemp("gsm8k_train"))


@pytest.fixture(scope="session")
def tiny_flags() -> list[str]:
    return list(TINY_FLAGS)


@pytest.fixture(scope="session")
def finetune():
    """``finetune(args)`` -> CompletedProcess of a train/finetune.py run."""
    return run_finetune


@pytest.fixture(scope="session")
def llama2_tokenizer(shared_data: Path):
    """``../shared/data/llama2_tokenizer``: a fast tokenizer without a pad token.

    Its piece ids are Mistral-7B's ("▁" is 28705, "▁the" 272; LLaMA-2 has 29871 and 278), with
    LLaMA-2's scheme: SentencePiece BPE with byte fallback, <unk>/<s>/</s> = 0/1/2, legacy prefix
    space (a newline after a special token is "▁" + "<0x0A>"). Tests assert behaviour and piece
    names, never LLaMA-2 ids.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared_data / "llama2_tokenizer")


def rebuild_sentencepiece_model(tokenizer_json: Path, output: Path) -> Path:
    """A SentencePiece BPE model (``tokenizer.model``) with the pieces of a LLaMA-style ``tokenizer.json``.

    Merge priority follows the piece id (score = -id), as in LLaMA's own model; byte-fallback pieces,
    the dummy ``▁`` prefix and whitespace escaping as LLaMA's. It stands in for the ``tokenizer.model``
    that real LLaMA-2 checkpoints ship, which the shared data does not hold.
    """
    import json

    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    proto = model_pb2.ModelProto()
    kinds = model_pb2.ModelProto.SentencePiece
    for piece, index in sorted(vocab.items(), key=lambda item: item[1]):
        entry = proto.pieces.add()
        entry.piece = piece
        if index == 0:
            entry.type = kinds.UNKNOWN
        elif index in (1, 2):
            entry.type = kinds.CONTROL
        elif piece.startswith("<0x") and len(piece) == 6:
            entry.type = kinds.BYTE
        else:
            entry.type, entry.score = kinds.NORMAL, -float(index)
    proto.trainer_spec.model_type = model_pb2.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(vocab)
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    output.write_bytes(proto.SerializeToString())
    return output


@pytest.fixture(scope="session")
def llama2_tokenizer_folder(shared_data: Path, llama2_tokenizer, tmp_path_factory) -> Path:
    """The LLaMA-2 tokenizer saved with a ``tokenizer.model`` beside it (see ``rebuild_sentencepiece_model``)."""
    folder = tmp_path_factory.mktemp("llama2_tokenizer")
    llama2_tokenizer.save_pretrained(folder)
    rebuild_sentencepiece_model(shared_data / "llama2_tokenizer" / "tokenizer.json", folder / "tokenizer.model")
    return folder
