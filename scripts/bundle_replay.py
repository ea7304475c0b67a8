"""Rebuild data/replay/dolly_open_qa.jsonl, the default general-domain replay data (data.replay.path).

1,000 seeded rows of the open_qa category of databricks-dolly-15k (CC BY-SA 3.0), short enough (instruction and
answer together at most 400 characters) not to stretch a short task's derived max_seq_length. Run from the
repository root:
    .venv/bin/python scripts/bundle_replay.py ../shared/data
"""

import json
import random
import sys
from pathlib import Path

SEED = 20261202
ROWS = 1000
MAX_CHARS = 400


def main(shared: Path) -> None:
    rows = [json.loads(line) for line in (shared / "dolly_open_qa" / "train.jsonl").read_text().splitlines()]
    short = [r for r in rows if len(r["instruction"]) + len(r["output"]) <= MAX_CHARS and r["output"].strip()]
    chosen = random.Random(SEED).sample(short, ROWS)
    out = Path("data/replay/dolly_open_qa.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"instruction": r["instruction"], "input": "", "output": r["output"]}, ensure_ascii=False)
             for r in chosen]  # fmt: skip
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(chosen)} of {len(short)} short rows ({len(rows)} read) -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
