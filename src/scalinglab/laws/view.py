"""How a ScalingLaw reads: its repr, its HTML table for notebooks, its summary rows.

No plotting here (laws/plot.py) and no pandas at import: `summary_table` returns
a pandas DataFrame when pandas is installed, else the same rows as dicts.
"""

import dataclasses
import html
import math

from scalinglab.laws.settings import FitConfig, TableConfig


def _g(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def split_name(name: str) -> tuple[str, float | None]:
    """`N_opt@1e+20` -> ("N_opt", 1e20); a global parameter has no budget."""
    base, sep, budget = name.partition("@")
    return (base, float(budget)) if sep else (name, None)


def summary_rows(law) -> list[dict]:
    """One row per parameter (and derived quantity): value, stderr, interval; per-budget
    parameters of an IsoFLOP fit carry their budget."""
    rows = []
    for name, value in {**law.params_, **law.derived_}.items():
        base, budget = split_name(name)
        ci = law.ci_.get(name) or [None, None]
        rows.append(
            {
                "parameter": base,
                "budget": budget,
                "value": math.nan if value is None else float(value),
                "stderr": float(law.stderr_.get(name, math.nan) or math.nan),
                "ci_low": math.nan if ci[0] is None else float(ci[0]),
                "ci_high": math.nan if ci[1] is None else float(ci[1]),
            }
        )
    return rows


def summary_table(law):
    """summary_rows as a pandas DataFrame when pandas is installed, else the list of dicts."""
    rows = summary_rows(law)
    try:
        import pandas as pd  # optional: the [dataframe] extra
    except ImportError:
        return rows
    df = pd.DataFrame(rows, columns=["parameter", "budget", "value", "stderr", "ci_low", "ci_high"])
    if df["budget"].isna().all():
        df = df.drop(columns="budget")
    return df


def _global(law) -> dict:
    return {k: v for k, v in {**law.params_, **law.derived_}.items() if "@" not in k}


def settings_given(law) -> dict:
    """The settings that differ from their defaults (what a user typed)."""
    defaults = {**dataclasses.asdict(FitConfig()), **dataclasses.asdict(TableConfig())}
    return {k: v for k, v in law.settings.items() if defaults.get(k, v) != v}


WARNING_WIDTH = 100
"""repr shows the first warning's first this many characters."""


def law_repr(law) -> str:
    """`ScalingLaw('chinchilla', 240 points): E = 1.817 [1.77, 1.87], ...` or the settings."""
    if not hasattr(law, "params_"):
        args = "".join(f", {k}={v!r}" for k, v in settings_given(law).items())
        return f"ScalingLaw({law.law!r}{args}) (not fitted)"
    level = law.settings["ci_level"]
    where = f"{law.n_points_} points" if law.n_points_ else law.data_.get("source", "")
    ci = f"; {level:.0%} intervals" if law.ci_ else ""
    head = f"ScalingLaw({law.law!r}, {where}{ci})"
    lines = [head]
    for k, v in _global(law).items():
        ci = law.ci_.get(k)
        ci_s = f" [{_g(ci[0])}, {_g(ci[1])}]" if ci else ""
        lines.append(f"  {k:<10} = {_g(v)}{ci_s}")
    per = len(law.params_) - len([k for k in law.params_ if "@" not in k])
    if per:
        lines.append(f"  (+ {per} per-budget values: .summary())")
    if law.warnings_:  # the first one shown: "1 warning(s): .warnings_" said nothing of it
        first = str(law.warnings_[0])
        first = first if len(first) <= WARNING_WIDTH else first[: WARNING_WIDTH - 3] + "..."
        more = f" (+ {len(law.warnings_) - 1} more)" if len(law.warnings_) > 1 else ""
        lines.append(f"  warning: {first}{more}; all in .warnings_")
    return "\n".join(lines)


def law_html(law) -> str:
    """A small HTML table of the fit (Jupyter shows it in place of the repr)."""
    if not hasattr(law, "params_"):
        return f"<pre>{html.escape(law_repr(law))}</pre>"
    level = law.settings["ci_level"]
    head = html.escape(law_repr(law).splitlines()[0])
    cells = "".join(
        f"<tr><td>{html.escape(r['parameter'])}</td>"
        f"<td>{'' if r['budget'] is None else _g(r['budget'])}</td>"
        f"<td>{_g(r['value'])}</td><td>{_g(r['stderr'])}</td>"
        f"<td>{_g(r['ci_low'])} – {_g(r['ci_high'])}</td></tr>"
        for r in summary_rows(law)
    )
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in law.warnings_)
    return (
        f"<div><b>{head}</b><table><thead><tr><th>parameter</th><th>budget</th>"
        f"<th>value</th><th>stderr</th><th>{level:.0%} interval</th></tr></thead>"
        f"<tbody>{cells}</tbody></table>" + (f"<ul>{warn}</ul>" if warn else "") + "</div>"
    )
