"""How much each headline moves across studies, e.g. one study under several study seeds (issue #18):
each study's report/headline.json -> SPREAD (per numeric headline: mean, sd, range over the studies,
beside the studies' own 95% CI half-width) and AGREEMENT (per string headline: does every study say
the same). Statistics apart from rendering, as in the rest of pavflow.report; `pavflow spread` writes
spread.md and spread.json. Nothing here is imported by a stage."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from pavflow.data import Schema
from pavflow.paths import Layout
from pavflow.report.fmt import num

HEADLINE_FILE, CONFIG_FILE = "headline.json", "config.yaml"  # the report stage's (registry._report_outputs)
NOT_COMPARED = ("experiment",)  # the study's name: differs by construction
# One row per numeric headline in at least two studies, then one Float64 column per study (null: not in
# that study). ci_half_width: the mean over those studies of half their 95% CI's width (null: no CI).
SPREAD: Schema = {
    "key": pl.String, "n_studies": pl.Int64, "mean": pl.Float64, "sd": pl.Float64, "min": pl.Float64,
    "max": pl.Float64, "range": pl.Float64, "ci_half_width": pl.Float64,
}
# One row per string headline (a chosen prover, a best verifier, a bound) in at least two studies, then one
# String column per study; agree: every study that has it says the same. Disagreements first.
AGREEMENT: Schema = {"key": pl.String, "n_studies": pl.Int64, "agree": pl.Boolean}


class SpreadError(ValueError):
    """Studies that cannot be compared; the message names the path or the setting."""


def study_names(dirs) -> list[str]:
    """Each study's name in the tables: its directory's name, or its path when two names repeat."""
    dirs = [Path(d) for d in dirs]
    names = [d.name for d in dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in dirs]


def read_headlines(dirs) -> dict[str, dict]:
    """Each study's headline.json by study name (study_names)."""
    dirs = [Path(d) for d in dirs]
    if len(dirs) < 2:
        raise SpreadError(f"a spread needs at least two studies, got {len(dirs)}: {[str(d) for d in dirs]}")
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise SpreadError(f"the same study twice: {[str(d) for d in dirs]}")
    out = {}
    for name, d in zip(study_names(dirs), dirs):
        path = Layout(d).report() / HEADLINE_FILE
        if not path.exists():
            raise SpreadError(f"{path}: no such file; study {d} has no headline.json (its report job has not run)")
        try:
            head = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SpreadError(f"{path}: not readable as JSON ({type(e).__name__}: {e})") from e
        if not isinstance(head, dict):
            raise SpreadError(f"{path}: not a dict of headlines (a {type(head).__name__})")
        out[name] = head
    return out


def read_configs(dirs) -> dict[str, dict]:
    """Each study's resolved config (report/config.yaml, written with headline.json) as dotted keys; {}
    where the study has none."""
    out = {}
    for name, d in zip(study_names(dirs), dirs):
        path = Layout(d).report() / CONFIG_FILE
        try:
            out[name] = _flat(yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        except (OSError, yaml.YAMLError) as e:
            raise SpreadError(f"{path}: not readable as YAML ({type(e).__name__}: {e})") from e
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


def setting_differences(configs: dict[str, dict]) -> dict[str, dict]:
    """key -> {study: value} for every config key (but `name`) whose value differs among the studies with
    a config; raises on a task key: studies of different tasks are not one study under several seeds."""
    have = {s: c for s, c in configs.items() if c}
    keys = sorted({k for c in have.values() for k in c} - {"name"})
    diff = {k: {s: c.get(k) for s, c in have.items()} for k in keys
            if len({json.dumps(c.get(k), sort_keys=True) for c in have.values()}) > 1}
    task = [k for k in diff if k.split(".")[0] == "task"]
    if task:
        raise SpreadError("studies of different tasks: " + "; ".join(
            f"{k}: " + ", ".join(f"{s}={v}" for s, v in diff[k].items()) for k in task))
    return diff


def _number(x) -> bool:
    """A real number, inf included (not None, not nan, not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


def _budget(key: str) -> tuple[str, str]:
    """key = stem + its trailing '@N' (a budget, 'pool'), or the stem and ''."""
    m = re.search(r"@[^/]*$", key)
    return (key[:m.start()], m.group()) if m else (key, "")


def is_ci_bound(key: str) -> bool:
    """headline.json names every 95% CI bound ...ci_low / ...ci_high (before any @N)."""
    return _budget(key)[0].endswith(("ci_low", "ci_high"))


def half_width(key: str, head: dict) -> float | None:
    """Half the width of `key`'s 95% CI in one study's headline.json (inf: unbounded); None: no CI. Its
    bounds are <key>_ci_low / _ci_high (before any @N), or the bare ci_low / ci_high beside it, which
    bound `acc` there (oracle_k) or, with no `acc` beside them, `diff` (paired, rl/<arm>/minus_<b>)."""
    stem, at = _budget(key)
    parent, _, last = stem.rpartition("/")
    bounds = [(f"{stem}_ci_low{at}", f"{stem}_ci_high{at}")]
    if last == "acc" or (last == "diff" and f"{parent}/acc{at}" not in head):
        bounds.append((f"{parent}/ci_low{at}", f"{parent}/ci_high{at}"))
    for lo, hi in bounds:
        if _number(head.get(lo)) and _number(head.get(hi)):
            return (head[hi] - head[lo]) / 2
    return None


def _compared(headlines: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(numeric, string) headlines: key -> {study: value}, CI bounds left out; None, nan or inf: not in
    that study."""
    numeric, strings = {}, {}
    for study, head in headlines.items():
        for k, v in head.items():
            if k in NOT_COMPARED or is_ci_bound(k):
                continue
            if isinstance(v, str):
                strings.setdefault(k, {})[study] = v
            elif _number(v) and math.isfinite(v):
                numeric.setdefault(k, {})[study] = float(v)
    return numeric, strings


def headline_spread(headlines: dict[str, dict]) -> pl.DataFrame:
    """SPREAD of headlines (study -> headline.json), then one column per study, in key order."""
    studies, rows = list(headlines), []
    for key, vals in sorted(_compared(headlines)[0].items()):
        if len(vals) < 2:
            continue
        x = np.array(list(vals.values()))
        hw = [h for s in vals if (h := half_width(key, headlines[s])) is not None]
        rows.append({"key": key, "n_studies": len(x), "mean": x.mean(), "sd": x.std(ddof=1), "min": x.min(),
                     "max": x.max(), "range": x.max() - x.min(), "ci_half_width": np.mean(hw) if hw else None,
                     **{s: vals.get(s) for s in studies}})
    return pl.DataFrame(rows, schema={**SPREAD, **{s: pl.Float64 for s in studies}})


def headline_agreement(headlines: dict[str, dict]) -> pl.DataFrame:
    """AGREEMENT of headlines (study -> headline.json), then one column per study."""
    studies = list(headlines)
    rows = [{"key": key, "n_studies": len(vals), "agree": len(set(vals.values())) == 1,
             **{s: vals.get(s) for s in studies}}
            for key, vals in _compared(headlines)[1].items() if len(vals) >= 2]
    df = pl.DataFrame(rows, schema={**AGREEMENT, **{s: pl.String for s in studies}})
    return df.sort("agree", "key")


def single_study_keys(headlines: dict[str, dict]) -> dict[str, str]:
    """key -> study for the headlines (CI bounds aside) only one study has: not compared."""
    numeric, strings = _compared(headlines)
    return {k: next(iter(v)) for k, v in sorted((numeric | strings).items()) if len(v) == 1}


@dataclass
class Spread:
    studies: dict[str, str]  # name -> directory
    spread: pl.DataFrame  # SPREAD + a column per study
    agreement: pl.DataFrame  # AGREEMENT + a column per study
    alone: dict[str, str] = field(default_factory=dict)  # single_study_keys
    settings: dict[str, dict] = field(default_factory=dict)  # setting_differences (the seed, usually)

    def as_dict(self) -> dict:
        """spread.json."""
        return {"studies": self.studies, "spread": self.spread.to_dicts(), "agreement": self.agreement.to_dicts(),
                "single_study_keys": self.alone, "setting_differences": self.settings}


def study_spread(dirs) -> Spread:
    """Everything `pavflow spread` writes, for the study directories `dirs`."""
    dirs = [Path(d) for d in dirs]
    heads = read_headlines(dirs)
    settings = setting_differences(read_configs(dirs))
    return Spread(dict(zip(heads, map(str, dirs))), headline_spread(heads), headline_agreement(heads),
                  single_study_keys(heads), settings)


def _cell(x) -> str:
    return "–" if x is None else num(x) if isinstance(x, float) else str(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def spread_markdown(spread: pl.DataFrame, agreement: pl.DataFrame, alone: dict[str, str] | None = None,
                    settings: dict[str, dict] | None = None) -> str:
    """spread.md: the SPREAD table, the AGREEMENT table (disagreements first), what differs in the studies'
    configs and the headlines only one study has."""
    studies = [c for c in spread.columns if c not in SPREAD]
    out = [f"# Headline spread over {len(studies)} studies", "",
           f"Studies: {', '.join(studies)}. Numbers as in headline.json (accuracies and gains are fractions); "
           "sd over the studies (ddof = 1); CI ±: the mean half-width of the studies' own 95% CIs, the "
           "uncertainty within one study (sd or range well beyond it: the headline moves more across studies "
           "than one study's CI shows). –: not in that study.", ""]
    out += _table(["headline", "n", "mean", "sd", "min", "max", "range", "CI ±", *studies],
                  [[f"`{r['key']}`", str(r["n_studies"]), *(_cell(r[c]) for c in ("mean", "sd", "min", "max", "range",
                                                                                  "ci_half_width", *studies))]
                   for r in spread.iter_rows(named=True)])
    if agreement.height:
        flips = agreement.filter(~pl.col("agree")).height
        out += ["", "## String headlines", "", f"{flips} of {agreement.height} differ across the studies.", ""]
        out += _table(["headline", "agree", *studies],
                      [[f"`{r['key']}`", "yes" if r["agree"] else "**no**", *(_cell(r[s]) for s in studies)]
                       for r in agreement.iter_rows(named=True)])
    if settings:
        out += ["", "## Settings that differ", ""]
        if set(settings) - {"seed"}:
            out += ["Not only the seed: the spread mixes the effects of these settings with the seed's.", ""]
        out += [f"- `{k}`: " + ", ".join(f"{s}={json.dumps(v)}" for s, v in vals.items()) for k, vals in settings.items()]
    if alone:
        out += ["", "## In one study only (not compared)", "", ", ".join(f"`{k}` ({s})" for k, s in alone.items())]
    return "\n".join(out) + "\n"
