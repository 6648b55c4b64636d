#!/usr/bin/env bash
# Annotate on this machine with Ray: one pipeline replica per local GPU, or CPU actors when there
# is none. Starts a local Ray bound to loopback (or reuses one already running on
# DISTNLP_RAY_PORT) and runs `distnlp annotate MODEL INPUT... OUTPUT distributed=ray ...`.
#
#   bash launch/annotate.sh training/model-best texts.jsonl more-texts.txt annotated/
#   bash launch/annotate.sh training/model-best corpus/raw annotated/ --format jsonl rows_per_shard=5000
#   DISTNLP_CPU_WORKERS=4 bash launch/annotate.sh MODEL INPUT OUTPUT   # CPU actors when no GPU is found
#
# Rerunning the same command after a kill resumes: finished shards are kept, the rest is redone.
# The Ray started here is stopped again on exit; one that was already running is left alone.
set -euo pipefail

PORT="${DISTNLP_RAY_PORT:-6390}"
ADDRESS="127.0.0.1:${PORT}"
# Loopback only: with this set, every Ray port binds to 127.0.0.1 (single-machine runs).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

num_gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  num_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if [ "${num_gpus}" -gt 0 ]; then
  workers="${num_gpus}"; use_gpu=true
else
  workers="${DISTNLP_CPU_WORKERS:-2}"; use_gpu=false
fi

started=0
if ! ray status --address "${ADDRESS}" >/dev/null 2>&1; then
  echo "launch/annotate.sh: starting a local Ray on ${ADDRESS} (${workers} actor(s), GPU: ${use_gpu})" >&2
  cpus=$(( $(nproc) > workers ? $(nproc) : workers ))
  ray start --head --node-ip-address=127.0.0.1 --port="${PORT}" --num-cpus="${cpus}" \
    --include-dashboard=false --disable-usage-stats >/dev/null
  started=1
fi
cleanup() { if [ "${started}" = 1 ]; then ray stop >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

# Our defaults last; an override given on the command line for the same key replaces it.
defaults=("distributed=ray" "distributed.num_workers=${workers}" "distributed.use_gpu=${use_gpu}" "distributed.address=${ADDRESS}")
args=()
for d in "${defaults[@]}"; do
  key="${d%%=*}"
  given=0
  for a in "$@"; do [ "${a%%=*}" = "${key}" ] && given=1; done
  [ "${given}" = 0 ] && args+=("${d}")
done
distnlp annotate "$@" "${args[@]}"
