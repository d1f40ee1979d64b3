"""The README's "what reruns" sentences against `snakemake -n` on the finished smoke study: each
sentence names the jobs a change runs (and those it never runs), in words; the dry run must schedule
exactly the rules those words stand for."""
from __future__ import annotations

import pytest

from conftest import REPO, job_stats, run_snakemake

pytestmark = pytest.mark.dag

# the README's words for the rules
RULE = {"labels": "labels", "`pav` verifier": "verifier", "beam search": "search_beam", "analytic twin": "search_beam",
        "val-grid job": "search_val", "quality table": "quality", "val-chosen run": "search_selected",
        "report": "report", "beam searches": "search_beam",
        "MC beam search": "search_beam_mc", "MC beam searches": "search_beam_mc", "α curve": "search_alpha", "val grid": "search_val",
        "rollouts": "mc", "SFT": "sft", "best-of-N": "search_bon", "RL": "rl"}

# (the README's sentence, the override it is about, the words of the jobs it runs, of jobs it never runs)
CLAIMS = [
    # smoke: search.oracle is on and rl.mc_provers is fixed, so the pav_mc arm does not follow the sweep
    ("adding a K to `sweep.prover_k` runs that prover's labels, its `pav` verifier, its beam search (and its "
     "analytic twin's, with `sweep.analytic`), its MC beam search (with `search.oracle`) and its val-grid job, and "
     "reruns the quality table, the val-chosen run and the report, which read every prover: rollouts, SFT, "
     "best-of-N and RL never depend on K (but a `pav_mc` arm without `rl.mc_provers` runs for every prover).",
     ["sweep.prover_k=[1,4,2]"],
     ["labels", "`pav` verifier", "beam search", "MC beam search", "val-grid job", "quality table", "val-chosen run",
      "report"],
     ["rollouts", "SFT", "best-of-N", "RL"]),
    ("Changing `search.alpha` reruns the beam searches, the MC beam searches, the α curve, the val-chosen run and "
     "the report;",
     ["search.alpha=0.5"], ["beam searches", "MC beam searches", "α curve", "val-chosen run", "report"], []),
    ("changing `search.alpha_grid` reruns only the α curve, the val grid, the val-chosen run and the report (never "
     "best-of-N).", ["search.alpha_grid=[0,1,4]"], ["α curve", "val grid", "val-chosen run", "report"], ["best-of-N"]),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("sentence, overrides, runs, never", CLAIMS, ids=[c[1][0] for c in CLAIMS])
def test_what_reruns_is_what_the_readme_says(smoke_local, sentence, overrides, runs, never):
    assert sentence in _flat((REPO / "README.md").read_text()), "the README no longer says this"
    for words in runs + never:
        assert words in sentence, words
    out = run_snakemake(smoke_local[0], "-n", overrides=overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    scheduled = set(job_stats(out.stdout + out.stderr)) - {"all"}
    assert scheduled == {RULE[w] for w in runs}, (overrides, scheduled)
    assert not scheduled & {RULE[w] for w in never}
