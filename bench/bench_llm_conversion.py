"""LLM conversion throughput against a local OpenAI-compatible server with a fixed latency.

    python bench/bench_llm_conversion.py                       # 2,000 records, 200 ms, concurrency 64
    python bench/bench_llm_conversion.py --records 500 --concurrency 16

Starts ``python -m lumos.llm.serve`` (scripted replies in the unified format, ``--latency_s``
per request) on 127.0.0.1 in its own process, writes GSM8K-format records to a temporary
folder, and runs the real CLI, ``data.prompt_convertion.main --backend openai``, in this
process. Prints:

* the first run's requests/s against the bound ``concurrency / latency`` (no client can beat
  it: each slot holds one request for at least the latency), in a process that has already
  imported ``openai``; the one-off cost of that import and of building the HTTP clients is
  measured in a fresh process and shown as the end-to-end figure of a cold CLI run;
* a second run with a fresh output folder and the same response cache, so every reply comes
  from the cache: its time and the speed-up over the first run;
* the same command run again (output already complete: the resume path), for reference;
* the machine's load average, since the bound assumes the client and server get CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data import prompt_convertion
from lumos.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]

# Every request gets the same well-formed plan (no --verify: the bench measures transport, not maths).
REPLY_RULES = {"rules": [], "default": ("Subgoal 1: Calculate how many apples there are in total.\n"
                                        "Action 1-1: Output = Calculator(3 + 4) = 7")}


def gsm8k_records(n: int) -> list[dict]:
    records = []
    for i in range(n):
        a, b = 3 + i % 97, 4 + i // 97
        records.append({"question": f"Pupil {i} has {a} apples and buys {b} more. How many apples are there?",
                        "answer": f"Pupil {i} has {a}+{b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"})
    return records


@contextlib.contextmanager
def served(replies_path: Path, latency_s: float):
    """``python -m lumos.llm.serve`` on an ephemeral loopback port; yields its base URL."""
    command = [sys.executable, "-m", "lumos.llm.serve", "--model", f"scripted:{replies_path}",
               "--model_name", "scripted-gpt", "--host", "127.0.0.1", "--port", "0",
               "--latency_s", str(latency_s)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if match is None:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def cold_start_seconds(base_url: str) -> float:
    """What a fresh CLI process pays once before its first request: importing ``openai`` and the clients."""
    script = ("import time\n"
              "started = time.perf_counter()\n"
              "import openai\n"
              f"openai.AsyncOpenAI(api_key='EMPTY', base_url={base_url + '/v1'!r}, max_retries=0)\n"
              "print(time.perf_counter() - started)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def warm_up_client_imports() -> None:
    """Imports what the first request would otherwise import (see ``cold_start_seconds``)."""
    import openai

    openai.AsyncOpenAI(api_key="EMPTY", base_url="http://127.0.0.1:9/v1", max_retries=0)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def convert(data_fn: Path, output_dir: Path, cache_path: Path, base_url: str, concurrency: int,
            progress: bool) -> float:
    argv = ["--domain", "maths", "--data_fn", str(data_fn), "--convert_all", "--backend", "openai",
            "--model", "scripted-gpt", "--base_url", base_url, "--concurrency", str(concurrency),
            "--output_dir", str(output_dir), "--cache_path", str(cache_path)]
    if not progress:
        argv.append("--no_progress")
    started = time.perf_counter()
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        status = prompt_convertion.main(argv)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"conversion exited with status {status}")
    return seconds


def converted_count(output_dir: Path, data_fn: Path) -> int:
    path = output_dir / f"{data_fn.name.split('.', 1)[0]}_converted.json"
    return sum(1 for _ in read_records(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--latency_s", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--progress", action="store_true", help="show the progress bars (off: quieter output)")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # the local server checks no key; never send a real one

    with tempfile.TemporaryDirectory(prefix="bench_llm_conversion_") as tmp:
        folder = Path(tmp)
        data_fn = folder / "gsm8k_bench.jsonl"
        data_fn.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_records(args.records)), encoding="utf-8")
        replies = folder / "replies.json"
        replies.write_text(json.dumps(REPLY_RULES), encoding="utf-8")
        cache = folder / "llm_cache.sqlite"
        with served(replies, args.latency_s) as (url, server_pid):
            cold_start = cold_start_seconds(url)
            warm_up_client_imports()
            load_before = os.getloadavg()
            client_cpu, server_cpu = time.process_time(), process_cpu_seconds(server_pid)
            first = convert(data_fn, folder / "run1", cache, url, args.concurrency, args.progress)
            client_cpu = time.process_time() - client_cpu
            server_cpu = process_cpu_seconds(server_pid) - server_cpu
            load_after = os.getloadavg()
            cached = convert(data_fn, folder / "run2", cache, url, args.concurrency, args.progress)
            resumed = convert(data_fn, folder / "run1", cache, url, args.concurrency, args.progress)
        for run in ("run1", "run2"):
            count = converted_count(folder / run, data_fn)
            if count != args.records:
                raise RuntimeError(f"{run} converted {count} of {args.records} records")

    bound = args.concurrency / args.latency_s
    rate = args.records / first
    print(f"records: {args.records}, latency {args.latency_s * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"cpus {os.cpu_count()}, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after run 1")
    print(f"run 1 (server):  {first:7.3f} s  {rate:6.1f} req/s  bound {bound:.0f} req/s  "
          f"-> {rate / bound:.1%} of the bound (goal 90%)")
    cold_rate = args.records / (first + cold_start)
    print(f"run 1 from a cold process: + {cold_start:.3f} s once (import openai, build a client) "
          f"-> {cold_rate:6.1f} req/s, {cold_rate / bound:.1%} of the bound")
    print(f"run 1 CPU: client {client_cpu:.2f} s ({client_cpu / args.records * 1000:.2f} ms/request), "
          f"server {server_cpu:.2f} s ({server_cpu / args.records * 1000:.2f} ms/request)")
    print(f"run 2 (cache):   {cached:7.3f} s  speed-up {first / cached:6.1f}x (goal 50x)")
    print(f"run 3 (resume):  {resumed:7.3f} s  speed-up {first / resumed:6.1f}x (same command, output complete)")


if __name__ == "__main__":
    main()
