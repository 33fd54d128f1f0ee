#!/usr/bin/env bash
# Fetch the Lumos data into the data/ layout the CLIs read:
#   - the Google Drive folder of raw benchmarks, converted and training annotations (gdown);
#   - the released ai2lumos/* annotation datasets on the Hugging Face hub (datasets), each written to
#     data/train/<domain>/train_annots/lumos_<domain>_<plan|ground>_<iterative|onetime>.jsonl
#
#   scripts/download_data.sh                       # everything
#   scripts/download_data.sh --hf                  # only the hub datasets
#   scripts/download_data.sh --hf --only complex_qa_plan_iterative,maths_ground_onetime
#   scripts/download_data.sh --drive --out /path/to/data
#
# Every item is reported on one line (fetched, or why it could not be). The exit status is
# non-zero only when something was asked for and nothing at all could be fetched.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/download_data.sh [--drive] [--hf] [--only NAME[,NAME...]] [--out DIR] [--list]
  --drive        the Google Drive folder of the original release (raw data and annotations)
  --hf           the ai2lumos/* annotation datasets (default names below, or --only)
  --only NAMES   hub datasets to fetch, e.g. complex_qa_plan_iterative (implies --hf)
  --out DIR      data folder (default: data, beside this script's parent)
  --list         print the hub dataset names and exit
Without --drive or --hf both are fetched.
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/data"
want_drive=0
want_hf=0
only=""
list=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --drive) want_drive=1 ;;
    --hf) want_hf=1 ;;
    --only) [[ $# -ge 2 ]] || { echo "--only needs a value" >&2; exit 2; }; only="$2"; want_hf=1; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a value" >&2; exit 2; }; out="$2"; shift ;;
    --list) list=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ $want_drive -eq 0 && $want_hf -eq 0 ]]; then
  want_drive=1
  want_hf=1
fi

export HF_DATASETS_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
exec python3 - "$out" "$want_drive" "$want_hf" "$only" "$list" <<'PY'
import logging
import os
import sys
import warnings

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1ASFhOkhezgewVxR01dQg-8KUVR8IdBlY?usp=sharing"
HUB_DATASETS = [f"{domain}_{module}_{formulation}"
                for domain, formulations in (("complex_qa", ("iterative", "onetime")),
                                             ("maths", ("iterative", "onetime")),
                                             ("web_agent", ("iterative",)),
                                             ("unified", ("iterative",)))
                for formulation in formulations for module in ("plan", "ground")]

out, want_drive, want_hf, only, list_only = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4], sys.argv[5] == "1"
if list_only:
    print("\n".join(HUB_DATASETS))
    sys.exit(0)
names = [n.strip() for n in only.split(",") if n.strip()] if only else HUB_DATASETS
unknown = [n for n in names if n not in HUB_DATASETS]
if unknown:
    print(f"unknown dataset name(s): {', '.join(unknown)}; see --list", file=sys.stderr)
    sys.exit(2)

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else 'no message'}"


def fetch_drive() -> bool:
    try:
        import gdown
    except ImportError:
        print("could not fetch the Google Drive folder: gdown is not installed (pip install gdown)")
        return False
    os.makedirs(out, exist_ok=True)
    try:
        files = gdown.download_folder(DRIVE_FOLDER, output=out + os.sep, quiet=True)
    except Exception as error:  # network, quota or Drive-side errors: report and go on with the rest
        print(f"could not fetch the Google Drive folder: {short(error)}")
        return False
    if not files:
        print("could not fetch the Google Drive folder: it returned no file")
        return False
    print(f"fetched the Google Drive folder: {len(files)} files under {out}")
    return True


def fetch_hub(name: str) -> bool:
    domain, module, formulation = name.rsplit("_", 2)
    target = os.path.join(out, "train", domain, "train_annots", f"lumos_{name}.jsonl")
    try:
        import datasets
        datasets.utils.logging.set_verbosity_error()
        rows = datasets.load_dataset(f"ai2lumos/lumos_{name}", split="train")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        rows.to_json(target + ".tmp", lines=True, force_ascii=False)
        os.replace(target + ".tmp", target)
    except Exception as error:  # offline, missing dataset, disk: report this item, keep the others
        print(f"could not fetch ai2lumos/lumos_{name}: {short(error)}")
        return False
    print(f"fetched ai2lumos/lumos_{name}: {len(rows)} rows -> {target}")
    return True


results = []
if want_drive:
    results.append(fetch_drive())
if want_hf:
    results += [fetch_hub(name) for name in names]
fetched = sum(results)
print(f"{fetched} of {len(results)} items fetched")
sys.exit(0 if fetched or not results else 1)
PY
