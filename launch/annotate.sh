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

LAUNCHER="launch/annotate.sh" WORKER_NOUN="actor"
# shellcheck source=launch/local_ray.sh
. "$(dirname "$0")/local_ray.sh"
distnlp annotate "$@" "${ray_args[@]}"
