"""py-spy on another process: record collapsed stacks, then a short text summary of them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy_path() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Starts sampling `pid` for `seconds` into `out` (collapsed stacks); None without py-spy."""
    exe = py_spy_path()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", "250", "--nonblocking", "--threads", "--format", "raw",
         "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _frame_name(frame: str) -> str:
    """`fn (path/to/module.py:123)` → `fn (module.py)`; thread markers stay as they are."""
    name, _, where = frame.partition(" (")
    if not where:
        return name
    file = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({Path(file).name})"


def summarize(path: Path, top: int = 12) -> list[str]:
    """Self and inclusive shares of the busiest functions, over all non-idle samples."""
    if not path.exists():
        return [f"(no profile at {path})"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = [_frame_name(f) for f in frames[1:]] or [frames[0]]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        return ["(profile is empty)"]
    lines = [f"{total} samples; by thread: " + ", ".join(
        f"{t} {100 * c / total:.0f}%" for t, c in threads.most_common(4))]  # fmt: skip
    lines.append("self time:")
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in inclusive.most_common(top + 8)]
    return lines
