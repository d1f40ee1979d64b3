"""derive_seed: the same parts give the same seed in any process; different parts, different seeds."""
import subprocess
import sys

from pavflow.seeds import derive_seed


def test_stable_across_processes_and_distinct():
    here = derive_seed(0, "mc", "base")
    there = subprocess.run([sys.executable, "-c", "from pavflow.seeds import derive_seed; print(derive_seed(0, 'mc', 'base'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert str(here) == there
    seeds = {derive_seed(s, kind, i) for s in range(3) for kind in ("round", "call", "train") for i in range(20)}
    assert len(seeds) == 3 * 3 * 20
    assert all(0 <= x < 2 ** 56 for x in seeds)
    assert derive_seed(1, "a") != derive_seed(0, "a") and derive_seed(0, 1) == derive_seed(0, "1")
