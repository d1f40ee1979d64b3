"""The one way pavflow derives a random seed for one purpose from another seed, stable across processes
and machines (no salted hash()): sha256 of the parts' text. A stage derives its job's seeds from
cfg.seed; library code derives per-round, per-update or per-item seeds from the seed it was given."""
from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts) -> int:
    """A 56-bit seed for (seed, *parts), e.g. derive_seed(cfg.seed, "mc", "base") or (seed, "round", 3)."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(p) for p in parts)).encode()).digest()
    return int.from_bytes(digest[:7], "little")
