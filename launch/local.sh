#!/usr/bin/env bash
# Train on this machine with Ray: one replica per local GPU, or CPU workers when there is none.
# Starts a local Ray bound to loopback (or reuses one already running on DISTNLP_RAY_PORT) and
# runs `distnlp train distributed=ray ...` with the Hydra overrides given here.
#
#   bash launch/local.sh                                   # default pipeline, demo corpus
#   bash launch/local.sh experiment=ewt_cnn training.max_steps=5000
#   DISTNLP_CPU_WORKERS=4 bash launch/local.sh             # CPU workers when no GPU is found
#
# The Ray started here is stopped again on exit; one that was already running is left alone.
set -euo pipefail

LAUNCHER="launch/local.sh" WORKER_NOUN="worker"
# shellcheck source=launch/local_ray.sh
. "$(dirname "$0")/local_ray.sh"
distnlp train "${ray_args[@]}" "$@"
