"""make profile: where the server's time goes under the uniform workload at 16 clients.

py-spy samples the server process (we run as root, so ptrace is allowed) while the load
generator drives it; it writes collapsed stacks (`--format raw`), from which this module
writes a flamegraph SVG (bench/flamegraph.py) and a plain-text summary of the functions
with the most own time (the frame on top of the stack) and total time (anywhere in it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import flamegraph
from bench.loadgen import ClientPool, LoadSpec
from bench.plan import Plan
from bench.points import Point, measure_service
from bench.server import Server

_RATE_HZ = 100
_SPAWN_SLACK_S = 4.0  # the client processes start (and connect) before the warm-up
_LINE_NUMBER = re.compile(r":\d+\)$")
_TOP = 40


def profile_server(
    server: Server, clients: ClientPool, plan: Plan, pg_pid: int | None, results: Path
) -> Point:
    """Runs the uniform workload while py-spy records; writes profile.{raw.txt,svg,txt}."""
    results.mkdir(parents=True, exist_ok=True)
    raw = results / "profile.raw.txt"
    duration = round(_SPAWN_SLACK_S + plan.warmup_s + plan.measure_s)
    py_spy = Path(sys.executable).parent / "py-spy"
    argv = [
        str(py_spy),
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(duration),
        "--rate",
        str(_RATE_HZ),
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        spec = LoadSpec("uniform", plan.concurrencies[0], 0, plan.warmup_s, plan.measure_s)
        point = measure_service(server, clients, spec, pg_pid)
        _, errors = recorder.communicate(timeout=duration + 60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {errors.decode()[-2000:]}")
    stacks = read_collapsed(raw)
    flamegraph.write_svg(stacks, results / "profile.svg", title=_title(point))
    summary = summarise(stacks, _title(point))
    (results / "profile.txt").write_text(summary)
    print(summary)
    print(f"wrote {results}/profile.svg, profile.txt and profile.raw.txt")
    return point


def _title(point: Point) -> str:
    if point.error:
        return f"server under uniform transfers, {point.concurrency} clients (load failed)"
    return (
        f"server under uniform transfers, {point.concurrency} clients: "
        f"{point.per_s or 0:,.0f} transfers/s while sampled at {_RATE_HZ} Hz"
    )


def read_collapsed(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy's raw output: `frame;frame;...;leaf count` per line, root first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]], title: str) -> str:
    """Top functions by own and by total samples (line numbers folded together)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for stack, count in stacks.items():
        functions = [_LINE_NUMBER.sub(")", frame) for frame in stack]
        own[functions[-1]] += count
        for function in set(functions):  # a recursive function counts once per sample
            total[function] += count
    samples = sum(stacks.values()) or 1
    lines = [f"py-spy profile: {title}", f"{samples:,} samples of active (non-idle) threads", ""]
    for heading, counter in (("own time (top of stack)", own), ("total time (anywhere)", total)):
        lines += [f"Top {_TOP} functions by {heading}:", f"{'samples':>8} {'share':>6}  function"]
        for function, count in counter.most_common(_TOP):
            lines.append(f"{count:>8} {count / samples:>6.1%}  {function}")
        lines.append("")
    return "\n".join(lines)
