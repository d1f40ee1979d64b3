"""The val choice of (prover, alpha), on hand-built toys."""
import polars as pl
import pytest

from pavflow.data import SEARCH, conform
from pavflow.search.select import choose_on_val


def val_rows(configs: dict, n_problems: int = 4, budget: int = 16) -> pl.DataFrame:
    """configs: (verifier, prover, k, alpha) -> number of problems solved."""
    rows = [dict(problem_id=f"v{i}", split="val", method="beam", verifier=v, prover=p, k=k, alpha=a,
                 budget=budget, correct=int(i < solved), gen_tokens=10, prompt_tokens=5, verifier_tokens=3)
            for (v, p, k, a), solved in configs.items() for i in range(n_problems)]
    return conform(pl.DataFrame(rows), SEARCH, "val")


def test_choose_on_val_takes_the_best_and_breaks_ties_the_documented_way():
    val = val_rows({("pqv", "", 0, 0.0): 2, ("pqv+pav", "base_k1", 1, 1.0): 3,
                    ("pqv+pav", "base_k4", 4, 2.0): 3, ("pqv+pav", "base_k4", 4, 0.5): 3,
                    ("pqv+pav", "base_k16", 16, 0.5): 3, ("pqv+pav", "base_k2", 2, 4.0): 1})
    c = choose_on_val(val)
    # four configurations tie at 3/4: the smallest alpha (0.5), then the smallest K (4)
    assert (c["prover"], c["k"], c["alpha"], c["val_acc"], c["n_problems"], c["budget"]) == \
        ("base_k4", 4, 0.5, 0.75, 4, 16)
    assert choose_on_val(val.sample(fraction=1.0, shuffle=True, seed=3)) == c  # row order is irrelevant
    best_alone = val_rows({("pqv", "", 0, 0.0): 4, ("pqv+pav", "base_k4", 4, 1.0): 4})
    assert choose_on_val(best_alone)["alpha"] == 0.0 and choose_on_val(best_alone)["prover"] == ""
    with pytest.raises(ValueError, match="one budget"):
        choose_on_val(pl.concat([val, val_rows({("pqv", "", 0, 0.0): 1}, budget=4)]))
    with pytest.raises(ValueError, match="no validation"):
        choose_on_val(val.clear())
