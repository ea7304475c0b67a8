#!/usr/bin/env bash
# One prepared GPU check, at most 8 minutes on one GPU: the CUDA tests, the throughput table (a short run per row:
# Tunesmith against plain and careful TRL at the Llama-3.2-1B and Qwen2.5-7B shapes, with peak memory against the
# estimate on every row), written as one JSON under benchmarks/published/ named by the GPU.
#
# Usage: bash benchmarks/gpu_check.sh [SECONDS]   (SECONDS: the whole check's budget, default 480)
# Without a GPU it runs the same steps on the CPU (the tiny shape; the CUDA tests skip) and writes
# benchmarks/results/gpu_check-cpu.json instead: the plumbing, not figures to publish.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || make install
budget=${1:-480}
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
work=${GPU_CHECK_WORK:-$(mktemp -d)}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

gpu=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')")
echo "== GPU check on: $gpu (budget ${budget}s, work in $work)"

echo "== CUDA tests"
set +e
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_fast_path.py \
    --junitxml "$work/tests.xml" 2>&1 | tail -15
set -e

echo "== throughput and memory"
if [ "$gpu" = "cpu" ]; then
    runs=("--shapes tiny --workloads generation,classification --methods lora --steps 3 --warmup 1 --examples 16")
else
    # The rows the goals are stated on, most important first: what is left when the budget runs out is skipped.
    runs=("--shapes llama-3.2-1b --workloads generation --methods lora,qlora --steps 10 --warmup 3"
          "--shapes qwen2.5-7b --workloads generation --methods lora --steps 8 --warmup 3"
          "--shapes llama-3.2-1b --workloads classification --methods lora --steps 10 --warmup 3")
fi
i=0
for run in "${runs[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086  # each run is a list of arguments
    "$PY" benchmarks/gpu_throughput.py $run --work "$work/models" --results "$work/throughput-$i.json" \
        --budget-s "$(($(left) - 15))" || echo "throughput run $i failed"
done

"$PY" - "$work" "$gpu" "$budget" "$start" <<'PY'
"""Gather the check into one JSON: the tests' outcome, every throughput row, and the goals."""
import datetime, json, re, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path

work, gpu, budget, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tests = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
if (work / "tests.xml").is_file():
    for case in ET.parse(work / "tests.xml").getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        key = {"failure": "failed", "error": "failed"}.get(outcome, outcome)
        tests[key] += 1
        if key == "failed":
            tests["failures"].append(case.get("classname", "") + "::" + case.get("name", ""))
parts = [json.loads(p.read_text()) for p in sorted(work.glob("throughput-*.json"))]
rows = [row for part in parts for row in part["rows"]]
report = {
    "gpu": gpu, "date": datetime.date.today().isoformat(), "wall_s": round(time.time() - start),
    "budget_s": budget, "cuda_tests": tests,
    "workloads": {k: v for part in parts for k, v in part.get("workloads", {}).items()},
    "mfu_formula": parts[0]["mfu_formula"] if parts else None,
    "goals": parts[0]["goals"] if parts else None,
    "rows": rows,
}
name = re.sub(r"[^A-Za-z0-9.]+", "-", gpu).strip("-")
folder = Path("benchmarks/results" if gpu == "cpu" else "benchmarks/published")
folder.mkdir(parents=True, exist_ok=True)
target = folder / f"gpu_check-{name}.json"
target.write_text(json.dumps(report, indent=2))
print(f"\ntests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped")
for r in rows:
    if "tokens_per_s" not in r:
        print(f"{r['shape']:<14}{r.get('workload', '-'):<16}{r['run']:<34}{r.get('skipped') or r.get('error')}")
        continue
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
    versus = f"{r['peak_vs_estimate']:+.0%}" if r.get("peak_vs_estimate") is not None else "-"
    speed = " ".join(f"{k}={r[k]}" for k in ("speedup_vs_plain_trl", "speedup_vs_careful_trl") if k in r)
    print(f"{r['shape']:<14}{r.get('workload', '-'):<16}{r['run']:<34}{r['tokens_per_s']:>10} tok/s  MFU {mfu:>6}"
          f"  peak vs est. {versus:>5}  {speed}")
print(f"written: {target} ({report['wall_s']} s)")
PY
