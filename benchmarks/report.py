"""Results as JSON, a markdown table and a PNG bar chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

INERTIA_RTOL = 1e-4


def _reference(rows: list[dict]) -> dict | None:
    """The first kmeans_xp row that ran: ratios and inertia are relative to it."""
    return next((r for r in rows if r["kind"] == "kmeans_xp" and r["ms_per_iter"]), None)


def _floor(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["kind"] == "floor" and r["ms_per_iter"]), None)


def _label_cell(row: dict) -> str:
    """The float64 label check: fraction of worse labels and the worst relative excess; bold
    where it misses issue 4's bar (≤ 1e-5 of labels, each within 1e-5 of the best distance)."""
    if row.get("label_errors") is None:
        return ""
    text = f"{row['label_errors']:.1e} ({row['worst_excess']:.1e})"
    ok = row["label_errors"] <= 1e-5 and row["worst_excess"] <= 1e-5
    return text if ok else f"**{text}**"


def markdown(mode: str, env: dict, results: list[dict]) -> str:
    lines = [
        f"Machine: {env.get('gpu') or env.get('processor')} ({env['machine']}), {env['date']}; "
        f"Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
    ]
    if env.get("threadpools"):
        pools = "; ".join(
            f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
            for p in env["threadpools"]
        )
        lines.append(f"Thread pools (threadpoolctl): {pools}")
    lines.append(f"Command: `{env['command']}`")
    for res in results:
        rows = res["rows"]
        ref, floor = _reference(rows), _floor(rows)
        checked = any(r.get("label_errors") is not None for r in rows)
        lines += [
            "",
            f"### {mode.upper()} {res['shape']}: ms per Lloyd iteration "
            f"(X is {res['x_mb']:.0f} MB)",
            "",
            "| implementation | ms/iter | vs kmeans_xp | vs GEMM | peak extra MB (% of X) "
            "| inertia | agrees |" + (" labels worse than f64 (worst) |" if checked else ""),
            "|---|---:|---:|---:|---:|---:|:---:|" + ("---:|" if checked else ""),
        ]
        for r in rows:
            if r["skipped"]:
                lines.append(f"| {r['name']} | skipped: {r['skipped']} | | | | | |")
                continue
            ms = r["ms_per_iter"]
            vs_ref = f"{ms / ref['ms_per_iter']:.2f}" if ref else ""
            vs_floor = f"{ms / floor['ms_per_iter']:.2f}" if floor else ""
            peak = ""
            if r["peak_extra_mb"] is not None:
                peak = f"{r['peak_extra_mb']:.0f} ({100 * r['peak_extra_mb'] / res['x_mb']:.0f}%)"
            inertia = f"{r['inertia']:.6g}" if r["inertia"] is not None else ""
            agrees = ""
            if r["inertia"] is not None and ref and ref["inertia"]:
                rel = abs(r["inertia"] - ref["inertia"]) / ref["inertia"]
                agrees = "yes" if rel <= INERTIA_RTOL else f"**NO** ({rel:.1e})"
            cells = [r["name"], f"{ms:.2f}", vs_ref, vs_floor, peak, inertia, agrees]
            if checked:
                cells.append(_label_cell(r))
            lines.append("| " + " | ".join(cells) + " |")
        if res["e2e"]:
            base = next((e for e in res["e2e"] if e["name"].startswith("sklearn-lloyd")), None)
            lines += [
                "",
                f"Default end-to-end fit (k-means++ and default tol; median time and mean inertia "
                f"over {res['e2e'][0]['seeds']} seeds):",
                "",
                "| implementation | seconds | vs sklearn-lloyd | mean inertia "
                "| inertia vs sklearn |",
                "|---|---:|---:|---:|---:|",
            ]
            for e in res["e2e"]:
                t_ratio = f"{e['seconds'] / base['seconds']:.2f}" if base else ""
                i_ratio = f"{e['inertia'] / base['inertia']:.4f}" if base else ""
                cells = [e["name"], f"{e['seconds']:.3f}", t_ratio, f"{e['inertia']:.6g}", i_ratio]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(mode: str, results: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = []
    for res in results:
        for r in res["rows"]:
            if r["ms_per_iter"] and r["name"] not in names:
                names.append(r["name"])
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4.5), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        by_name = {r["name"]: r["ms_per_iter"] for r in res["rows"] if r["ms_per_iter"]}
        values = [by_name.get(n, math.nan) for n in names]
        ax.barh(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.set_yticks(range(len(names)), names)
        ax.set_xscale("log")
        ax.set_xlabel("ms per Lloyd iteration (log)")
        ax.set_title(res["shape"], fontsize=10)
        ax.invert_yaxis()
    fig.suptitle(f"kmeans_xp {mode.upper()} benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_results(mode: str, env: dict, results: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{mode}.json"
    json_path.write_text(json.dumps({"environment": env, "results": results}, indent=1))
    md_path = out / f"{mode}.md"
    md_path.write_text(markdown(mode, env, results))
    paths = [json_path, md_path]
    png = bar_chart(mode, results, out / f"{mode}.png")
    if png:
        paths.append(png)
    return paths
