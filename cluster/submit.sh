#!/usr/bin/env bash
# Submit a distnlp training run to a Ray cluster as a Ray job:
#   RAY_ADDRESS=http://HEAD:8265 bash cluster/submit.sh experiment=ewt_cnn distributed.num_workers=8
# Everything after the script name is a Hydra override for `distnlp train`. The working directory
# (this repository, minus what cluster/runtime_env.yaml excludes) is uploaded with the job; the
# cluster's image must have distnlp's dependencies installed (see cluster/cluster.yaml).
# Extra `ray job submit` flags go in DISTNLP_SUBMIT_FLAGS, e.g. "--no-wait --submission-id run-7".
# On a cluster with token auth, export RAY_AUTH_TOKEN (or have ~/.ray/auth_token) first.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RAY_ADDRESS:?set RAY_ADDRESS to the cluster dashboard, e.g. http://127.0.0.1:8265}"
# shellcheck disable=SC2086
exec ray job submit --address "${RAY_ADDRESS}" --working-dir . \
  --runtime-env cluster/runtime_env.yaml ${DISTNLP_SUBMIT_FLAGS:-} \
  -- distnlp train distributed=ray "$@"
