#!/usr/bin/env bash
# Train without Ray: torchrun starts one rank per local GPU (or N CPU ranks with gloo), and
# every rank runs the same worker as `distnlp train` and the Ray replicas (docs/architecture.md,
# "The engine"). Multi-node: run it on each node with NNODES, NODE_RANK and MASTER_ADDR set.
#
#   bash launch/torchrun.sh                                 # default pipeline, demo corpus
#   bash launch/torchrun.sh experiment=ewt_cnn
#   DISTNLP_CPU_WORKERS=2 bash launch/torchrun.sh training.max_steps=50   # CPU ranks, no GPU
set -euo pipefail

# Idle OpenMP threads sleep instead of spinning (spinning collapses CPU throughput under load).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

num_gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  num_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if [ "${num_gpus}" -gt 0 ]; then
  nproc="${num_gpus}"; device_args=()
else
  nproc="${DISTNLP_CPU_WORKERS:-2}"; device_args=(distributed.use_gpu=false)
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi

if [ "${NNODES:-1}" -gt 1 ]; then
  rdzv=(--nnodes="${NNODES}" --node_rank="${NODE_RANK:?set NODE_RANK}" --master_addr="${MASTER_ADDR:?set MASTER_ADDR}" --master_port="${MASTER_PORT:-29500}")
else
  # One machine: the rendezvous stays on loopback.
  rdzv=(--standalone)
fi

exec python -m torch.distributed.run "${rdzv[@]}" --nproc_per_node="${nproc}" -m distnlp.cli.main train "${device_args[@]}" "$@"
