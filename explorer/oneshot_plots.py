"""The one-shot tab's plots of a recursive search, as plain functions: data in, HoloViews out."""

from __future__ import annotations

import holoviews as hv


def iteration_chart(iteration_stats: list[dict], label: str, positive: str):
    """The fraction of ``label`` = ``positive`` after each iteration with its Wilson interval, the
    same-size direct query beside it and the base rate (``search.iteration_statistics`` rows)."""
    it = [s["iteration"] for s in iteration_stats]
    frac = [100 * (s["fraction"] or 0) for s in iteration_stats]
    lo = [100 * s["low"] for s in iteration_stats]
    hi = [100 * s["high"] for s in iteration_stats]
    direct = [100 * (s["direct"]["fraction"] or 0) for s in iteration_stats]
    base = 100 * iteration_stats[0]["base_rate"]
    title = f"{label} = {positive} (%) after each iteration"
    recursive = hv.Curve((it, frac), "iteration", "fraction (%)", label="recursive").opts(color="#d62728")
    errors = hv.ErrorBars([(i, f, f - a, b - f) for i, f, a, b in zip(it, frac, lo, hi, strict=True)], "iteration",
                          ["fraction (%)", "lo", "hi"]).opts(color="#d62728")
    same = hv.Curve((it, direct), "iteration", "fraction (%)", label="direct query, same size").opts(
        color="#1f77b4", line_dash="dashed")
    return (recursive * hv.Scatter((it, frac), "iteration", "fraction (%)").opts(color="#d62728", size=6) * errors
            * same * hv.Curve(([0, it[-1]], [base, base]), "iteration", "fraction (%)",
                              label=f"base rate {base:.1f}%").opts(color="grey", line_dash="dotted")
            ).opts(title=title, width=420, height=300, legend_position="top_left", ylim=(0, 100), show_legend=True)


def provenance_plot(result, start: str, label_of, positive: str):
    """Who brought whom: one column per iteration of ``result`` (id, iteration, parent), a line
    from each galaxy to its parent, ``start`` (the prototype's id, "" for an upload) at the origin;
    galaxies whose ``label_of(id)`` is ``positive`` in red."""
    position = {start: (0, 0.0)}
    points = []
    for it in sorted({int(i) for i in result["iteration"]}):
        level = result[result["iteration"] == it]
        for k, row in enumerate(level):
            y = k - (len(level) - 1) / 2
            position[str(row["id"])] = (it, y)
            points.append((it, y, str(row["id"]), label_of(row["id"]), str(row["parent"])))
    segments = [(position[p][0], position[p][1], x, y) for x, y, _, _, p in points if p in position]
    nodes = hv.Points([(x, y, i, lab, "yes" if lab == positive else "no") for x, y, i, lab, _ in points],
                      ["iteration", "position"], ["id", "label", "counted"])
    return (hv.Segments(segments, ["iteration", "position", "x1", "y1"]).opts(color="#bbb", line_width=1)
            * nodes.opts(color="counted", cmap={"yes": "#d62728", "no": "#1f77b4"}, size=7, tools=["hover"],
                         show_legend=False)
            * hv.Points([(0, 0.0)], ["iteration", "position"]).opts(color="black", marker="star", size=14)
            ).opts(title="provenance (red: counted label)", width=420, height=300, yaxis=None)
