#!/usr/bin/env bash
# Fetch the Lumos data into the data/ layout the CLIs read:
#   - the Google Drive folder of raw benchmarks, converted and training annotations (gdown);
#   - the released ai2lumos/* annotation datasets on the Hugging Face hub (datasets), each written to
#     data/train/<domain>/train_annots/lumos_<domain>_<plan|ground>_<iterative|onetime>.jsonl
#   - the web benchmarks (--web): Mind2Web from the hub (osunlp/Mind2Web) into
#     data/eval/mind2web/{test_task,test_website,test_domain}/ (the test archive's published password
#     is used to open it), and WebShop's items_shuffle_1000.json, items_ins_v2_1000.json and
#     items_human_ins.json (its setup's Google Drive files) into data/eval/webshop/
#
#   scripts/download_data.sh                       # everything
#   scripts/download_data.sh --hf                  # only the hub datasets
#   scripts/download_data.sh --hf --only complex_qa_plan_iterative,maths_ground_onetime
#   scripts/download_data.sh --drive --out /path/to/data
#   scripts/download_data.sh --web                 # only Mind2Web and WebShop
#
# Every item is reported on one line (fetched, or why it could not be). The exit status is
# non-zero only when something was asked for and nothing at all could be fetched. Offline, it says so
# within seconds: the hosts are probed first, and an item whose host cannot be reached is not tried
# (hub items still come from the local Hugging Face cache when they are there).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/download_data.sh [--drive] [--hf] [--web] [--only NAME[,NAME...]] [--out DIR] [--list]
  --drive        the Google Drive folder of the original release (raw data and annotations)
  --hf           the ai2lumos/* annotation datasets (default names below, or --only)
  --web          Mind2Web (osunlp/Mind2Web) and the WebShop 1000-product files
  --only NAMES   hub datasets to fetch, e.g. complex_qa_plan_iterative (implies --hf)
  --out DIR      data folder (default: data, beside this script's parent)
  --list         print the hub dataset names and exit
Without --drive, --hf or --web all are fetched.
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/data"
want_drive=0
want_hf=0
want_web=0
only=""
list=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --drive) want_drive=1 ;;
    --hf) want_hf=1 ;;
    --web) want_web=1 ;;
    --only) [[ $# -ge 2 ]] || { echo "--only needs a value" >&2; exit 2; }; only="$2"; want_hf=1; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a value" >&2; exit 2; }; out="$2"; shift ;;
    --list) list=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ $want_drive -eq 0 && $want_hf -eq 0 && $want_web -eq 0 ]]; then
  want_drive=1
  want_hf=1
  want_web=1
fi

export HF_DATASETS_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
exec python3 - "$out" "$want_drive" "$want_hf" "$only" "$list" "$want_web" <<'PY'
import logging
import os
import shutil
import sys
import tempfile
import warnings
import zipfile

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1ASFhOkhezgewVxR01dQg-8KUVR8IdBlY?usp=sharing"
HUB_DATASETS = [f"{domain}_{module}_{formulation}"
                for domain, formulations in (("complex_qa", ("iterative", "onetime")),
                                             ("maths", ("iterative", "onetime")),
                                             ("web_agent", ("iterative",)),
                                             ("unified", ("iterative",)))
                for formulation in formulations for module in ("plan", "ground")]

out, want_drive, want_hf, only, list_only = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4], sys.argv[5] == "1"
want_web = sys.argv[6] == "1"
MIND2WEB_REPO = "osunlp/Mind2Web"
MIND2WEB_SPLITS = ("test_task", "test_website", "test_domain")
MIND2WEB_ZIP_PASSWORD = b"mind2web"  # published with the dataset; it only keeps the test set out of crawls
WEBSHOP_FILES = {  # WebShop's setup.sh (its 1000-product setting)
    "items_shuffle_1000.json": "https://drive.google.com/uc?id=1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib",
    "items_ins_v2_1000.json": "https://drive.google.com/uc?id=1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu",
    "items_human_ins.json": "https://drive.google.com/uc?id=14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O",
}
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


def reachable(host: str) -> bool:
    """A TCP connection to the host, or to the HTTPS proxy that would carry the request, opens."""
    import socket
    import urllib.request
    address = (host, 443)
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlparse(proxy if "://" in proxy else "http://" + proxy)
        address = (parsed.hostname or "", parsed.port or 80)
    try:
        with socket.create_connection(address, timeout=4):
            return True
    except (OSError, ValueError):
        return False


from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

HUB_HOST = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
DRIVE_HOST = "drive.google.com"
hosts = sorted({*([HUB_HOST] if want_hf or want_web else []), *([DRIVE_HOST] if want_drive or want_web else [])})
with ThreadPoolExecutor(len(hosts) or 1) as pool:  # in parallel: offline costs one timeout, not one per item
    online = dict(zip(hosts, pool.map(reachable, hosts)))
if hosts and not any(online.values()):
    print(f"offline: cannot reach {' or '.join(hosts)}; only what the local Hugging Face cache holds can be copied")
if not online.get(HUB_HOST, True):  # the hub's client then reads its cache and fails at once, with no retries
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"


def unreachable(host: str) -> str:
    return f"offline (cannot reach {host})"


def short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else 'no message'}"


def fetch_drive() -> bool:
    if not online.get(DRIVE_HOST, True):
        print(f"could not fetch the Google Drive folder: {unreachable(DRIVE_HOST)}")
        return False
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


def in_local_cache(repo: str) -> bool:
    """Whether the Hugging Face caches hold anything of this dataset (checked without importing datasets)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")
    sets = os.environ.get("HF_DATASETS_CACHE") or os.path.join(home, "datasets")
    owner, dataset = repo.split("/")
    return (os.path.isdir(os.path.join(hub, f"datasets--{owner}--{dataset}"))
            or os.path.isdir(os.path.join(sets, f"{owner}___{dataset}")))


def fetch_hub(name: str) -> bool:
    domain, module, formulation = name.rsplit("_", 2)
    target = os.path.join(out, "train", domain, "train_annots", f"lumos_{name}.jsonl")
    if not online.get(HUB_HOST, True) and not in_local_cache(f"ai2lumos/lumos_{name}"):
        # offline and nothing cached: say so at once rather than importing the datasets library to find out
        print(f"could not fetch ai2lumos/lumos_{name}: {unreachable(HUB_HOST)} and not in the local cache")
        return False
    try:
        import datasets
        datasets.utils.logging.set_verbosity_error()
        rows = datasets.load_dataset(f"ai2lumos/lumos_{name}", split="train")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        rows.to_json(target + ".tmp", lines=True, force_ascii=False)
        os.replace(target + ".tmp", target)
    except Exception as error:  # offline, missing dataset, disk: report this item, keep the others
        why = short(error) if online.get(HUB_HOST, True) else f"{unreachable(HUB_HOST)} and not in the local cache"
        print(f"could not fetch ai2lumos/lumos_{name}: {why}")
        return False
    print(f"fetched ai2lumos/lumos_{name}: {len(rows)} rows -> {target}")
    return True


def fetch_mind2web() -> list[bool]:
    """Every split folder found in the hub snapshot (or in its test archives), one line per split."""
    target = os.path.join(out, "eval", "mind2web")
    try:
        from huggingface_hub import snapshot_download
        snapshot = snapshot_download(MIND2WEB_REPO, repo_type="dataset")
    except Exception as error:  # offline, gated, disk: report every split and go on
        why = short(error) if online.get(HUB_HOST, True) else f"{unreachable(HUB_HOST)} and not in the local cache"
        for split in MIND2WEB_SPLITS:
            print(f"could not fetch Mind2Web {split} ({MIND2WEB_REPO}): {why}")
        return [False] * len(MIND2WEB_SPLITS)
    unpacked = tempfile.mkdtemp(prefix="mind2web_")
    try:
        for folder, _, files in os.walk(snapshot):
            for name in files:
                if name.endswith(".zip"):
                    try:
                        with zipfile.ZipFile(os.path.join(folder, name)) as archive:
                            archive.extractall(os.path.join(unpacked, name[:-4]), pwd=MIND2WEB_ZIP_PASSWORD)
                    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
                        print(f"could not open Mind2Web archive {name}: {short(error)}")
        found = []
        for split in MIND2WEB_SPLITS:
            sources = [os.path.join(folder, split) for root in (snapshot, unpacked)
                       for folder, dirs, _ in os.walk(root) if split in dirs]
            files = sorted(os.path.join(s, f) for s in sources for f in os.listdir(s) if f.endswith(".json"))
            if not files:
                print(f"could not fetch Mind2Web {split}: no {split}/*.json in {MIND2WEB_REPO}")
                found.append(False)
                continue
            os.makedirs(os.path.join(target, split), exist_ok=True)
            for index, path in enumerate(files):
                shutil.copyfile(path, os.path.join(target, split, f"{split}_{index}.json"))
            print(f"fetched Mind2Web {split}: {len(files)} files -> {os.path.join(target, split)}")
            found.append(True)
        return found
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def fetch_webshop(name: str, url: str) -> bool:
    target = os.path.join(out, "eval", "webshop", name)
    if not online.get(DRIVE_HOST, True):
        print(f"could not fetch WebShop {name}: {unreachable(DRIVE_HOST)}")
        return False
    try:
        import gdown
    except ImportError:
        print(f"could not fetch WebShop {name}: gdown is not installed (pip install gdown)")
        return False
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        written = gdown.download(url, output=target + ".tmp", quiet=True)
        if not written:
            raise RuntimeError("the download returned no file")
        import json
        with open(target + ".tmp", encoding="utf-8") as handle:
            json.load(handle)  # a quota page instead of the file is not JSON
        os.replace(target + ".tmp", target)
    except Exception as error:  # network, quota, a partial file: report this item, keep the others
        if os.path.exists(target + ".tmp"):
            os.remove(target + ".tmp")
        print(f"could not fetch WebShop {name}: {short(error)}")
        return False
    print(f"fetched WebShop {name} -> {target}")
    return True


results = []
if want_web:
    results += fetch_mind2web()
    results += [fetch_webshop(name, url) for name, url in WEBSHOP_FILES.items()]
if want_drive:
    results.append(fetch_drive())
if want_hf:
    results += [fetch_hub(name) for name in names]
fetched = sum(results)
print(f"{fetched} of {len(results)} items fetched")
sys.exit(0 if fetched or not results else 1)
PY
