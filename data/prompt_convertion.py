"""Convert benchmark records into Lumos subgoal/action annotations.

    # rules (no LLM): GSM8K, ASDiv, StrategyQA, MuSiQue, Mind2Web
    python -m data.prompt_convertion --domain maths --data_fn data/train/maths/raw_data/gsm8k.jsonl \
        --convert_all --backend rules --verify --keep verified
    python -m data.prompt_convertion --domain complex_qa \
        --data_fn data/train/complex_qa/raw_data/strategyqa_train.json --convert_all --verify
    python -m data.prompt_convertion --domain maths --data_fn F --st_idx 0 --ed_idx 1000 --backend rules
    # any OpenAI-compatible LLM (OpenAI with OPENAI_API_KEY, or a local vLLM/TGI/llama.cpp/Ollama server)
    python -m data.prompt_convertion --domain web_agent --data_fn data/train/web_agent/raw_data/train_0.json \
        --convert_all --backend openai --model gpt-4 --concurrency 16 --rpm 500 --verify
    python -m data.prompt_convertion --domain maths --data_fn F --convert_all --backend openai \
        --base_url http://127.0.0.1:8000/v1 --model meta-llama/Llama-2-70b-chat-hf

The source (gsm8k, asdiv, prm800k, strategyqa, musique, mind2web) is recognised from the
records' fields; ``--source`` overrides it. Writes
``data/train/<domain>/converted/<name>_converted[_<st>_<ed>].json`` (one JSON object per line;
``<name>`` is the source, or for maths the input file's name) and ``...failed.jsonl`` with the
reason of every record that failed or was unusable (the record format: docs/FORMAT.md §1).
Re-running resumes; LLM replies are cached in ``llm_cache.sqlite`` beside the output, so a
repeated run pays only for what it has not got; ``--retry_failed`` converts the failed records
again and asks the LLM again (its cached replies to them are not reused).
``--save_dir``/``--max_num_examples`` are aliases of ``--output_dir``/``--limit``.
Exit status: 0 when something was converted, failures included (they are counted, with their
reasons in the failed file), so ``set -e`` scripts go on; 1 when nothing could be converted, or
with ``--strict`` when any record could not be converted; 2 for a bad command line or setup.
"""

from __future__ import annotations

import argparse
import sys

from lumos.cli import DefaultsHelpFormatter
from lumos.convert.pipeline import BACKENDS, DOMAINS, KEEP, SOURCES, ConversionConfig, Summary, run_conversion
from lumos.jsonl import StoreLocked


def parse_args(argv: list[str] | None = None) -> ConversionConfig:
    parser = argparse.ArgumentParser(prog="python -m data.prompt_convertion", description=__doc__,
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--domain", required=True, choices=DOMAINS)
    parser.add_argument("--data_fn", required=True, help="raw benchmark file (JSONL or JSON list)")
    parser.add_argument("--source", choices=SOURCES, default=None, help="default: recognised from the fields")
    parser.add_argument("--convert_all", action="store_true", help="convert the whole file")
    parser.add_argument("--st_idx", type=int, default=0, help="first record of a shard")
    parser.add_argument("--ed_idx", type=int, default=0, help="end (exclusive) of a shard")
    parser.add_argument("--backend", choices=BACKENDS, default="rules")
    parser.add_argument("--verify", action="store_true",
                        help="check annotations: maths by execution, complex_qa/web_agent structurally (web "
                             "against the gold action_reprs)")
    parser.add_argument("--keep", choices=KEEP, default=None,
                        help="which records go to the output (None: verified with --verify, else all)")
    parser.add_argument("--output_dir", "--save_dir", dest="output_dir", default=None,
                        help="output folder (None: data/train/<domain>/converted)")
    parser.add_argument("--limit", "--max_num_examples", dest="limit", type=int, default=None,
                        help="convert at most this many new records (None: all)")
    parser.add_argument("--retry_failed", action="store_true",
                        help="forget earlier failures and convert them again (an LLM is asked again, not its cache)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any record could not be converted (without it: only when none could)")
    llm = parser.add_argument_group("--backend openai")
    llm.add_argument("--model", default="gpt-4")
    llm.add_argument("--base_url", default=None, help="OpenAI-compatible endpoint (or OPENAI_BASE_URL); "
                                                      "the key comes from OPENAI_API_KEY")
    llm.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    llm.add_argument("--rpm", type=float, default=None, help="at most this many requests per minute")
    llm.add_argument("--max_tokens", type=int, default=800)
    llm.add_argument("--request_timeout", type=float, default=60.0, help="seconds per request attempt")
    llm.add_argument("--max_attempts", type=int, default=5, help="attempts per request (429, 5xx, timeouts)")
    llm.add_argument("--parse_retries", type=int, default=1,
                     help="times an unreadable reply is asked again, with the parse error")
    llm.add_argument("--batch_size", type=int, default=None,
                     help="records per batch (None: max(256, 16 x concurrency)); a kill loses only requests in flight")
    llm.add_argument("--cache_path", default=None, help="response cache (None: llm_cache.sqlite beside the output)")
    llm.add_argument("--no_cache", action="store_true")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    keep = args.keep or ("verified" if args.verify else "all")
    try:
        config = ConversionConfig(
            domain=args.domain, data_fn=args.data_fn, convert_all=args.convert_all, st_idx=args.st_idx,
            ed_idx=args.ed_idx, backend=args.backend, verify=args.verify, keep=keep, output_dir=args.output_dir,
            limit=args.limit, retry_failed=args.retry_failed, source=args.source, model=args.model,
            base_url=args.base_url, concurrency=args.concurrency, rpm=args.rpm, max_tokens=args.max_tokens,
            request_timeout=args.request_timeout, max_attempts=args.max_attempts, parse_retries=args.parse_retries,
            batch_size=args.batch_size, cache_path=args.cache_path, use_cache=not args.no_cache,
            progress=not args.no_progress, strict=args.strict)
    except ValueError as error:
        parser.error(str(error))
    return config


def main(argv: list[str] | None = None) -> int:
    from lumos.convert.converters import converter_for, verifier_for

    config = parse_args(argv)
    try:
        converter, verify = converter_for(config), verifier_for(config)
    except (ValueError, RuntimeError) as error:  # no converter for the source; missing API key
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        summary = run_conversion(config, converter, verify)
    except StoreLocked as error:  # another conversion writes this output now
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        converter.close()
    for line in summary.lines():
        print(line)
    print(f"output: {config.output_path}")
    if summary.failures or summary.rejected or summary.unusable:
        print(f"failures with reasons: {config.failed_path}")
    return exit_status(summary, config)


def exit_status(summary: Summary, config: ConversionConfig) -> int:
    """0 when something was converted (failures reported); 1 when nothing was, or under --strict any failure."""
    failed = summary.conversion_failures
    if summary.total and not summary.output_records:
        print(f"error: no record could be converted ({failed} failed, {sum(summary.rejected.values())} rejected, "
              f"{sum(summary.unusable.values())} unusable): reasons in {config.failed_path}", file=sys.stderr)
        return 1
    if failed:
        print(f"warning: {failed} record(s) could not be converted (reasons in {config.failed_path}); "
              + ("--strict: exit status 1" if config.strict else "the rest was converted (--strict makes this exit 1)"),
              file=sys.stderr)
        return 1 if config.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
