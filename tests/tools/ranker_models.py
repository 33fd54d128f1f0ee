"""Tiny ranker models for tests, built in a folder (no download): a WordPiece vocabulary written out,
random BERT weights saved with save_pretrained, and the sentence-transformers wrappers around them.

A random model ranks nothing meaningfully; tests compare its scores with an independent computation.
"""

from __future__ import annotations

from pathlib import Path

POSITIONS = 64  # the tiny models' position embeddings: their own input limit
WORDS = ("what which who is the a of in and capital city country river largest population france paris germany "
         "berlin rhine seine flows through europe located query passage").split()


def tokenizer():
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]", model_max_length=POSITIONS)


def bert_config(**extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=POSITIONS, initializer_range=0.5, **extra)


def st_modules():
    try:  # sentence-transformers 6 moved the modules; 5 has them only here
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer
    return Pooling, Transformer


def build_bert(path: Path, seed: int = 0) -> str:
    """A bare BERT encoder (``BertModel``) with the tokenizer: a transformers folder, no sentence-transformers files."""
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    BertModel(bert_config()).save_pretrained(path)
    tokenizer().save_pretrained(path)
    return str(path)


def build_bi_encoder(path: Path, bert: Path, prompts: dict[str, str] | None = None) -> str:
    """A sentence-transformers bi-encoder (mean pooling) over the BERT folder ``bert``."""
    from sentence_transformers import SentenceTransformer

    Pooling, Transformer = st_modules()
    transformer = Transformer(str(bert), max_seq_length=POSITIONS)
    pooling = Pooling(transformer.auto_model.config.hidden_size, "mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu", prompts=prompts).save(str(path))
    return str(path)


def build_cross_encoder(path: Path, num_labels: int = 1, seed: int | None = 0) -> str:
    """A cross-encoder: ``BertForSequenceClassification`` of ``num_labels`` labels with the tokenizer (weights
    drawn after ``torch.manual_seed(seed)``; ``None``: from the generator's current state)."""
    import torch
    from transformers import BertForSequenceClassification

    if seed is not None:
        torch.manual_seed(seed)
    BertForSequenceClassification(bert_config(num_labels=num_labels)).save_pretrained(path)
    tokenizer().save_pretrained(path)
    return str(path)


def build_broken(path: Path, model: str) -> str:
    """A copy of the model folder ``model`` whose weights file is garbage: its config looks right, loading fails."""
    import shutil

    shutil.copytree(model, path)
    weights = sorted(Path(path).rglob("*.safetensors")) + sorted(Path(path).rglob("*.bin"))
    assert weights, f"no weights file in {model}"
    for file in weights:
        file.write_bytes(b"not a weights file" * 8)
    return str(path)


def build_models(root: Path) -> dict[str, str]:
    """Paths of a bi-encoder, the same bi-encoder with query/document prompts, and a one-label cross-encoder."""
    paths = {"bert": build_bert(root / "bert")}
    paths["bi"] = build_bi_encoder(root / "bi", root / "bert")
    paths["bi_prompts"] = build_bi_encoder(root / "bi_prompts", root / "bert",
                                           {"query": "query what ", "document": "passage "})
    paths["cross"] = build_cross_encoder(root / "cross", seed=None)  # (drawn after the encoder, as always)
    return paths
