"""Run a command and measure its whole process tree (a `tierwise score` with worker processes).

    python benchmarks/treerss.py tierwise score --data ... --workers 2

Samples the tree 4 times a second and prints one line at the end: wall seconds, CPU seconds
(each process's own user + sys at its last sample, summed), the peak RSS of the command's own
process, the peak of the RSS summed over the tree, and the peak of the PSS summed over the tree
(shared pages counted once, as a container's memory limit counts them; sampled once a second).
Linux only (/proc). With TIMELINE=FILE set it also writes "seconds main_rss_gb tree_rss_gb" once
a second, and prefixes the command's stderr lines with their time, to match phases to memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

CLOCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return found


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _cpu_rss(pid: int) -> tuple[float, int]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    return (int(fields[11]) + int(fields[12])) / CLOCK, int(fields[21]) * PAGE


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(command: list[str]) -> int:
    start = time.time()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)

    def relay() -> None:
        for line in process.stderr:
            sys.stderr.write(f"t={time.time() - start:7.1f} {line}")

    threading.Thread(target=relay, daemon=True).start()
    path = os.environ.get("TIMELINE")
    timeline = open(path, "w") if path else None  # noqa: SIM115 (open for the whole run)
    peak_main = peak_rss = peak_pss = main_rss = 0
    cpu: dict[int, float] = {}
    tick = 0
    while process.poll() is None:
        pids = _tree(process.pid)
        total = 0
        for pid in pids:
            seconds, rss = _cpu_rss(pid)
            cpu[pid] = max(cpu.get(pid, 0.0), seconds)
            total += rss
            if pid == process.pid:
                main_rss = rss
                peak_main = max(peak_main, rss)
        peak_rss = max(peak_rss, total)
        if tick % 4 == 0:
            peak_pss = max(peak_pss, sum(_pss(p) for p in pids))
            if timeline:
                timeline.write(
                    f"{time.time() - start:.1f} {main_rss / 1e9:.3f} {total / 1e9:.3f}\n"
                )
                timeline.flush()
        tick += 1
        time.sleep(0.25)
    if timeline:
        timeline.close()
    print(
        f"RESULT rc={process.returncode} wall_s={time.time() - start:.1f} "
        f"cpu_s={sum(cpu.values()):.1f} main_peak_gb={peak_main / 1e9:.2f} "
        f"tree_rss_gb={peak_rss / 1e9:.2f} tree_pss_gb={peak_pss / 1e9:.2f} "
        f"load={os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
