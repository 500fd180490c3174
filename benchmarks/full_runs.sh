#!/usr/bin/env bash
# Paper-size runs of the RAKI benchmark and the experiments, in priority order, on
# whatever device JAX finds (meant for a GPU; each step also runs on CPU, slowly).
#
#   bash benchmarks/full_runs.sh RESULTS_DIR [DEADLINE_SECONDS]
#
# Every step runs under `timeout` against one overall deadline, logs to
# RESULTS_DIR/log.txt and records the device (config.json / env of each output).
# A step that fails or times out does not stop the later ones; the sweep resumes
# where it stopped when rerun with the same RESULTS_DIR. SMOKE=1 shrinks every step
# to a seconds-long CPU check of this script. A tarball RESULTS_DIR.tgz is refreshed
# after each step (for machines that hand back single files; TARBALL=PATH to place it).
set -u
OUTDIR=${1:?usage: full_runs.sh RESULTS_DIR [DEADLINE_SECONDS]}
BUDGET=${2:-3600}
START=$(date +%s)
mkdir -p "$OUTDIR"
LOG="$OUTDIR/log.txt"
export PYTHONUNBUFFERED=1
# float32 matmuls/convs in full precision on GPUs (TF32 would bias the g-factor checks)
export JAX_DEFAULT_MATMUL_PRECISION=${JAX_DEFAULT_MATMUL_PRECISION:-highest}
export MPLBACKEND=Agg
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

left() { echo $((BUDGET - ($(date +%s) - START))); }
step() {  # step NAME CMD...
  local name=$1; shift
  local t=$(left)
  if [ "$t" -le 10 ]; then echo "[skip $name: deadline]" | tee -a "$LOG"; return; fi
  echo "[start $name $(date -u +%T), ${t}s left] $*" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout "$t" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "[end $name rc=$rc $(( $(date +%s) - t0 ))s]" | tee -a "$LOG"
  tar czf "${TARBALL:-$OUTDIR.tgz}" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" 2>/dev/null
  return $rc
}

if [ "${SMOKE:-0}" = 1 ]; then
  RAKI="--n 48 --coils 4 --widths 8,4 --steps 20 --cases 4:12 --slopes 0.1,1.0"
  RAKI_LONG="$RAKI"
  SW="--n 48 --ncoils 4 --widths 8,4 --steps 20 --R 4 --acs 12 --slopes 0,1"
  SW6="$SW"
  EXP="--n 48 --ncoils 4 --widths 8,4 --steps 20 --acs 12"
  MC="--replicas 8 --crop 16"
  NL="--replicas 8 --scales 0.01,1"
  ACT="--slopes 0,1"
  GF="--n 48 --coils 4 --replicas 4 --nets small"
else
  RAKI="--cases 4:24,4:40,5:24 --slopes 0.1,0.5,1.0 --steps 500 --lr 3e-3"
  RAKI_LONG="--cases 4:24,4:40,5:24 --slopes 0.1,0.5,1.0 --steps 3000 --lr 1e-3"
  # the learning-rate x steps grid behind the RakiConfig defaults: benchmarks/raki_grid.py
  SW="--R 4,5 --acs 24,40"
  SW6="--R 4,5,6 --acs 24,40"
  EXP=""
  MC="--replicas 1000"
  NL="--replicas 500"
  ACT=""
  GF="--replicas 200 --nets paper,small"
fi

step env $PY -c "import jax, flax, optax, numpy; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" || exit 3
step smoke $PY experiments/equivalence.py --small --out "$OUTDIR/smoke" --overwrite || exit 4
step raki500 $PY benchmarks/raki.py $RAKI --out "$OUTDIR/raki_500"
step sweep $PY experiments/slope_sweep.py $SW --out "$OUTDIR/slope_sweep" --resume
step raki_long $PY benchmarks/raki.py $RAKI_LONG --out "$OUTDIR/raki_long"
step activations $PY experiments/activations.py $EXP $ACT --out "$OUTDIR/activations" --overwrite
step gfactor_maps $PY experiments/gfactor_maps.py $EXP $MC --out "$OUTDIR/gfactor_maps" --overwrite
step sweep6 $PY experiments/slope_sweep.py $SW6 --out "$OUTDIR/slope_sweep" --resume
step noise_level $PY experiments/noise_level.py $EXP $NL --out "$OUTDIR/noise_level" --overwrite
step gfactor_bench $PY benchmarks/gfactor.py $GF --out "$OUTDIR/gfactor_bench"
echo "[done $(( $(date +%s) - START ))s]" | tee -a "$LOG"
