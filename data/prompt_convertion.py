"""Convert benchmark records into Lumos subgoal/action annotations.

    python -m data.prompt_convertion --domain maths --data_fn data/train/maths/raw_data/gsm8k.jsonl \
        --convert_all --backend rules --verify --keep verified
    python -m data.prompt_convertion --domain maths --data_fn F --st_idx 0 --ed_idx 1000 --backend rules

Writes ``data/train/<domain>/converted/<name>_converted[_<st>_<ed>].json`` (one JSON object per
line) and ``...failed.jsonl`` with the reason of every record that failed. Re-running resumes.
Exit status: 0 when every record was converted (verification rejections under
``--keep verified`` are the intended filter), 1 when some records could not be converted.
"""

from __future__ import annotations

import argparse
import sys

from lumos.convert.pipeline import BACKENDS, DOMAINS, KEEP, ConversionConfig, run_conversion


def parse_args(argv: list[str] | None = None) -> ConversionConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", required=True, choices=DOMAINS)
    parser.add_argument("--data_fn", required=True, help="raw benchmark file (JSONL or JSON list)")
    parser.add_argument("--convert_all", action="store_true", help="convert the whole file")
    parser.add_argument("--st_idx", type=int, default=0, help="first record of a shard")
    parser.add_argument("--ed_idx", type=int, default=0, help="end (exclusive) of a shard")
    parser.add_argument("--backend", choices=BACKENDS, default="rules")
    parser.add_argument("--verify", action="store_true", help="verify annotations by execution")
    parser.add_argument("--keep", choices=KEEP, default=None,
                        help="which records go to the output (default: verified with --verify, else all)")
    parser.add_argument("--output_dir", default=None, help="default: data/train/<domain>/converted")
    parser.add_argument("--limit", type=int, default=None, help="convert at most this many new records")
    parser.add_argument("--retry_failed", action="store_true", help="forget earlier failures and retry them")
    parser.add_argument("--model", default="gpt-4")
    parser.add_argument("--base_url", default=None, help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    keep = args.keep or ("verified" if args.verify else "all")
    try:
        config = ConversionConfig(
            domain=args.domain, data_fn=args.data_fn, convert_all=args.convert_all, st_idx=args.st_idx,
            ed_idx=args.ed_idx, backend=args.backend, verify=args.verify, keep=keep, output_dir=args.output_dir,
            limit=args.limit, retry_failed=args.retry_failed, model=args.model, base_url=args.base_url,
            concurrency=args.concurrency, progress=not args.no_progress)
    except ValueError as error:
        parser.error(str(error))
    return config


def main(argv: list[str] | None = None) -> int:
    from lumos.convert.converters import converter_for, verifier_for

    config = parse_args(argv)
    try:
        convert, verify = converter_for(config), verifier_for(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = run_conversion(config, convert, verify)
    for line in summary.lines():
        print(line)
    print(f"output: {config.output_path}")
    if summary.failures or summary.rejected:
        print(f"failures with reasons: {config.failed_path}")
    return 1 if summary.conversion_failures else 0


if __name__ == "__main__":
    sys.exit(main())
