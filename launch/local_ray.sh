# Sourced by launch/local.sh and launch/annotate.sh: a local Ray bound to loopback, started here
# unless one already runs on DISTNLP_RAY_PORT, stopped again on exit if this script started it.
# Sets ADDRESS, workers, use_gpu and the array ray_args (the distributed=ray overrides that the
# caller's own arguments ($@) do not already set).

PORT="${DISTNLP_RAY_PORT:-6390}"
ADDRESS="127.0.0.1:${PORT}"
# Loopback only: with this set, every Ray port binds to 127.0.0.1 (single-machine runs).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# Token auth protects clusters reachable from the network; a loopback-only Ray needs none.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
# Idle OpenMP threads sleep instead of spinning (spinning collapses CPU throughput under load).
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

# Reuse a Ray only where something listens on the port: `ray status` against a closed port takes
# about 40 s to give up, a quarter of the demo's run time; bash's /dev/tcp is refused at once.
ray_running() { (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null && ray status --address "${ADDRESS}" >/dev/null 2>&1; }
started=0
# A temp dir of our own: on exit we stop exactly the Ray processes that name it (and what they
# started), never another user's or job's Ray on this host, as `ray stop` would.
# (Under /tmp, not $TMPDIR: Ray's socket paths must stay short.) Its logs are left, as Ray's are.
ray_temp="/tmp/distnlp-ray-${PORT}-$$"
if ! ray_running; then
  echo "${LAUNCHER}: starting a local Ray on ${ADDRESS} (${workers} ${WORKER_NOUN}(s), GPU: ${use_gpu})" >&2
  cpus=$(( $(nproc) > workers ? $(nproc) : workers ))
  ray start --head --node-ip-address=127.0.0.1 --port="${PORT}" --num-cpus="${cpus}" --temp-dir="${ray_temp}" \
    --include-dashboard=false --disable-usage-stats >/dev/null
  started=1
fi
cleanup() {
  if [ "${started}" = 1 ]; then
    python -m distnlp.ray_backend.local_stop "${ray_temp}" "${PORT}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# Our defaults; an override the caller gives for the same key replaces it.
defaults=("distributed=ray" "distributed.num_workers=${workers}" "distributed.use_gpu=${use_gpu}" "distributed.address=${ADDRESS}")
ray_args=()
for d in "${defaults[@]}"; do
  key="${d%%=*}"
  given=0
  for a in "$@"; do [ "${a%%=*}" = "${key}" ] && given=1; done
  [ "${given}" = 0 ] && ray_args+=("${d}")
done
