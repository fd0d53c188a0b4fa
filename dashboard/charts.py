"""Plotly figure builders. They draw numbers computed by ``robust_core``; they compute none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from robust_core import metrics
from robust_core.analysis import OOD_AVG

PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#637939",
]
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def tradeoff_figure(
    wise: pd.DataFrame, ensemble: pd.DataFrame, id_name: str, shifts: list[str], i: int, show_shifts: bool = True
) -> go.Figure:
    """Accuracy along the alpha grid (rows of ``wise`` / ``ensemble``) with the grid point ``i`` marked."""
    alpha = float(wise.index[i])
    fig = go.Figure()
    columns = [id_name, OOD_AVG] + (shifts if show_shifts else [])
    for k, col in enumerate(columns):
        colour = "#000000" if col == id_name else "#d62728" if col == OOD_AVG else PALETTE[(k + 2) % len(PALETTE)]
        width = 3.5 if col in (id_name, OOD_AVG) else 1.4
        name = f"{col} (ID)" if col == id_name else col
        fig.add_trace(
            go.Scatter(
                x=wise.index,
                y=100 * wise[col],
                mode="lines+markers",
                name=f"{name} · WiSE-FT",
                line=dict(color=colour, width=width),
                marker=dict(size=5),
                legendgroup=col,
                hovertemplate=f"<b>{name}</b> WiSE-FT<br>α=%{{x:.2f}}<br>accuracy=%{{y:.2f}}%<extra></extra>",
            )
        )
        if col in (id_name, OOD_AVG):
            fig.add_trace(
                go.Scatter(
                    x=ensemble.index,
                    y=100 * ensemble[col],
                    mode="lines",
                    name=f"{name} · output-space ensemble",
                    line=dict(color=colour, width=2, dash="dash"),
                    legendgroup=col,
                    hovertemplate=f"<b>{name}</b> output-space ensemble<br>α=%{{x:.2f}}<br>accuracy=%{{y:.2f}}%<extra></extra>",
                )
            )
    fig.add_vline(x=alpha, line=dict(color="#555", width=1.5, dash="dot"), annotation_text=f"α={alpha:.2f}", annotation_position="top")
    for col in (id_name, OOD_AVG):
        fig.add_trace(
            go.Scatter(
                x=[wise.index[i]],
                y=[100 * wise[col].iloc[i]],
                mode="markers",
                showlegend=False,
                marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
                hoverinfo="skip",
                meta=f"alpha:{col}",
            )
        )
    fig.update_layout(
        xaxis_title="α (0 = zero-shot, 1 = fine-tuned)",
        yaxis_title="top-1 accuracy (%)",
        height=520,
        legend=dict(orientation="v", x=1.02, y=1),
        margin=dict(l=60, r=20, t=40, b=50),
        hovermode="closest",
    )
    return fig


def _axis(lo: float, hi: float, transform: str, title: str) -> dict:
    tickvals, ticktext = metrics.axis_ticks(lo, hi, transform)
    lo_t, hi_t = metrics.transform([lo, hi], transform)
    return dict(title=title, tickvals=tickvals, ticktext=ticktext, range=[float(lo_t), float(hi_t)], zeroline=False)


def _error_bars(center, lo, hi) -> dict:
    """Asymmetric error bars (Clopper-Pearson bounds, already on the transformed axis)."""
    return dict(
        type="data", symmetric=False, array=hi - center, arrayminus=center - lo, thickness=1.5, width=3, color="rgba(214,39,40,0.75)"
    )


def _alpha_text(alphas) -> list[str]:
    """Labels along a WiSE-FT curve: alpha at 0, 0.5 and 1 (and every 0.25 on grids of at most 11 points)."""
    alphas = np.asarray(alphas, float)
    marks = (0.0, 0.25, 0.5, 0.75, 1.0) if len(alphas) <= 11 else (0.0, 0.5, 1.0)
    return [f"α={a:g}" if any(abs(a - m) < 1e-9 for m in marks) else "" for a in alphas]


def _cloud_traces(base: dict, T, size: int = 7, legend: bool = True) -> list[go.Scatter]:
    """The standard models: those in the line's fit (blue) and those left out of it (grey), one legend entry each."""
    pts = base["points"]
    shown = pts[pts.in_plot] if "in_plot" in pts else pts
    traces = []
    for in_fit, name, colour in (
        (True, "standard models (in the fit)", "#4c72b0"),
        (False, "standard models (left out of the fit)", "#b0b0b0"),
    ):
        rows = shown[shown.fit == in_fit]
        if not len(rows):
            continue
        marker = dict(size=size, color=colour, opacity=0.6, symbol="circle")
        rho = rows.get("rho", pd.Series(np.nan, index=rows.index))
        traces.append(_points(T, rows, rows.model, name, marker, rho=rho, showlegend=legend, legendgroup=name))
    return traces


def _alpha_curve(
    T, frame: pd.DataFrame, name: str, line: dict, marker=None, mode="lines+markers", rho=None, hint="", **kwargs
) -> go.Scatter:
    """A curve through the alpha grid (``frame``: alpha, x, y) whose hover gives alpha, both accuracies (and rho)."""
    data = [frame.alpha, 100 * frame.x, 100 * frame.y] + ([rho] if rho is not None else [])
    hover = f"{name}<br>α=%{{customdata[0]:.2f}}<br>x=%{{customdata[1]:.2f}}%<br>y=%{{customdata[2]:.2f}}%"
    hover += ("<br>ρ=%{customdata[3]:+.2f} pts" if rho is not None else "") + hint + "<extra></extra>"
    return go.Scatter(
        x=T(frame.x),
        y=T(frame.y),
        mode=mode,
        name=name,
        line=line,
        marker=marker,
        customdata=np.stack(data, axis=1),
        hovertemplate=hover,
        **kwargs,
    )


def _points(T, rows: pd.DataFrame, labels, name: str, marker: dict, rho=None, source: str = "", **kwargs) -> go.Scatter:
    """Labelled models as markers at (T(x), T(y)); the hover names each one with its accuracies (and rho)."""
    data = [labels, 100 * rows.x, 100 * rows.y] + ([rho] if rho is not None else [])
    hover = "<b>%{customdata[0]}</b><br>x=%{customdata[1]:.2f}%<br>y=%{customdata[2]:.2f}%"
    hover += ("<br>ρ=%{customdata[3]:+.2f} pts" if rho is not None else "") + f"<extra>{source}</extra>"
    return go.Scatter(
        x=T(rows.x), y=T(rows.y), mode="markers", name=name, marker=marker, customdata=np.stack(data, axis=1), hovertemplate=hover, **kwargs
    )


def _line_traces(base: dict, T, legend: bool = True) -> list[go.Scatter]:
    lo_b, hi_b = base["band"]
    return [
        go.Scatter(
            x=np.concatenate([T(base["grid"]), T(base["grid"])[::-1]]),
            y=np.concatenate([T(hi_b), T(lo_b)[::-1]]),
            fill="toself",
            fillcolor="rgba(76,114,176,0.15)",
            line=dict(width=0),
            name="95% bootstrap band of the line",
            showlegend=legend,
            legendgroup="band",
            hoverinfo="skip",
        ),
        go.Scatter(
            x=T(base["grid"]),
            y=T(base["line"]),
            mode="lines",
            line=dict(color="#4c72b0", width=2.5),
            name="baseline fit: " + line_equation(base["slope"], base["intercept"]),
            showlegend=legend,
            legendgroup="line",
            hoverinfo="skip",
        ),
    ]


def line_equation(slope: float, intercept: float) -> str:
    """``T(y) = 0.608·T(x) − 1.559`` (never ``+ -1.559``)."""
    sign = "−" if intercept < 0 else "+"
    return f"T(y) = {slope:.3f}·T(x) {sign} {abs(intercept):.3f}"


OTHER_CURVE_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def er_figure(
    er: dict,
    transform: str,
    i: int,
    id_label: str,
    target_label: str,
    method_label: str,
    overlays: pd.DataFrame | None = None,
    show_cloud: bool = True,
    zoom: bool = False,
    others: dict[str, pd.DataFrame] | None = None,
) -> go.Figure:
    """ID (x) vs OOD (y) accuracy on transformed axes with the baseline line and the WiSE-FT curve.

    ``zoom`` frames the run's own models (the WiSE-FT curves and the endpoints) instead of everything;
    ``others`` adds other methods' WiSE-FT curves ({label: DataFrame(alpha, x, y)}), thinner, for comparison.
    The current alpha is a ring drawn under the curve, so it never hides it.
    """
    T = lambda a: metrics.transform(np.asarray(a, float), transform)  # noqa: E731
    fig = go.Figure()
    curve, base = er["curve"], er["baseline"]
    xs = [curve.x, er["endpoints"].x]
    ys = [curve.y, er["endpoints"].y]
    for other in (others or {}).values():
        xs.append(other.x)
        ys.append(other.y)
    n_own = len(xs)
    if base.get("source"):
        if show_cloud:
            for trace in _cloud_traces(base, T):
                fig.add_trace(trace)
            pts = base["points"]
            shown = pts[pts.in_plot] if "in_plot" in pts else pts
            xs.append(shown.x)
            ys.append(shown.y)
        for trace in _line_traces(base, T):
            fig.add_trace(trace)
    if overlays is not None and len(overlays):
        symbols = {"open_clip zero-shot": "diamond", "model soups (ViT-B/32 fine-tunes)": "square", "papers (WiSE-FT, FLYP)": "star"}
        single = overlays["single_model"] if "single_model" in overlays else pd.Series(True, index=overlays.index)
        groups = [(f"{source}", rows) for source, rows in overlays[single.astype(bool)].groupby("source")]
        groups += [(f"{source} · not a single model", rows) for source, rows in overlays[~single.astype(bool)].groupby("source")]
        for k, (source, rows) in enumerate(groups):
            hollow = source.endswith("not a single model")  # each column at its own alpha: drawn hollow, no rho
            base_source = source.replace(" · not a single model", "")
            symbol = symbols.get(base_source, "x") + ("-open" if hollow else "")
            marker = dict(size=11 if hollow else 9, symbol=symbol, color=PALETTE[(k + 4) % len(PALETTE)], opacity=0.75)
            fig.add_trace(_points(T, rows, rows.label, source, marker, source=source))
            xs.append(rows.x)
            ys.append(rows.y)
    ens = er["ensemble"]
    if len(ens):
        fig.add_trace(
            _alpha_curve(T, ens, "output-space ensemble (not WiSE-FT)", dict(color="#ff7f0e", width=2, dash="dash"), mode="lines")
        )
    for k, (label, other) in enumerate((others or {}).items()):
        colour = OTHER_CURVE_COLOURS[k % len(OTHER_CURVE_COLOURS)]
        fig.add_trace(_alpha_curve(T, other, f"WiSE-FT {label}", dict(color=colour, width=1.8), marker=dict(size=4)))
    fig.add_trace(_ring(transform, curve, i, f"current α={curve.alpha.iloc[i]:.2f}", size=22, width=3))  # drawn under the curve
    fig.add_trace(
        _alpha_curve(
            T,
            curve,
            f"WiSE-FT {method_label} (α grid)",
            dict(color="#d62728", width=3),
            marker=dict(size=7),
            mode="lines+markers+text",
            rho=curve["rho"] if "rho" in curve else pd.Series(np.nan, index=curve.index),
            text=_alpha_text(curve.alpha),
            textposition="top left",
            textfont=dict(size=11, color="#d62728"),
            error_x=_error_bars(T(curve.x), T(curve.x_lo), T(curve.x_hi)),
            error_y=_error_bars(T(curve.y), T(curve.y_lo), T(curve.y_hi)),
            meta="curve:selected",
            hint="<br><i>click to set α</i>",
        )
    )
    end = er["endpoints"]
    group = end["group"] if "group" in end else pd.Series("fine-tuned", index=end.index)
    hover = "<b>%{text}</b><br>x=%{customdata[0]:.2f}%<br>y=%{customdata[1]:.2f}%<br>ρ=%{customdata[2]:+.2f} pts<extra></extra>"
    ingredients = end[group == "soup ingredient"]
    if len(ingredients):  # one legend entry for the soup's ingredients
        marker = dict(size=9, symbol="triangle-up-open", color="#7f7f7f", line=dict(width=1.5))
        rho = ingredients.get("rho", pd.Series(np.nan, index=ingredients.index))
        fig.add_trace(_points(T, ingredients, ingredients.model, f"soup ingredients ({len(ingredients)} FT runs)", marker, rho=rho))
    styles = {
        "zero-shot": ("star", 14),
        "fine-tuned": ("triangle-up", 14),
        "soup": ("diamond", 14),
        "single model": ("x", 13),
    }
    seen: list[tuple[float, float]] = []
    for k, row in enumerate(end[group != "soup ingredient"].itertuples()):
        kind = getattr(row, "group", "fine-tuned")
        symbol, size = styles.get(kind, ("triangle-up", 14))
        # a model within half a point of one already drawn (the CLIP paper's and PyTorch's zero-shot) is drawn as a
        # larger open marker around it, so neither hides the other
        if any(abs(row.x - x0) < 0.005 and abs(row.y - y0) < 0.005 for x0, y0 in seen):
            symbol, size = symbol + "-open", size + 8
        seen.append((row.x, row.y))
        fig.add_trace(
            go.Scatter(
                x=[T(row.x)],
                y=[T(row.y)],
                mode="markers",
                name=row.model,
                marker=dict(
                    size=size,
                    symbol=symbol,
                    color="#2ca02c" if kind == "zero-shot" and "method" in end else PALETTE[(k + 3) % len(PALETTE)],
                    line=dict(color="#000", width=1) if not symbol.endswith("-open") else dict(width=2.5),
                ),
                text=[row.model],
                hovertemplate=hover,
                customdata=[[100 * row.x, 100 * row.y, getattr(row, "rho", np.nan)]],
            )
        )
    all_x = np.concatenate([np.asarray(v, float) for v in xs])
    all_y = np.concatenate([np.asarray(v, float) for v in ys])
    lo = max(0.003, min(np.nanmin(all_x), np.nanmin(all_y)) * 0.9)
    hi = min(0.997, max(np.nanmax(all_x), np.nanmax(all_y)) + (1 - max(np.nanmax(all_x), np.nanmax(all_y))) * 0.3)
    diag = np.linspace(lo, hi, 50)
    fig.add_trace(
        go.Scatter(x=T(diag), y=T(diag), mode="lines", line=dict(color="#999", dash="dash", width=1.5), name="y = x", hoverinfo="skip")
    )
    scale = {"logit": "logit", "probit": "probit", "linear": "linear"}[transform]
    x_lo, x_hi, y_lo, y_hi = lo, hi, max(0.003, np.nanmin(all_y) * 0.85), hi
    if zoom:
        own_x = np.concatenate([np.asarray(v, float) for v in xs[:n_own]])
        own_y = np.concatenate([np.asarray(v, float) for v in ys[:n_own]])
        pad = lambda a, b: (max(0.002, a - 0.25 * (b - a) - 0.01), min(0.998, b + 0.25 * (b - a) + 0.01))  # noqa: E731
        x_lo, x_hi = pad(np.nanmin(own_x), np.nanmax(own_x))
        y_lo, y_hi = pad(np.nanmin(own_y), np.nanmax(own_y))
    fig.update_layout(
        xaxis=_axis(x_lo, x_hi, transform, f"{id_label} accuracy ({scale} scale)"),
        yaxis=_axis(y_lo, y_hi, transform, f"{target_label} accuracy ({scale} scale)"),
        height=620,
        legend=dict(x=1.02, y=1),
        margin=dict(l=60, r=20, t=30, b=50),
        hovermode="closest",
    )
    return fig


def diversity_figure(table: pd.DataFrame) -> go.Figure:
    """Zero-shot vs fine-tuned per set: the [0, 1] measures (PD, 1 − κ, 1 − CKA) on the left, KL (nats, unbounded)
    on its own axis on the right."""
    from plotly.subplots import make_subplots

    kl = [c for c in table.columns if c.startswith("KL")]
    bounded = [c for c in table.columns if c not in kl]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.7, 0.3], horizontal_spacing=0.1, subplot_titles=("fractions (0 to 1)", "KL (nats)")
    )
    for k, col in enumerate(table.columns):
        fig.add_trace(
            go.Bar(
                x=table.index,
                y=table[col],
                name=col,
                marker_color=PALETTE[k],
                hovertemplate=f"<b>{col}</b><br>%{{x}}: %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=2 if col in kl else 1,
        )
    fig.update_yaxes(range=[0, max(0.05, float(np.nanmax(table[bounded].to_numpy())) * 1.1)] if bounded else None, row=1, col=1)
    fig.update_layout(barmode="group", height=440, margin=dict(l=60, r=20, t=40, b=90), legend=dict(orientation="h", y=-0.25))
    return fig


def margin_figure(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    colours = {"zero-shot": "#2ca02c", "fine-tuned": "#d62728"}
    for (model, correct), rows in frame.groupby(["model", "correct"], sort=False):
        colour = colours.get(model, "#ff7f0e")
        fig.add_trace(
            go.Violin(
                x0=model,  # one position per model (a per-point x list was 16,000 strings copied on every rerun)
                y=rows.margin.to_numpy(),
                name=f"{model} · {correct}",
                legendgroup=model,
                scalegroup=model,
                side="negative" if correct == "incorrect" else "positive",
                line_color=colour,
                fillcolor=colour if correct == "correct" else "rgba(150,150,150,0.5)",
                opacity=0.7,
                meanline_visible=True,
                points=False,
                spanmode="hard",  # the density stops at the data: a top-1 minus top-2 margin is never below 0
                hoverinfo="y+name",
            )
        )
    fig.update_layout(
        violingap=0.1, violinmode="overlay", height=460, yaxis_title="margin: top-1 − top-2 output", margin=dict(l=60, r=20, t=30, b=50)
    )
    return fig


def _in_points(fraction) -> np.ndarray:
    """Accuracies or their differences (fractions) in points, to 0.001 of a point: far below what a chart or its
    hover (0.1) shows, and a third of the bytes of full floats in the per-α frames every rerun sends."""
    return np.round(100 * np.asarray(fraction, dtype=float), 3)


def _per_class_props(table: pd.DataFrame, column: str, title: str, max_bars: int, selected: str | None) -> tuple[dict, dict, str]:
    """The bars', the x axis' and the title's properties of ``per_class_figure``."""
    if len(table) > max_bars:
        keep = (table["fine-tuned − zero-shot"].abs()).nlargest(max_bars).index
        table = table.loc[keep]
        title = f"{title} ({max_bars} classes with the largest fine-tuning change)"
    ordered = table.sort_values(column)
    colours = np.where(ordered[column] >= 0, "#2ca02c", "#d62728")
    error_y = None
    if f"{column} low" in ordered:  # paired 95% interval within the class
        error_y = dict(
            type="data",
            symmetric=False,
            array=_in_points(ordered[f"{column} high"] - ordered[column]),
            arrayminus=_in_points(ordered[column] - ordered[f"{column} low"]),
            color="#555",
            thickness=1,
        )
        if f"{column} verdict" in ordered:  # faded bars: the interval includes 0 (or McNemar disagrees)
            faded = ordered[f"{column} verdict"].str.startswith("not")
            colours = np.where(faded, np.where(ordered[column] >= 0, "#a9d8a9", "#f0a8a8"), colours)
    classes = list(ordered["class"])
    bars = dict(
        x=classes,
        y=_in_points(ordered[column]),
        error_y=error_y,
        marker=dict(color=colours, line=dict(width=[3 if c == selected else 0 for c in classes], color="#000")),
        customdata=np.stack([_in_points(ordered[c]) for c in ("zero-shot", "fine-tuned", "theta(alpha)")] + [ordered["n"]], axis=1),
    )
    ticktext = [f"<b>{c}</b>" if c == selected else c for c in classes]
    xaxis = dict(tickmode="array", tickvals=classes, ticktext=ticktext, tickangle=-60, tickfont=dict(size=10))
    return bars, xaxis, title


def per_class_figure(table: pd.DataFrame, column: str, title: str, max_bars: int = 60, selected: str | None = None) -> go.Figure:
    """Per-class accuracy change; with many classes, the ``max_bars`` largest |fine-tuned − zero-shot| changes.

    Every bar is labelled; ``selected`` (a class name) is outlined and its label bold."""
    bars, xaxis, title = _per_class_props(table, column, title, max_bars, selected)
    fig = go.Figure(
        go.Bar(
            **bars,
            hovertemplate="<b>%{x}</b><br>Δ=%{y:+.1f} pts<br>zero-shot %{customdata[0]:.1f}%<br>fine-tuned %{customdata[1]:.1f}%<br>θ(α) %{customdata[2]:.1f}%<br>n=%{customdata[3]}<extra></extra>",
        )
    )
    fig.update_xaxes(**xaxis)
    fig.update_layout(title=title, yaxis_title="accuracy change (points)", height=440, margin=dict(l=60, r=20, t=50, b=130))
    return fig


def set_single_models_alpha(fig: go.Figure, curve: pd.DataFrame, id_name: str, i: int) -> go.Figure:
    """Move ``single_models_figure``'s theta(alpha) marker to grid point ``i``."""
    for trace in fig.data:
        if trace.meta == "alpha:current":
            trace.update(x=[100 * curve[id_name].iloc[i]], y=[100 * curve[OOD_AVG].iloc[i]], name=f"θ(α={curve.index[i]:.2f})")
    return fig


def label_free_figure(frame: pd.DataFrame, alpha: float) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=frame.index, y=100 * frame["true OOD avg"], name="true OOD avg (uses labels)", line=dict(color="#d62728", width=3))
    )
    fig.add_trace(
        go.Scatter(
            x=frame.index,
            y=100 * frame["estimated OOD avg"],
            name="label-free estimate (ALine-D)",
            line=dict(color="#9467bd", width=2, dash="dash"),
        )
    )
    fig.add_vline(x=alpha, line=dict(color="#555", dash="dot"))
    fig.update_layout(xaxis_title="α", yaxis_title="OOD avg accuracy (%)", height=360, margin=dict(l=60, r=20, t=30, b=50))
    return fig


# ------------------------------------------------------------------------------ alpha-only updates
# Rebuilding a Plotly figure costs tens of milliseconds (property validation); a slider move only
# changes the α marker and line, so pages keep one figure per session and move those in place.


def set_tradeoff_alpha(fig: go.Figure, wise: pd.DataFrame, i: int) -> go.Figure:
    alpha = float(wise.index[i])
    with fig.batch_update():
        fig.layout.shapes[0].update(x0=alpha, x1=alpha)
        fig.layout.annotations[0].update(x=alpha, text=f"α={alpha:.2f}")
        for trace in fig.data:
            if isinstance(trace.meta, str) and trace.meta.startswith("alpha:"):
                col = trace.meta.split(":", 1)[1]
                trace.update(x=[wise.index[i]], y=[100 * wise[col].iloc[i]])
    return fig


def _ring_at(curve: pd.DataFrame, transform: str, i: int) -> dict:
    """Where the current-alpha ring of a curve sits at grid point ``i``, on the transformed axes."""
    x, y = metrics.transform([curve.x.iloc[i], curve.y.iloc[i]], transform)
    return dict(x=[float(x)], y=[float(y)])


def _ring(transform: str, curve: pd.DataFrame, i: int, name: str, size: int, width: float, **kwargs) -> go.Scatter:
    """The current alpha on a curve: a translucent ring (drawn before the curve, so it never hides it)."""
    marker = dict(size=size, color="rgba(255,215,0,0.35)", line=dict(color="#b8860b", width=width), symbol="circle")
    return go.Scatter(
        **_ring_at(curve, transform, i), mode="markers", name=name, marker=marker, hoverinfo="skip", meta="alpha:current", **kwargs
    )


def set_er_alpha(fig: go.Figure, er: dict, transform: str, i: int) -> go.Figure:
    curve = er["curve"]
    for trace in fig.data:
        if trace.meta == "alpha:current":
            trace.update(**_ring_at(curve, transform, i), name=f"current α={curve.alpha.iloc[i]:.2f}")
    return fig


def set_vline_alpha(fig: go.Figure, alpha: float) -> go.Figure:
    fig.layout.shapes[0].update(x0=alpha, x1=alpha)
    return fig


def single_models_figure(curve: pd.DataFrame, id_name: str, singles: pd.DataFrame, i: int, method_label: str) -> go.Figure:
    """ID vs OOD avg (linear axes, %): the WiSE-FT curve of the selected method with the single models
    (soups, their ingredients, random-head FT) beside it, as in the model-soups paper's figures."""
    fig = go.Figure()
    x, y = 100 * curve[id_name].to_numpy(), 100 * curve[OOD_AVG].to_numpy()
    alphas = curve.index.to_numpy()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers+text",
            name=f"WiSE-FT {method_label}",
            text=[f"{a:.1f}" if k in (0, len(alphas) - 1) or abs(a - 0.5) < 1e-9 else "" for k, a in enumerate(alphas)],
            textposition="top left",
            line=dict(color=PALETTE[0], width=2.5),
            hovertemplate="α=%{customdata:.2f}<br>ID %{x:.1f}%<br>OOD avg %{y:.1f}%<extra></extra>",
            customdata=alphas,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[x[i]],
            y=[y[i]],
            mode="markers",
            meta="alpha:current",
            name=f"θ(α={alphas[i]:.2f})",
            marker=dict(size=16, color="rgba(255,215,0,0.6)", line=dict(color="#000", width=2)),
            hoverinfo="skip",
        )
    )
    styles = {"soup": ("diamond", 14, None), "soup ingredient": ("triangle-up-open", 10, "#7f7f7f"), "single model": ("x", 12, None)}
    for k, (group, rows) in enumerate(singles.groupby("group", sort=False)):
        symbol, size, colour = styles.get(group, ("circle", 10, None))
        labelled = group != "soup ingredient"  # soups and single models are few: name them on the plot
        fig.add_trace(
            go.Scatter(
                x=rows["ID"],
                y=rows["OOD avg"],
                mode="markers+text" if labelled else "markers",
                textposition="bottom center",
                texttemplate="%{text}" if labelled else None,
                name=group if group != "soup" else "soups",
                marker=dict(size=size, symbol=symbol, color=colour or PALETTE[(k + 3) % len(PALETTE)], line=dict(width=1.5)),
                text=rows["model"],
                hovertemplate="<b>%{text}</b><br>ID %{x:.1f}%<br>OOD avg %{y:.1f}%<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title=f"{id_name} accuracy (%)",
        yaxis_title="OOD avg accuracy (%)",
        height=420,
        margin=dict(l=60, r=20, t=20, b=50),
        legend=dict(x=1.02, y=1),
    )
    return fig


def lpft_average_figure(avg: pd.DataFrame) -> go.Figure:
    """The LP-FT paper's ID vs OOD averages (percent, as printed), one labelled point per method."""
    fig = go.Figure()
    for method, row in avg.iterrows():
        fig.add_trace(
            go.Scatter(
                x=[row.get("ID")],
                y=[row.get("OOD")],
                mode="markers+text",
                text=[method],
                textposition="top center",
                marker=dict(size=16),
                name=method,
            )
        )
    fig.update_layout(xaxis_title="ID average (%)", yaxis_title="OOD average (%)", height=380, margin=dict(l=60, r=20, t=30, b=50))
    return fig


TOY_COLOURS = {"lp": "#2ca02c", "ft": "#d62728", "lpft": "#1f77b4"}


def toy_figure(result: dict, names: dict[str, str]) -> go.Figure:
    """Kumar et al.'s two-layer linear toy: losses during training (left) and how far B moved (right)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("loss during training", "‖B − B₀‖ on ID vs OOD directions"), horizontal_spacing=0.16
    )
    floor = 1e-12  # a change below this is rounding (the gradient argument makes it exactly 0): drawn at the floor
    for key in ("lp", "ft", "lpft"):
        h, colour = result[key], TOY_COLOURS[key]
        x = np.arange(len(h["id_loss"]))
        fig.add_trace(go.Scatter(x=x, y=h["id_loss"], name=f"{names[key]} · ID loss", line=dict(color=colour)), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=h["ood_loss"], name=f"{names[key]} · OOD loss", line=dict(color=colour, dash="dash")), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=x, y=h["change_id"], name=f"{names[key]} · change on ID subspace", line=dict(color=colour)), row=1, col=2
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.maximum(h["change_ood"], floor),
                name=f"{names[key]} · change on OOD directions",
                line=dict(color=colour, dash="dot"),
            ),
            row=1,
            col=2,
        )
    top = max(float(np.max(result[k][c])) for k in ("lp", "ft", "lpft") for c in ("id_loss", "ood_loss"))
    # floor at 1e-5: below that the ID losses are just converged, and the OOD gap is what matters
    fig.update_yaxes(
        type="log", range=[-5, np.log10(top) + 0.3], dtick=1, exponentformat="e", row=1, col=1, title="squared loss (log, floored at 1e-5)"
    )
    top_change = max(float(np.max(result[k]["change_id"])) for k in ("lp", "ft", "lpft"))
    fig.update_yaxes(
        type="log",
        range=[-12.5, np.log10(max(top_change, 1e-11)) + 0.5],
        dtick=2,
        row=1,
        col=2,
        title="Frobenius norm (floored at 1e-12)",
        exponentformat="e",
    )
    fig.update_xaxes(title="step")
    fig.update_layout(height=520, margin=dict(l=60, r=20, t=40, b=50))
    return fig


def er_panels_figure(
    panels: dict[str, dict], transform: str, i: int, method: str, method_label: str, x_labels: dict[str, str]
) -> go.Figure:
    """Small multiples, one effective-robustness panel per shift (the WiSE-FT paper's Figure 1 layout).

    ``panels``: {shift: er_data(method, shift, transform, intervals=False)}; each panel frames its own models.
    """
    from plotly.subplots import make_subplots

    T = lambda a: metrics.transform(np.asarray(a, float), transform)  # noqa: E731
    names = list(panels)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.08, vertical_spacing=0.12)
    for k, shift in enumerate(names):
        er, r, c = panels[shift], k // cols + 1, k % cols + 1
        first = k == 0
        curve, base, end = er["curve"], er["baseline"], er["endpoints"]
        own = end[end.method == method] if "method" in end else end
        xs = np.concatenate([curve.x, own.x])
        ys = np.concatenate([curve.y, own.y])
        if base.get("source"):
            for trace in _cloud_traces(base, T, size=5, legend=first):
                fig.add_trace(trace, row=r, col=c)
            for trace in _line_traces(base, T, legend=False):
                fig.add_trace(trace, row=r, col=c)
        fig.add_trace(
            _ring(transform, curve, i, "current α", size=16, width=2.5, showlegend=first, legendgroup="current"),
            row=r,
            col=c,
        )
        fig.add_trace(
            _alpha_curve(
                T,
                curve,
                f"WiSE-FT {method_label}",
                dict(color="#d62728", width=2.5),
                marker=dict(size=4),
                showlegend=first,
                legendgroup="curve",
            ),
            row=r,
            col=c,
        )
        for idx, name, symbol, colour in ((0, "zero-shot", "star", "#2ca02c"), (-1, "fine-tuned", "triangle-up", "#1f77b4")):
            fig.add_trace(
                go.Scatter(
                    x=[T(curve.x.iloc[idx])],
                    y=[T(curve.y.iloc[idx])],
                    mode="markers",
                    name=name,
                    showlegend=first,
                    legendgroup=name,
                    marker=dict(size=12, symbol=symbol, color=colour, line=dict(color="#000", width=1)),
                    hovertemplate=f"{name}<br>x=%{{x}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        # framed on the run's models (the line and the cloud run off the edges, as on the main chart's default)
        pad = lambda a, b: (max(0.002, a - 0.5 * (b - a) - 0.03), min(0.998, b + 0.5 * (b - a) + 0.03))  # noqa: E731
        x_lo, x_hi = pad(float(np.nanmin(xs)), float(np.nanmax(xs)))
        if base.get("source"):  # the line where the run's models are, so each panel shows the gap rho measures
            on = (base["grid"] >= x_lo) & (base["grid"] <= x_hi)
            ys = np.concatenate([ys, np.asarray(base["line"])[on]])
        y_lo, y_hi = pad(float(np.nanmin(ys)), float(np.nanmax(ys)))
        fig.update_xaxes(_axis(x_lo, x_hi, transform, x_labels.get(shift, "ID") if r == rows else ""), row=r, col=c)
        fig.update_yaxes(_axis(y_lo, y_hi, transform, "OOD" if c == 1 else ""), row=r, col=c)
    fig.update_layout(
        height=300 * rows + 80, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.08), hovermode="closest"
    )
    return fig


def set_panels_alpha(fig: go.Figure, panels: dict[str, dict], transform: str, i: int) -> go.Figure:
    """Move every panel's current-alpha ring to grid point ``i`` (panels in the order they were drawn)."""
    rings = [t for t in fig.data if t.meta == "alpha:current"]
    with fig.batch_update():
        for ring, er in zip(rings, panels.values()):
            ring.update(**_ring_at(er["curve"], transform, i))
    return fig


# ------------------------------------------------------------------------------------- calibration
CALIBRATION_COLOURS = {"zero-shot": "#2ca02c", "fine-tuned": "#d62728"}  # theta(alpha) gets orange, as on the margins chart


def _reliability_props(model: str, rows: pd.DataFrame) -> tuple[dict, dict]:
    """The reliability curve's and the bin-share bars' properties of one model (rows of ``RunView.reliability``)."""
    colour = CALIBRATION_COLOURS.get(model, "#ff7f0e")
    n = int(rows["count"].sum())
    seen = rows[rows["count"] > 0]
    custom = np.stack([100 * seen.low, 100 * seen.high, seen["count"], 100 * seen["count"] / max(n, 1)], axis=1)
    curve = dict(
        x=100 * seen.confidence,
        y=100 * seen.accuracy,
        name=model,
        legendgroup=model,
        line=dict(color=colour, width=2.5),
        customdata=custom,
        hovertemplate=f"<b>{model}</b><br>bin %{{customdata[0]:.1f}}–%{{customdata[1]:.1f}}%<br>"
        "mean confidence %{x:.1f}%<br>accuracy %{y:.1f}%<br>n = %{customdata[2]:,} (%{customdata[3]:.1f}%)<extra></extra>",
    )
    bars = dict(
        x=100 * (rows.low + rows.high) / 2,
        y=100 * rows["count"] / max(n, 1),
        name=model,
        legendgroup=model,
        marker_color=colour,
        customdata=rows["count"],
        hovertemplate=f"<b>{model}</b><br>bin centre %{{x:.1f}}%<br>%{{y:.1f}}% of examples (n = %{{customdata:,}})<extra></extra>",
    )
    return curve, bars


def reliability_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Reliability diagram of ``RunView.reliability``: accuracy against mean confidence per bin for each model,
    the diagonal of perfect calibration, and beneath it each bin's share of the examples (counts in the hover).

    The middle model (theta(alpha), when the table has three) is marked ``alpha:reliability`` for
    ``set_reliability_alpha``."""
    from html import escape  # set names come from store files: plotly renders a subset of HTML in titles

    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.05)
    fig.add_trace(
        go.Scatter(
            x=[0, 100], y=[0, 100], mode="lines", name="perfect calibration", line=dict(color="#888", dash="dash"), hoverinfo="skip"
        ),
        row=1,
        col=1,
    )
    models = list(dict.fromkeys(table["model"]))
    for k, (model, rows) in enumerate(table.groupby("model", sort=False)):
        meta = "alpha:reliability" if len(models) == 3 and k == 1 else None
        curve, bars = _reliability_props(model, rows)
        fig.add_trace(go.Scatter(mode="lines+markers", marker=dict(size=8), meta=meta, **curve), row=1, col=1)
        fig.add_trace(go.Bar(showlegend=False, meta=meta, **bars), row=2, col=1)
    fig.update_xaxes(range=[0, 100], row=1, col=1)
    fig.update_xaxes(range=[0, 100], title_text="confidence: max softmax probability (%)", row=2, col=1)
    fig.update_yaxes(range=[0, 102], title_text="accuracy in the bin (%)", row=1, col=1)
    fig.update_yaxes(title_text="examples (%)", row=2, col=1)
    fig.update_layout(
        title=escape(title), barmode="group", bargap=0.15, height=600, legend=dict(x=0.01, y=0.99), margin=dict(l=60, r=20, t=50, b=50)
    )
    return fig


def set_reliability_alpha(fig: go.Figure, table: pd.DataFrame) -> go.Figure:
    """Give ``reliability_figure``'s theta(alpha) curve and bars the bins of ``table`` (``RunView.reliability`` at the
    new alpha, with the same three models); far cheaper than rebuilding the figure."""
    models = list(dict.fromkeys(table["model"]))
    if len(models) != 3:
        raise ValueError(f"the table has {len(models)} models; only a three-model reliability figure moves along α")
    curve, bars = _reliability_props(models[1], table[table["model"] == models[1]])
    traces = [t for t in fig.data if t.meta == "alpha:reliability"]
    if len(traces) != 2:
        raise ValueError("this reliability figure has no theta(alpha) traces to move")
    with fig.batch_update():
        traces[0].update(curve)
        traces[1].update(bars)
    return fig


def ece_curve_figure(curve: pd.DataFrame, id_name: str, shifts: list[str], alpha: float, title: str) -> go.Figure:
    """ECE (points) along the alpha grid per set and OOD avg (columns of ``curve``), the sidebar's alpha marked."""
    from html import escape  # set names come from store files: plotly renders a subset of HTML in names and titles

    fig = go.Figure()
    for k, col in enumerate(curve.columns):
        highlight = col in (id_name, OOD_AVG)
        colour = "#000000" if col == id_name else "#d62728" if col == OOD_AVG else PALETTE[(k + 2) % len(PALETTE)]
        name = escape(f"{col} (ID)" if col == id_name else col if col == OOD_AVG or col in shifts else f"{col} (ID val)")
        fig.add_trace(
            go.Scatter(
                x=curve.index,
                y=curve[col],
                mode="lines+markers",
                name=name,
                line=dict(color=colour, width=3.5 if highlight else 1.4, dash="solid" if highlight or col in shifts else "dot"),
                marker=dict(size=5),
                hovertemplate=f"<b>{name}</b><br>α=%{{x:.2f}}<br>ECE=%{{y:.2f}} pts<extra></extra>",
            )
        )
    fig.add_vline(x=alpha, line=dict(color="#555", width=1.5, dash="dot"), annotation_text=f"α={alpha:.2f}", annotation_position="top")
    for col in (c for c in (id_name, OOD_AVG) if c in curve):
        fig.add_trace(
            go.Scatter(
                x=[],
                y=[],
                mode="markers",
                showlegend=False,
                marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
                hoverinfo="skip",
                meta=f"alpha:{col}",
            )
        )
    set_ece_alpha(fig, curve, alpha)
    fig.update_layout(
        title=escape(title),
        xaxis_title="α (0 = zero-shot, 1 = fine-tuned)",
        yaxis_title="ECE (points, 15 bins)",
        xaxis_range=[-0.03, 1.03],
        height=480,
        legend=dict(orientation="v", x=1.02, y=1),
        margin=dict(l=60, r=20, t=50, b=50),
        hovermode="closest",
    )
    return fig


def set_ece_alpha(fig: go.Figure, curve: pd.DataFrame, alpha: float) -> go.Figure:
    """Move the alpha line and the ID / OOD-avg markers of ``ece_curve_figure`` to the sidebar's grid alpha (an exact
    grid value; no marker where the curve lacks it: a top-k store is calibrated at its endpoints only)."""
    rows = np.flatnonzero(curve.index.to_numpy(float) == alpha)
    on_grid = len(rows) > 0
    with fig.batch_update():
        fig.layout.shapes[0].update(x0=alpha, x1=alpha)
        fig.layout.annotations[0].update(x=alpha, text=f"α={alpha:.2f}")
        for trace in fig.data:
            if isinstance(trace.meta, str) and trace.meta.startswith("alpha:"):
                col = trace.meta.split(":", 1)[1]
                trace.update(x=[curve.index[rows[0]]] if on_grid else [], y=[curve[col].iloc[rows[0]]] if on_grid else [])
    return fig


# -------------------------------------------------------------------------------------- live lab
def live_alpha_figure(
    curves: list[tuple[str, np.ndarray, np.ndarray, bool]],
    true_class: int | None,
    truth_name: str | None,
    predicted: int,
    predicted_name: str,
    alpha: float,
    all_methods: bool,
) -> go.Figure:
    """Probability of the true class (solid) and of theta(alpha)'s predicted class (dashed) along the alpha grid, one
    pair of lines per method; ``curves`` holds (label, alphas, probabilities (n_alphas, n_classes), selected)."""
    fig = go.Figure()
    for k, (label, a, p, selected) in enumerate(curves):
        colour = PALETTE[k % len(PALETTE)] if all_methods else PALETTE[1]
        lines = []
        if true_class is not None:
            lines.append((true_class, f"P(true = {truth_name})", truth_name, dict(width=3 if selected else 1.8), dict(size=5)))
        if predicted != true_class:
            lines.append(
                (
                    predicted,
                    f"P(predicted = {predicted_name})",
                    predicted_name,
                    dict(width=2.5 if selected else 1.5, dash="dash"),
                    dict(size=4, symbol="diamond"),
                )
            )
        for cls, what, name, line, marker in lines:
            fig.add_trace(
                go.Scatter(
                    x=a,
                    y=100 * p[:, cls],
                    mode="lines+markers",
                    name=f"{label}: {what}",
                    line=dict(color=colour, **line),
                    marker=marker,
                    hovertemplate=f"<b>{label}</b><br>α=%{{x:.2f}}<br>P({name})=%{{y:.1f}}%<extra></extra>",
                )
            )
    fig.add_vline(x=alpha, line=dict(color="#444", width=1.5, dash="dot"), annotation_text=f"α = {alpha:.2f}", annotation_position="top")
    fig.update_layout(
        height=330 + 22 * len(fig.data),
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="α (0 = zero-shot, 1 = fine-tuned)", range=[-0.02, 1.02]),
        yaxis=dict(title="probability (%)", range=[-2, 102]),
        legend=dict(orientation="h", yanchor="top", y=-0.3, font=dict(size=11)),
        title=dict(text="Along the α grid", font=dict(size=14)),
    )
    return fig


# ------------------------------------------------------------------------------------- examples grid
def example_cards_html(table: pd.DataFrame, thumbnails: list[bytes | None], alpha: float, columns: int = 4) -> str:
    """The disagreeing examples as one HTML grid of equal cards: thumbnail, label, and each model's top-3 with
    probabilities and a mark for a right top-1. Every text is HTML-escaped (class names come from store files)."""
    import base64
    from html import escape

    theta_col = next(c for c in table.columns if c.startswith("θ(") and c.endswith("top-3"))
    models = (
        ("ZS", "zero-shot right", "zero-shot top-3"),
        ("FT", "fine-tuned right", "fine-tuned top-3"),
        (f"θ({alpha:.2f})", "θ(α) right", theta_col),
    )
    columns_of = {c: table[c].tolist() for c in {"index", "label", *(c for m in models for c in m[1:])}}  # no per-row Series
    cards = []
    for r, png in enumerate(thumbnails[: len(table)]):
        image = f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="">' if png is not None else ""
        lines = "".join(
            f"<div><b>{who}</b> <span class='{'ok' if columns_of[right][r] else 'no'}'>{'✓' if columns_of[right][r] else '✗'}</span> "
            f"{escape(str(columns_of[col][r]))}</div>"
            for who, right, col in models
        )
        cards.append(
            f"<div class='card'><div class='head'>{image}<div><b>{escape(str(columns_of['label'][r]))}</b><br>"
            f"<span class='idx'>#{int(columns_of['index'][r])}</span></div></div><div class='models'>{lines}</div></div>"
        )
    style = (
        "<style>.ex-grid{display:grid;grid-template-columns:repeat(COLUMNS,1fr);gap:12px;font-family:'Source Sans Pro',sans-serif}"
        ".ex-grid .card{border:1px solid rgba(49,51,63,.2);border-radius:8px;padding:10px;min-height:170px}"
        ".ex-grid .head{display:flex;gap:10px;align-items:center;margin-bottom:6px}"
        ".ex-grid img{width:56px;height:56px;image-rendering:pixelated;border-radius:4px}"
        ".ex-grid .models{font-size:13px;color:#555;line-height:1.45}.ex-grid .idx{color:#888;font-size:12px}"
        ".ex-grid .ok{color:#2ca02c;font-weight:bold}.ex-grid .no{color:#d62728;font-weight:bold}</style>"
    ).replace("COLUMNS", str(int(columns)))
    return style + "<div class='ex-grid'>" + "".join(cards) + "</div>"
