"""Test-time search: best-of-N and votes over a sampled pool (bon), step-level beam search (beam), the
MC-rollout oracle scorer (oracle), and the validation choice of a beam configuration (select)."""
