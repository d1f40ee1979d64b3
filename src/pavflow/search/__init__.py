"""Test-time search: best-of-N and votes over a sampled pool (bon), step-level beam search (beam)."""
from __future__ import annotations

from pavflow.search.beam import beam_search, effective_reward, last_value, step_seed
from pavflow.search.bon import METHODS, aggregate_prm, bon_search

__all__ = ["METHODS", "aggregate_prm", "beam_search", "bon_search", "effective_reward", "last_value",
           "step_seed"]
