"""Run every benchmark, each in its own process, print the table, append the figures to
``benchmarks/results.jsonl`` (with the git commit and a timestamp), and with
``--readme`` put the table into the README's "Benchmarks" section.

    python -m benchmarks [--quick] [--only speed,batch] [--readme] [--profile]

``--quick`` uses smaller sizes and single runs (a few minutes in all); the full run
repeats each measurement and takes longer (the first one also writes a 10 M-event
Parquet archive to the cache, see :mod:`benchmarks.archive_cache`). ``--profile``
writes py-spy / pyinstrument profiles of Stratum's side to ``benchmarks/profiles/``
(``pip install py-spy pyinstrument`` first); figures of such a run carry the profilers'
overhead, so quote figures from a run without it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, Figure, append_results, fmt, load_figures

BENCHES = ("startup", "ingest", "speed", "endtoend", "batch", "query")
PROFILED = ("speed", "endtoend", "batch", "query")
README = ROOT / "README.md"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def run(name: str, quick: bool, emit_to: Path, profile: bool = False) -> list[Figure]:
    """One benchmark module in a child process; its output streams through."""
    argv = [sys.executable, "-m", f"benchmarks.{name}", "--emit", str(emit_to)]
    if quick:
        argv.append("--quick")
    if profile and name in PROFILED:
        argv.append("--profile")
    print(f"\n== {name} ==", flush=True)
    started = time.perf_counter()
    code = subprocess.run(argv, cwd=ROOT, timeout=3600, check=False).returncode  # noqa: S603
    print(f"== {name}: {time.perf_counter() - started:.0f} s, exit {code} ==", flush=True)
    if code != 0 or not emit_to.exists():
        return [Figure(name, "benchmark failed", "", None, note=f"exit code {code}")]
    return load_figures(emit_to)


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| benchmark | figure | Stratum | baseline | ratio | target |",
        "|---|---|---:|---|---:|---|",
    ]
    for f in figures:
        base = f"{fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline_name else "-"
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}"
        target = "-"
        if f.target:
            target = f"{f.target}: " + {True: "**met**", False: "**missed**", None: "-"}[f.met]
        value = fmt(f.stratum, f.unit) if f.stratum is not None else (f.note or "n/a")
        lines.append(f"| {f.bench} | {f.name} | {value} | {base} | {ratio} | {target} |")
    return "\n".join(lines)


def latest_figures(quick: bool) -> tuple[list[Figure], list[str]]:
    """The newest complete run of every benchmark in results.jsonl (full or quick runs),
    in the usual order; and the commits they were measured at."""
    newest: dict[str, tuple[str, str]] = {}  # bench -> (timestamp, run_id)
    records = (
        [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
        if RESULTS.exists()
        else []
    )
    for r in records:
        if r["quick"] != quick or r["name"] == "benchmark failed":
            continue
        if r["bench"] not in newest or r["timestamp"] >= newest[r["bench"]][0]:
            newest[r["bench"]] = (r["timestamp"], r["run_id"])
    chosen = [
        r
        for r in records
        if r["quick"] == quick and newest.get(r["bench"], ("", ""))[1] == r["run_id"]
    ]
    order = {
        name: i
        for i, name in enumerate(
            ("startup", "ingest", "speed", "e2e", "memory", "freshness", "batch", "query")
        )
    }
    chosen.sort(key=lambda r: order.get(r["bench"], len(order)))
    fields = set(Figure.__dataclass_fields__)
    figures = [Figure(**{k: v for k, v in r.items() if k in fields}) for r in chosen]
    commits = sorted({f"{r['commit'][:10]}{'+' if r['dirty'] else ''}" for r in chosen})
    return figures, commits


def update_readme(quick: bool) -> None:
    """Replace the table between the markers in the README's Benchmarks section with the
    newest figures of every benchmark."""
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print("README has no benchmark markers; table not written", file=sys.stderr)
        return
    figures, commits = latest_figures(quick)
    command = "python -m benchmarks" + (" --quick" if quick else "")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    block = (
        f"{BEGIN}\n`{command}`, newest run of each benchmark as of {stamp}, commit(s) "
        f"{', '.join(f'`{c}`' for c in commits)} (`+`: with uncommitted changes), "
        f"2 cores:\n\n{table(figures)}\n{END}"
    )
    head, rest = text.split(BEGIN, 1)
    README.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")
    print(f"README table updated ({len(figures)} figures)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, single runs")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="write the newest figures of every benchmark (this run's and, "
        "for the others, results.jsonl's) into README.md",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also write profiles to benchmarks/profiles/ (not for figures)",
    )
    args = parser.parse_args()
    chosen = [b for b in args.only.split(",") if b]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    run_id = uuid.uuid4().hex[:12]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="stratum-bench-") as tmp:
        for name in chosen:
            found = run(name, args.quick, Path(tmp) / f"{name}.json", args.profile)
            if not args.profile:  # profiled figures are not comparable
                append_results(found, quick=args.quick, run_id=run_id)
            figures.extend(found)
    print("\n" + table(figures))
    if not args.profile:
        print(f"\nappended to benchmarks/results.jsonl (run {run_id})")
    if args.readme and not args.profile:
        update_readme(args.quick)


if __name__ == "__main__":
    main()
