"""The benchmark report: a Markdown and a self-contained HTML page with three plots.

:func:`write_report` writes ``report.md`` (plots as PNG files beside it), ``report.html`` (plots
embedded as base64 PNG, so the one file can be mailed or attached) and ``results.csv``. Both pages
end with :func:`summary_line`, the best SNN against the best classical model.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os

__all__ = ["REPORT_FILES", "markdown_table", "summary_line", "write_report"]

#: Files :func:`write_report` writes into its folder.
REPORT_FILES = ("report.md", "report.html", "results.csv", "accuracy.png", "accuracy_vs_fit_time.png",
                "accuracy_vs_energy.png")

#: Column heads of the report's table.
HEADER = ("model", "kind", "accuracy", "95% CI", "fit time / fold (s)", "predict time / fold (s)", "SynOps / sample",
          "energy / sample (nJ)", "ANN energy (nJ)", "parameters", "folds", "notes")

ENERGY_NOTE = ("Energy per sample: 45 nm estimates of Horowitz (ISSCC 2014), 0.9 pJ per accumulate (an SNN "
               "synaptic operation), 4.6 pJ per multiply-accumulate (ANN); synaptic arithmetic only, see "
               "sklearn_snn.metrics. 'ANN energy' is the same network run as a conventional ANN. For the "
               "classical models it is given where the operations can be counted (linear models, MLPs).")


def _ok(row):
    return row["n_folds"] and not math.isnan(row["accuracy"])


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return format(v, spec)


def _ci(row):
    if row["ci_low"] is None or math.isnan(row["ci_low"]):
        return ""
    return f"{row['ci_low']:.3f} – {row['ci_high']:.3f}"


def _params(row):
    p = row["params"]
    if not p:
        return "defaults"
    return ", ".join(f"{k.split('__')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('__')[-1]}={v}"
                     for k, v in p.items())


def summary_line(results):
    """One sentence naming the best SNN against the best classical model.

    Parameters
    ----------
    results : pandas.DataFrame
        The frame :func:`~sklearn_snn.benchmark.compare` returns.

    Returns
    -------
    line : str

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"model": ["A", "B"], "snn": [True, False], "accuracy": [0.9, 0.8],
    ...                    "ci_low": [0.85, 0.7], "ci_high": [0.95, 0.9], "n_folds": [5, 5]})
    >>> line = summary_line(df)
    >>> line[:line.index(").") + 2]
    'Best SNN: A, accuracy 0.900 (95% CI 0.850 – 0.950); best classical model: B, 0.800 (0.700 – 0.900).'
    >>> line[line.index(").") + 3:]
    'A (SNN) leads by 10.0 points; the intervals overlap, so the gap is within the fold-to-fold noise.'
    """
    rows = [r for _, r in results.iterrows() if _ok(r)]
    ran_snn, ran_cls = bool(results["snn"].any()), bool((~results["snn"].astype(bool)).any())
    snn = max((r for r in rows if r["snn"]), key=lambda r: r["accuracy"], default=None)
    cls = max((r for r in rows if not r["snn"]), key=lambda r: r["accuracy"], default=None)

    def ci(r):
        c = _ci(r)
        return f" ({c})" if c else ""

    if snn is None and cls is None:
        return "No model finished; see the notes column."
    if snn is None:
        return (f"Best classical model: {cls['model']}, accuracy {cls['accuracy']:.3f}{ci(cls)}; "
                + ("no SNN finished." if ran_snn else "no SNN was run."))
    if cls is None:
        return (f"Best SNN: {snn['model']}, accuracy {snn['accuracy']:.3f}{ci(snn)}; "
                + ("no classical model finished." if ran_cls else "no classical model was run."))
    head = (f"Best SNN: {snn['model']}, accuracy {snn['accuracy']:.3f}"
            f"{' (95% CI ' + _ci(snn) + ')' if _ci(snn) else ''}; best classical model: {cls['model']}, "
            f"{cls['accuracy']:.3f}{ci(cls)}.")
    gap = 100 * (snn["accuracy"] - cls["accuracy"])
    if abs(gap) < 0.05:
        return head + " They tie."
    lead = f"{snn['model']} (SNN)" if gap > 0 else f"{cls['model']} (classical)"
    overlap = None
    if _ci(snn) and _ci(cls):
        overlap = snn["ci_low"] <= cls["ci_high"] and cls["ci_low"] <= snn["ci_high"]
    tail = {True: "; the intervals overlap, so the gap is within the fold-to-fold noise.",
            False: "; the intervals do not overlap.", None: "."}[overlap]
    return f"{head} {lead} leads by {abs(gap):.1f} points{tail}"


def markdown_table(results):
    """The results as a Markdown table (one row per model).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_snn.benchmark.compare import COLUMNS
    >>> row = dict.fromkeys(COLUMNS)
    >>> row.update(model="A", snn=False, accuracy=0.9, n_folds=2, fit_time=0.1, predict_time=0.01, params={})
    >>> markdown_table(pd.DataFrame([row])).splitlines()[2]
    '| A | classical | 0.900 |  | 0.10 | 0.010 |  |  |  | defaults | 2 |  |'
    """
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    for _, r in results.iterrows():
        notes = ("time budget hit" if r["budget_hit"] else "") + (
            ("; " if r["budget_hit"] and r["notes"] else "") + (r["notes"] or ""))
        lines.append(
            f"| {r['model']} | {'SNN' if r['snn'] else 'classical'} | {_fmt(r['accuracy'], '.3f')} | {_ci(r)} | "
            f"{_fmt(r['fit_time'], '.2f')} | {_fmt(r['predict_time'], '.3f')} | {_fmt(r['synops'], '.0f')} | "
            f"{_fmt(r['energy_nj'], '.2f')} | {_fmt(r['ann_energy_nj'], '.2f')} | {_params(r)} | {r['n_folds']} | "
            f"{notes.replace('|', '/')} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def _figures(results):
    """``{file name: PNG bytes}`` for the three plots; empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    rows = [r for _, r in results.iterrows() if _ok(r)]
    if not rows:
        return {}
    color = ["tab:orange" if r["snn"] else "tab:blue" for r in rows]
    out = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        out[name] = buf.getvalue()

    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
    err = [[r["accuracy"] - r["ci_low"] if _ci(r) else 0 for r in rows],
           [r["ci_high"] - r["accuracy"] if _ci(r) else 0 for r in rows]]
    ax.barh([r["model"] for r in rows], [r["accuracy"] for r in rows], xerr=err, color=color)
    ax.invert_yaxis()
    ax.set_xlim(max(0.0, min(r["accuracy"] for r in rows) - 0.1), 1.0)
    ax.set_xlabel("cross-validated accuracy (95% CI)")
    ax.set_title("Accuracy per model (orange: SNN, blue: classical)")
    save(fig, "accuracy.png")

    def scatter(key, name, xlabel, title):
        pts = [r for r in rows if r[key] is not None and r[key] > 0]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if pts:
            ax.scatter([r[key] for r in pts], [r["accuracy"] for r in pts],
                       c=["tab:orange" if r["snn"] else "tab:blue" for r in pts])
            for r in pts:
                ax.annotate(r["model"], (r[key], r["accuracy"]), fontsize=8, xytext=(3, 3),
                            textcoords="offset points")
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no model reports this figure", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cross-validated accuracy")
        ax.set_title(title)
        save(fig, name)

    scatter("fit_time", "accuracy_vs_fit_time.png", "fit time per fold (s, log scale)",
            "Accuracy against fit time (orange: SNN)")
    scatter("energy_nj", "accuracy_vs_energy.png", "energy per sample (nJ, log scale)",
            "Accuracy against energy (orange: SNN)")
    return out


# ----------------------------------------------------------------------------- pages


def _meta_lines(meta):
    return [f"- {k}: {v}" for k, v in meta.items() if v not in (None, "")]


def write_report(results, out, *, title="sklearn-snn benchmark", meta=None, log=print):
    """Write ``report.md``, ``report.html``, ``results.csv`` and the plots into the folder ``out``.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`~sklearn_snn.benchmark.compare`.
    out : str
        Output folder (created if needed).
    title : str, default="sklearn-snn benchmark"
    meta : dict or None, default=None
        Lines for the head of the report (``{"command": ..., "data": ...}``).
    log : callable, default=print
        Receives one line per file written.

    Returns
    -------
    paths : dict of str to str
        File name to path of every file written.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from sklearn_snn.benchmark.compare import COLUMNS
    >>> row = dict.fromkeys(COLUMNS)
    >>> row.update(model="A", snn=False, accuracy=0.9, ci_low=0.8, ci_high=1.0, n_folds=2, fit_time=0.1,
    ...            predict_time=0.01, params={})
    >>> paths = write_report(pd.DataFrame([row]), tempfile.mkdtemp(), log=lambda m: None)
    >>> sorted(paths)[:3]
    ['accuracy.png', 'accuracy_vs_energy.png', 'accuracy_vs_fit_time.png']
    """
    os.makedirs(out, exist_ok=True)
    meta = dict(meta or {})
    summary = results.attrs.get("summary") or summary_line(results)
    figures = _figures(results)
    paths = {}
    for name, png in figures.items():
        paths[name] = os.path.join(out, name)
        with open(paths[name], "wb") as fh:
            fh.write(png)
    table = markdown_table(results)
    md = [f"# {title}", "", *_meta_lines(meta), "", table, "", ENERGY_NOTE, ""]
    md += [f"![{name[:-4].replace('_', ' ')}]({name})" for name in figures]
    md += ["", f"**{summary}**", ""]
    paths["report.md"] = os.path.join(out, "report.md")
    with open(paths["report.md"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))
    paths["report.html"] = os.path.join(out, "report.html")
    with open(paths["report.html"], "w", encoding="utf-8") as fh:
        fh.write(_html(results, title, meta, figures, summary))
    csv = results.copy()
    csv["params"] = [json.dumps(p, default=str) for p in csv["params"]]
    paths["results.csv"] = os.path.join(out, "results.csv")
    csv.to_csv(paths["results.csv"], index=False)
    for name in ("report.md", "report.html"):
        log(f"wrote {paths[name]}")
    return paths


def _html(results, title, meta, figures, summary):
    e = html.escape
    head = HEADER
    body = []
    for _, r in results.iterrows():
        notes = "; ".join(x for x in ("time budget hit" if r["budget_hit"] else "", r["notes"] or "") if x)
        cells = [r["model"], "SNN" if r["snn"] else "classical", _fmt(r["accuracy"], ".3f"), _ci(r),
                 _fmt(r["fit_time"], ".2f"), _fmt(r["predict_time"], ".3f"), _fmt(r["synops"], ".0f"),
                 _fmt(r["energy_nj"], ".2f"), _fmt(r["ann_energy_nj"], ".2f"), _params(r), str(r["n_folds"]), notes]
        cls = ' class="snn"' if r["snn"] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    imgs = "\n".join(f'<figure><img alt="{e(n[:-4])}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode("ascii")}"></figure>' for n, png in figures.items())
    metas = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in meta.items() if v not in (None, ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
tr.snn {{ background: #fff3e6; }}
img {{ max-width: 100%; }}
.summary {{ font-weight: bold; font-size: 1.1em; }}
</style></head><body>
<h1>{e(title)}</h1>
<ul>{metas}</ul>
<table><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p>{e(ENERGY_NOTE)}</p>
{imgs}
<p class="summary">{e(summary)}</p>
</body></html>
"""
