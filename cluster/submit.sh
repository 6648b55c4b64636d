#!/usr/bin/env bash
# Submit a distnlp training run (or a Tune sweep, or pretraining) to a Ray cluster as a Ray job:
#   RAY_ADDRESS=http://HEAD:8265 bash cluster/submit.sh experiment=ewt_cnn distributed.num_workers=8
#   RAY_ADDRESS=http://HEAD:8265 bash cluster/submit.sh tune 'training.optimizer.learn_rate=tag(log,interval(1e-4,1e-2))' \
#       tune.num_samples=16 tune.max_concurrent=4 distributed.num_workers=2 training.output_dir=/shared/runs/tune
# A first argument train (the default), tune or pretrain names the command; everything else is a
# Hydra override for it, after distributed=ray (a tune trial then trains on its own replicas). The working directory
# (this repository, minus .gitignore'd files and what cluster/runtime_env.yaml excludes) is
# uploaded with the job; the cluster's image must have distnlp's dependencies installed (see
# cluster/cluster.yaml). Before uploading, cluster/upload_plan.py also leaves out every
# virtualenv (any directory with pyvenv.cfg, e.g. venv/ or env/), conda envs and large untracked
# files, and stops with a readable message naming the biggest paths if the upload would still be
# over Ray's 100 MiB limit (instead of an HTTP 413 from the dashboard).
# Extra `ray job submit` flags go in DISTNLP_SUBMIT_FLAGS, e.g. "--no-wait --submission-id run-7".
# On a cluster with token auth, export RAY_AUTH_TOKEN (or have ~/.ray/auth_token) first.
set -euo pipefail
cd "$(dirname "$0")/.."
command=train
case "${1:-}" in
  train|tune|pretrain) command="$1"; shift ;;
esac
: "${RAY_ADDRESS:?set RAY_ADDRESS to the cluster dashboard, e.g. http://127.0.0.1:8265}"
env_file="$(mktemp "${TMPDIR:-/tmp}/distnlp-runtime-env.XXXXXX")"
"${PYTHON:-python3}" cluster/upload_plan.py . cluster/runtime_env.yaml > "${env_file}"
log_file="$(mktemp "${TMPDIR:-/tmp}/distnlp-submit.XXXXXX")"
trap 'rm -f "${env_file}" "${log_file}"' EXIT
# A head that has just started answers "No available agent to submit job" until its job agent
# is up: retry that (and only that) for up to a minute; any other failure is the job's own.
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12; do
  set +e
  # shellcheck disable=SC2086
  ray job submit --address "${RAY_ADDRESS}" --working-dir . \
    --runtime-env "${env_file}" ${DISTNLP_SUBMIT_FLAGS:-} \
    -- distnlp "${command}" distributed=ray "$@" 2>&1 | tee "${log_file}"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "${rc}" -eq 0 ] || ! grep -q "No available agent to submit job" "${log_file}"; then
    exit "${rc}"
  fi
  echo "distnlp submit: the cluster's job agent is not up yet; retrying in 5 s (${attempt}/12)" >&2
  sleep 5
done
exit "${rc}"
