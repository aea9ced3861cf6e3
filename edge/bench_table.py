"""The benchmark's markdown tables (what ``movinet-edge bench`` prints and the README quotes)."""

from __future__ import annotations

import math

from .bench_results import BenchReport, ModelBench


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _precision_label(m: ModelBench) -> str:
    return f"int8 ({m.int8_recipe})" if m.precision == "int8" and m.int8_recipe else m.precision


def format_table(report: BenchReport) -> str:
    """Markdown: one row per model and thread count, then cold start / RSS, then delegate notes."""
    lines = [
        "| model | precision | runtime | threads | step median ms | step p90 ms | pipeline fps | overhead "
        "| overhead excl. decode | reference fps | x reference | XNNPACK |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in report.models:
        cov = m.coverage
        delegated = f"{cov.get('delegated_ops', 0)}/{cov.get('total_ops', 0)} ops, {cov.get('partitions', 0)} part."
        if m.error and not m.threads:
            lines.append(f"| {m.model_id} | {_precision_label(m)} | {m.runtime} {m.runtime_version} | - "
                         f"| failed: {m.error} |||||||")
            continue
        for t in m.threads:
            lines.append(
                f"| {m.model_id} | {_precision_label(m)} | {m.runtime} {m.runtime_version} | {t.threads} "
                f"| {_fmt(t.step.median_ms, '.1f')} | {_fmt(t.step.p90_ms, '.1f')} "
                f"| {_fmt(t.pipeline.fps if t.pipeline else None, '.1f')} "
                f"| {_fmt(t.overhead_pct, '+.0f', '%')} | {_fmt(t.overhead_excl_decode_pct, '+.0f', '%')} "
                f"| {_fmt(t.reference.fps if t.reference else None, '.1f')} "
                f"| {_fmt(t.reference_ratio, '.2f', 'x')} | {delegated} |"
            )
    starts = [m for m in report.models if m.cold_start is not None]
    if starts:
        lines += ["", "| model | precision | size MB | cold start s (median) | runs | peak RSS MB "
                  "| of it private MB | of it mapped files MB |",
                  "|---|---|---:|---:|---|---:|---:|---:|"]  # fmt: skip
        for m in starts:
            cs = m.cold_start
            assert cs is not None
            runs = ", ".join(f"{r:.2f}" for r in cs.runs)
            lines.append(
                f"| {m.model_id} | {_precision_label(m)} | {m.model_mb:.2f} | {cs.median_s:.2f} | {runs} "
                f"| {cs.peak_rss_mb:.0f} | {cs.peak_private_mb:.0f} | {cs.peak_file_backed_mb:.0f} |"
            )
    notes = []
    for m in report.models:
        if m.error:
            notes.append(f"- {m.name}: failed: {m.error}")
        left = m.coverage.get("builtin_ops") or {}
        if left:
            ops = ", ".join(f"{k} x{v}" for k, v in left.items())
            notes.append(f"- {m.name}: left on built-in kernels: {ops}")
        for t in m.threads:
            if t.reference is not None and t.reference.adapted:
                notes.append(f"- {m.name}: reference loop adapted ({', '.join(t.reference.adapted)})")
                break
    if notes:
        lines += ["", *notes]
    lines += ["", f"Machine: {report.machine.summary()}"]
    return "\n".join(lines)
