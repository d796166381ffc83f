"""Where a `tierwise score` run spends its time, from a py-spy profile of its process tree.

py-spy (https://github.com/benfred/py-spy, MIT; not a tierwise dependency) samples every Python
thread of the command and its worker processes; this script sums the samples of its raw
(collapsed-stack) output by phase, the first listed function found on each stack, and prints
seconds of thread time per phase (samples / rate). A thread inside LightGBM or numba counts once
however many native threads it runs, so the figures are wall seconds spent in each phase by each
process, not CPU seconds.

```bash
pip install --prefix /tmp/pyspy py-spy      # anywhere but the project's .venv
MLFLOW_TRACKING_URI=sqlite:///$PWD/mlruns.db /tmp/pyspy/bin/py-spy record --subprocesses \
    --format raw -r 40 -o /tmp/score.txt -- tierwise score --data DIR --as-of DATE --out OUT
python benchmarks/spy_phases.py /tmp/score.txt --rate 40
python benchmarks/spy_phases.py /tmp/score.txt --rate 40 --under _check_slice   # one phase
```
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

# the phases of `tierwise score` (pipelines/score.py, pipelines/slices.py), most specific first
PHASES = [
    ("customer ids", "_table_ids"),
    ("split into slice files", "_partition"),
    ("validation", "_check_slice"),
    ("loan_id unique across the book", "_book_unique"),
    ("book context", "_positional_context"),
    ("survival: trees flattened", "MonthForest.from_booster"),
    ("survival: month walk", "MonthForest.raw_scores"),
    ("survival: rest (incl. cause reasons)", "add_survival"),
    ("tier model", "tier_frame"),
    ("churn model (incl. reasons)", "churn_frame"),
    ("scores: rest", "score_features"),
    ("features", "build_feature_table"),
    ("slice files read", "read_slice"),
    ("slice: rest (volumes, monitor counts)", "_score_slice"),
    ("worker start (models loaded)", "_start_worker"),
    ("output written", "save_frame_chunks"),
    ("monitor estimate", "estimate_metrics"),
    ("models loaded (this process)", "load_model"),
    ("imports", "<module>"),
]
_FRAME = re.compile(r"^(.*) \(([^()]*?)(?::\d+)?\)$")


def _stacks(path: str):
    """(frames without the process entries, worker?, samples) per line of py-spy's raw output."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            parts = stack.split(";")
            frames = [p for p in parts if not p.startswith("process ")]
            worker = sum(p.startswith("process ") for p in parts) > 1
            yield frames, worker, int(count)


def phases(path: str) -> Counter:
    found: Counter = Counter()
    for frames, worker, count in _stacks(path):
        names = {_FRAME.match(f).group(1) if _FRAME.match(f) else f for f in frames}
        phase = next((label for label, fn in PHASES if fn in names), "other")
        found["worker" if worker else "main", phase] += count
    return found


def under(path: str, function: str, depth: int) -> Counter:
    """Samples under ``function``, by the ``depth`` frames below it."""
    found: Counter = Counter()
    for frames, _, count in _stacks(path):
        names = [_FRAME.match(f).group(1) if _FRAME.match(f) else f for f in frames]
        if function in names:
            below = names[names.index(function) + 1 : names.index(function) + 1 + depth]
            found[" > ".join(below) or "(itself)"] += count
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="py-spy record --format raw output")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's -r (samples/s)")
    parser.add_argument("--under", help="break one function's samples down instead")
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    if args.under:
        counts = under(args.raw, args.under, args.depth)
        print(f"| below {args.under} | s |\n|---|---:|")
        for key, n in counts.most_common(20):
            print(f"| {key} | {n / args.rate:.1f} |")
        return
    counts = phases(args.raw)
    print("| process | phase | s |\n|---|---|---:|")
    for (process, phase), n in counts.most_common():
        print(f"| {process} | {phase} | {n / args.rate:.1f} |")
    print(f"| all | total | {sum(counts.values()) / args.rate:.1f} |")


if __name__ == "__main__":
    main()
