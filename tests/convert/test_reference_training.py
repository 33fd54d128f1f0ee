"""process_for_train against the training files the original Lumos code wrote (lumos_reference/A_training).

Every reference scenario's inputs go through ``python -m data.process_for_train`` (its ``main``):
under ``--compat exact`` every output file must equal the original's byte for byte; in the
default mode the only records allowed to differ are the ones the counter fix touches (listed
below, with why), and ids are the records' input positions.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from data import process_for_train

# Scenario -> the formulations its run.json lists. Spelled out so a missing reference file fails.
SCENARIOS = {
    "maths/gsm8k_train_first300": ("lumos_iterative", "lumos_onetime", "cot", "direct"),
    "maths/edge_cases": ("lumos_iterative", "lumos_onetime"),
    "maths/incontext": ("lumos_iterative", "lumos_onetime"),
    "maths/asdiv_first50_raw": ("cot", "direct"),
    "maths/prm_synthetic_raw": ("cot", "direct"),
    "complex_qa/strategyqa_train_first200": ("lumos_iterative", "lumos_onetime", "cot"),
    "complex_qa/edge_cases": ("lumos_iterative", "lumos_onetime", "cot"),
    "complex_qa/incontext": ("lumos_iterative", "lumos_onetime", "cot"),
    "complex_qa/raw_musique100_strategyqa200": ("direct",),
    "web_agent/edge_cases": ("lumos_iterative", "lumos_onetime"),
    "web_agent/incontext": ("lumos_iterative", "lumos_onetime"),
    "web_agent/mind2web_sample5_adapted": ("lumos_iterative", "lumos_onetime"),
    "web_agent/mind2web_sample5_as_converted": ("lumos_iterative", "lumos_onetime"),
}
UNIFIED = {"maths": "maths/gsm8k_train_first300", "complex_qa": "complex_qa/strategyqa_train_first200",
           "web_agent": "web_agent/mind2web_sample5_adapted"}

# Records (by input position) whose default-mode conversation differs from the original's, and why.
# The original's `Output` counter carries over from the previous record; ours starts at 0 in each.
TOUCHED = {
    ("maths/edge_cases", "lumos_maths_ground_iterative.jsonl"):
        {1: "Output in the only subgoal: R1 here, R2 (the previous record's R1 + 1) in the original"},
    ("maths/gsm8k_train_first300", "lumos_maths_ground_iterative.jsonl"):
        {86: "one-step problem: R1 here, the previous record's count in the original",
         178: "one-step problem", 206: "one-step problem", 243: "one-step problem"},
    # quoted actions name no R variable, so the original's counter is never set and it drops every record
    ("web_agent/mind2web_sample5_as_converted", "lumos_web_agent_plan_iterative.jsonl"):
        dict.fromkeys(range(5), "kept here, dropped by the original"),
    ("web_agent/mind2web_sample5_as_converted", "lumos_web_agent_ground_iterative.jsonl"):
        dict.fromkeys(range(5), "kept here, dropped by the original"),
}


def output_names(domain: str, formulation: str) -> list[str]:
    if formulation.startswith("lumos_"):
        form = formulation.split("_", 1)[1]
        return [f"lumos_{domain}_{module}_{form}.jsonl" for module in ("plan", "ground")]
    return [f"{domain}_{formulation}.jsonl"]


CASES = [(scenario, formulation, name) for scenario, formulations in SCENARIOS.items()
         for formulation in formulations for name in output_names(scenario.split("/")[0], formulation)]


def run_quietly(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert process_for_train.main(argv) == 0


@pytest.fixture(scope="session")
def reference(shared_data) -> Path:
    root = shared_data / "lumos_reference" / "A_training"
    if not root.is_dir():
        pytest.skip(f"reference data {root} is absent")
    return root


@pytest.fixture(scope="session")
def produced(reference, tmp_path_factory):
    """``produced(scenario, compat)`` -> the train_annots folder of every formulation of that scenario."""
    cache: dict[tuple[str, str], Path] = {}

    def build(scenario: str, compat: str) -> Path:
        if (scenario, compat) not in cache:
            domain = scenario.split("/")[0]
            data_dir = tmp_path_factory.mktemp(f"{scenario.replace('/', '-')}-{compat}")
            (data_dir / domain).mkdir()
            for folder in ("converted", "raw_data"):  # linked, not copied: the inputs stay in the shared folder
                if (reference / scenario / "input" / folder).is_dir():
                    (data_dir / domain / folder).symlink_to(reference / scenario / "input" / folder)
            for formulation in SCENARIOS[scenario]:
                run_quietly(["--domain", domain, "--formulation", formulation, "--data_dir", str(data_dir),
                             "--compat", compat])
            cache[scenario, compat] = data_dir / domain / "train_annots"
        return cache[scenario, compat]

    return build


def test_every_reference_file_is_covered(reference):
    listed = {(scenario, name) for scenario, _, name in CASES}
    present = {(str(path.parent.parent.relative_to(reference)), path.name)
               for path in reference.glob("*/*/output/*.jsonl") if not path.parts[-4] == "unified"}
    assert listed == present
    for scenario, formulations in SCENARIOS.items():
        runs = json.loads((reference / scenario / "run.json").read_text())["runs"]
        assert [run["args"]["formulation"] for run in runs] == list(formulations)


@pytest.mark.parametrize("scenario, formulation, name", CASES)
def test_compat_exact_writes_the_reference_file_byte_for_byte(produced, reference, scenario, formulation, name):
    ours = (produced(scenario, "exact") / name).read_bytes()
    assert ours == (reference / scenario / "output" / name).read_bytes()


def test_compat_exact_unified_mixture_byte_for_byte(reference, tmp_path):
    for domain, scenario in UNIFIED.items():
        (tmp_path / domain).mkdir()
        (tmp_path / domain / "converted").symlink_to(reference / scenario / "input" / "converted")
        run_quietly(["--domain", domain, "--formulation", "lumos_iterative", "--data_dir", str(tmp_path),
                     "--compat", "exact"])
    run_quietly(["--unified", ",".join(UNIFIED), "--data_dir", str(tmp_path), "--compat", "exact"])
    for module in ("plan", "ground"):
        name = f"lumos_unified_{module}_iterative.jsonl"
        ours = (tmp_path / "unified" / "train_annots" / name).read_bytes()
        assert ours == (reference / "unified" / "maths+complex_qa+web_agent" / "output" / name).read_bytes()


def input_count(reference: Path, scenario: str, formulation: str) -> int:
    """How many input records the formulation reads (run.json), converted or raw."""
    records = json.loads((reference / scenario / "run.json").read_text())["input_records"]
    converted = formulation.startswith("lumos_") or (scenario.startswith("complex_qa/") and formulation == "cot")
    return sum(count for path, count in records.items() if path.startswith("converted/" if converted else "raw_data/"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _skipped_indices(folder: Path, name: str) -> set[int]:
    """Input positions that ``name``'s run skipped, from the ``.skipped.jsonl`` beside it."""
    module = next((m for m in ("plan", "ground") if f"_{m}_" in name), None)
    skipped_name = name.replace(f"_{module}_", "_") if module else name
    path = folder / skipped_name.replace(".jsonl", ".skipped.jsonl")
    entries = _rows(path) if path.exists() else []
    return {entry["index"] for entry in entries if entry.get("module") == module}


@pytest.mark.parametrize("scenario, formulation, name", CASES)
def test_default_mode_differs_only_where_the_counter_fix_touches(produced, reference, scenario, formulation, name):
    domain = scenario.split("/")[0]
    original = _rows(reference / scenario / "output" / name)
    # which input record each original row came from: the positions the exact run did not skip
    skipped = _skipped_indices(produced(scenario, "exact"), name)
    kept = [index for index in range(len(original) + len(skipped)) if index not in skipped]
    original_by_index = {index: row["messages"] for index, row in zip(kept, original)}

    ours = _rows(produced(scenario, "none") / name)
    ours_by_index = {}
    for row in ours:
        prefix, number = row["id"].rsplit("_", 1)
        assert prefix == domain and row["dataset"] == domain
        ours_by_index[int(number)] = row["messages"]
    assert len(ours_by_index) == len(ours)
    # ids are input positions: every input record is either written under its own position or listed as skipped
    skipped_here = _skipped_indices(produced(scenario, "none"), name)
    assert not skipped_here & ours_by_index.keys()
    assert skipped_here | ours_by_index.keys() == set(range(input_count(reference, scenario, formulation)))

    differing = {index for index in original_by_index.keys() | ours_by_index.keys()
                 if original_by_index.get(index) != ours_by_index.get(index)}
    assert differing == set(TOUCHED.get((scenario, name), {}))
