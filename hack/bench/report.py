"""The benchmark's outputs: a plain table, a Markdown table, a JSON file and a PNG chart.

matplotlib is imported only inside :func:`write_png` (the ``bench`` extra), so the table and
the JSON work without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUNTIME_ORDER = ("pyrunc", "runc", "crun")


def fmt(value: float | None, unit: str) -> str:
    """A value in the unit people read: ms for seconds, MiB for KiB, plain for counts."""
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "KiB":
        return f"{value / 1024:.2f} MiB"
    return f"{value:.0f}"


def cell(fig: dict[str, Any], unit: str, spread: bool = True) -> str:
    """``median (p10–p90)``, with the failure count when there were any."""
    text = fmt(fig.get("median"), unit)
    if spread and fig.get("n", 0) > 1 and unit != "count":
        text += f" ({fmt(fig.get('p10'), unit).split()[0]}–{fmt(fig.get('p90'), unit)})"
    if fig.get("failures"):
        text += f" [{fig['failures']} failed]"
    return text


def columns(metrics: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Runtimes present (in a fixed order) and the ratio names present."""
    names = {n for m in metrics.values() for n in m["runtimes"]}
    runtimes = [n for n in RUNTIME_ORDER if n in names] + sorted(names - set(RUNTIME_ORDER))
    ratio_names = [
        r for r in ("pyrunc/runc", "pyrunc/crun") if any(r in m["ratios"] for m in metrics.values())
    ]
    return runtimes, ratio_names


def rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows shared by the plain and the Markdown table."""
    metrics = data["metrics"]
    runtimes, ratio_names = columns(metrics)
    header = ["measure", *runtimes, *ratio_names]
    table = []
    for metric in metrics.values():
        row = [metric["label"]]
        row += [
            cell(metric["runtimes"][n], metric["unit"]) if n in metric["runtimes"] else ""
            for n in runtimes
        ]
        for name in ratio_names:
            value = metric["ratios"].get(name)
            row.append(f"{value:.2f}x" if isinstance(value, float) else "")
        table.append(row)
    return header, table


def plain_table(data: dict[str, Any]) -> str:
    header, table = rows(data)
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(lines)


def markdown_table(data: dict[str, Any]) -> str:
    """The README block: machine line, then the table (medians, p10–p90 in brackets)."""
    header, table = rows(data)
    machine = data["machine"]
    out = [
        f"Measured {machine['date']} on {machine['cpus']} cores, Linux {machine['kernel']}, "
        f"Python {machine['python']}, {'; '.join(machine['versions'].values())}; "
        f"load average {machine['load_before']} before, {machine['load_after']} after; "
        f"`hack/bench.py {' '.join(data['config']['argv'])}`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(out)


def print_report(data: dict[str, Any], markdown: bool) -> None:
    machine = data["machine"]
    print(
        f"machine: {machine['cpus']} cores, Linux {machine['kernel']}, Python {machine['python']}, "
        f"load {machine['load_before']} -> {machine['load_after']}"
    )
    for name, version in machine["versions"].items():
        print(f"  {name}: {version}")
    for note in data["notes"]:
        print(f"note: {note}")
    print()
    print(markdown_table(data) if markdown else plain_table(data))
    for metric in data["metrics"].values():
        for name, fig in metric["runtimes"].items():
            if fig.get("error"):
                print(f"! {metric['label']}, {name}: {fig['error'][-300:]}")
    for title, text in data["texts"].items():
        print(f"\n{title}\n{text}")
    print(
        "\nleaks: "
        + (
            ", ".join(data["leaks"])
            if data["leaks"]
            else "none (mountinfo, cgroups, processes checked)"
        )
    )


README_BEGIN = "<!-- hack/bench.py --readme: begin -->"
README_END = "<!-- hack/bench.py --readme: end -->"


def update_readme(data: dict[str, Any], path: Path) -> None:
    """Replace the block between the README's two markers with this run's Markdown table."""
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path}: markers {README_BEGIN!r} and {README_END!r} not found")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n{markdown_table(data)}\n{README_END}{tail}")


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_png(data: dict[str, Any], path: Path) -> None:
    """Grouped bars of medians (p10–p90 whiskers): latencies in ms, memory in MiB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    metrics = data["metrics"]
    runtimes = [n for n in columns(metrics)[0] if n in ("pyrunc", "runc", "crun")]
    many = [
        m
        for k, m in metrics.items()
        if m["unit"] == "s"
        and (m["scenario"] == "concurrent" or k.startswith(("populate", "scale_clear")))
    ]
    panels = [
        (
            "one command (ms, log scale)",
            [
                m
                for m in metrics.values()
                if m["unit"] == "s" and m["scenario"] != "wrapper" and m not in many
            ],
            1000.0,
            True,
        ),
        ("many containers (s, wall, log scale)", many, 1.0, True),
        ("memory (MiB)", [m for m in metrics.values() if m["unit"] == "KiB"], 1 / 1024, False),
    ]
    panels = [p for p in panels if p[1]]
    if not panels:
        return
    heights = [0.5 + 0.15 * len(p[1]) * max(1, len(runtimes)) for p in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(8, sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    colours = {"pyrunc": "#3572A5", "runc": "#00ADD8", "crun": "#A8B9CC"}
    for ax, (title, chosen, scale, log) in zip(axes[:, 0], panels, strict=True):
        width = 0.8 / max(1, len(runtimes))
        for i, name in enumerate(runtimes):
            ys, xs, lo, hi = [], [], [], []
            for j, metric in enumerate(chosen):
                fig_ = metric["runtimes"].get(name)
                if not fig_ or fig_.get("median") is None:
                    continue
                ys.append(j + i * width)
                xs.append(fig_["median"] * scale)
                lo.append(max(0.0, (fig_["median"] - (fig_["p10"] or fig_["median"])) * scale))
                hi.append(max(0.0, ((fig_["p90"] or fig_["median"]) - fig_["median"]) * scale))
            ax.barh(
                ys,
                xs,
                height=width,
                xerr=[lo, hi],
                label=name,
                color=colours.get(name),
                error_kw={"elinewidth": 0.6, "capsize": 1.2},
            )
        ax.set_yticks([j + width * (len(runtimes) - 1) / 2 for j in range(len(chosen))])
        ax.set_yticklabels([m["label"] for m in chosen], fontsize=7)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(title, fontsize=8)
        ax.grid(axis="x", linewidth=0.3)
        ax.legend(fontsize=7, loc="best")
    machine = data["machine"]
    fig.suptitle(
        f"pyrunc vs runc vs crun — {machine['date']}, {machine['cpus']} cores, "
        f"Linux {machine['kernel']}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=80)
    plt.close(fig)
