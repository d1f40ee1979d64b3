"""Stage entry points: `python -m pavflow.stages.<stage> [hydra overrides]`. Each wires library
code to files under results/<experiment>/ (pavflow.paths) and to one W&B run; no science here."""
