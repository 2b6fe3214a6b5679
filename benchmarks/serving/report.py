"""The benchmark's table and the ratios the goals are stated in, from medians."""

from __future__ import annotations

import argparse
import os
import statistics
from collections import defaultdict

from loadgen import Point

CONCURRENCY = (1, 8, 32)
_ORDER = {"mlp": 0, "cnn": 1, "resnet18": 2}

Key = tuple[str, bool, str, int]


def medians(points: list[Point]) -> dict[Key, Point]:
    """One point per (model, batching, target, concurrency): the median of each column."""
    groups: dict[Key, list[Point]] = defaultdict(list)
    for p in points:
        groups[(p.model, p.batching, p.target, p.concurrency)].append(p)
    merged: dict[Key, Point] = {}
    for key, group in groups.items():
        batches = [p.avg_batch for p in group if p.avg_batch]
        merged[key] = Point(
            *key,
            throughput=statistics.median(p.throughput for p in group),
            p50_ms=statistics.median(p.p50_ms for p in group),
            p99_ms=statistics.median(p.p99_ms for p in group),
            errors=sum(p.errors for p in group),
            avg_batch=statistics.median(batches) if batches else None,
        )
    return merged


def report(points: list[Point], limits: dict[tuple[int, str, int], float], *,
           args: argparse.Namespace, elapsed: float,
           load: tuple[tuple[float, float, float], tuple[float, float, float]],
           cpus: tuple[set[int], set[int]]) -> str:
    table = medians(points)
    out = [f"Run: {os.cpu_count()} CPUs, servers on {sorted(cpus[0])}, clients on "
           f"{sorted(cpus[1])}, cpu limit {args.cpu_limit}, "
           f"{args.rounds} rounds x {args.duration:g}s a point (medians), {elapsed:.0f}s in "
           f"all; load average {load[0][0]:.1f} before, {load[1][0]:.1f} after.", ""]
    out.append("| model | dyn. batching | target | c | req/s | p50 ms | p99 ms | batch | errors |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (model, batching, target, c), p in sorted(
            table.items(), key=lambda kv: (_ORDER.get(kv[0][0], 9), kv[0][1], kv[0][2],
                                           kv[0][3])):
        batch = "" if p.avg_batch is None else f"{p.avg_batch:.1f}"
        out.append(f"| {model} | {'on' if batching else 'off'} | {target} | {c} | "
                   f"{p.throughput:.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} | {batch} | "
                   f"{p.errors} |")

    by_batch: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (_, model, size), value in limits.items():
        by_batch[(model, size)].append(value)
    out.append("")
    out.append("In-process onnxruntime on the servers' CPUs, one intra-op thread a core "
               "(inferences/s, median of rounds): "
               + ", ".join(f"{m} batch {b}: {statistics.median(v):.0f}"
                           for (m, b), v in sorted(by_batch.items())))

    out.append("")
    out.append("Ratios (same run, medians):")
    out.extend(_mlserver_ratios(table))
    out.extend(_hello_ratios(table))
    out.extend(_in_process_ratios(points, limits))
    return "\n".join(out)


def _mlserver_ratios(table: dict[Key, Point]) -> list[str]:
    lines = []
    for model in sorted({k[0] for k in table}):
        for batching in (False, True):
            for c in CONCURRENCY:
                ml = table.get((model, batching, "mlserver http-json", c))
                mg = table.get((model, batching, "mlserver grpc", c))
                for label, theirs in (("modelship http-binary", ml),
                                      ("modelship http-json", ml), ("modelship grpc", mg)):
                    mine = table.get((model, batching, label, c))
                    if not (mine and theirs and theirs.throughput):
                        continue
                    lines.append(
                        f"- {model}, batching {'on' if batching else 'off'}, c={c}: {label} "
                        f"vs {theirs.target}: throughput "
                        f"{mine.throughput / theirs.throughput:.2f}x, p99 {mine.p99_ms:.2f} "
                        f"vs {theirs.p99_ms:.2f} ms")
    return lines


def _hello_ratios(table: dict[Key, Point]) -> list[str]:
    lines = []
    for label, hello_label in (("modelship http-binary", "hello-world http"),
                               ("modelship grpc", "hello-world grpc")):
        mine = table.get(("mlp", False, label, 1))
        hello = table.get(("mlp", False, hello_label, 1))
        if mine and hello:
            lines.append(f"- mlp, c=1: {label} p50 {mine.p50_ms:.3f} ms vs {hello_label} "
                         f"p50 {hello.p50_ms:.3f} ms: {mine.p50_ms / hello.p50_ms:.2f}x")
    return lines


def _in_process_ratios(points: list[Point], limits: dict[tuple[int, str, int], float]
                       ) -> list[str]:
    ratios: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for p in points:
        if not (p.batching and p.avg_batch and p.concurrency == 32 and p.model != "mlp"
                and p.target.startswith("modelship")):
            continue
        size = max(1, round(p.avg_batch))
        limit = limits.get((p.round, p.model, size))
        if limit:
            ratios[(p.model, p.target)].append((p.throughput / limit, size))
    lines = []
    for (model, target), values in sorted(ratios.items()):
        median = statistics.median(v for v, _ in values)
        sizes = sorted({s for _, s in values})
        lines.append(f"- {model}, batching on, c=32: {target} vs in-process at the batch "
                     f"sizes formed {sizes}: {median:.2f}x")
    return lines
