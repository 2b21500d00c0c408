# Helpers for extensions/molecule/<scenario>/prerequisites scripts (docs/testing-static.md).
# Source it, then call the checks; the first one that fails prints the reason and exits 77,
# which tests/molecule/run reports as "skipped: <reason>". Example:
#
#   #!/usr/bin/env bash
#   # Scenario microk8s: installs the snap on this machine.
#   source "$MLFLOW_K8S_PREREQUISITES"
#   need_root
#   need_systemd
#   need_command snap
#   need_url https://api.snapcraft.io "the snap store"
#
# tests/molecule/run exports MLFLOW_K8S_PREREQUISITES (this file), MLFLOW_K8S_ROOT (the
# collection root) and puts the venv on PATH; the script runs in the collection root.

MOLECULE_SKIP_RC=77

# skip REASON...: end the check, asking the runner to skip the scenario.
skip() {
  echo "$*"
  exit "$MOLECULE_SKIP_RC"
}

# need_command NAME...: every NAME is an executable on PATH.
need_command() {
  local name
  for name in "$@"; do
    command -v "$name" >/dev/null 2>&1 || skip "needs the command '$name', not found on PATH"
  done
}

# need_root: running as root (or passwordless sudo works).
need_root() {
  ((EUID == 0)) && return 0
  sudo -n true >/dev/null 2>&1 || skip "needs root or passwordless sudo"
}

# need_systemd: systemd is PID 1 (services can be started and enabled).
need_systemd() {
  [[ -d /run/systemd/system ]] || skip "needs systemd as init (no /run/systemd/system)"
}

# need_python_module MODULE...: the venv's Python imports every MODULE.
need_python_module() {
  local name
  for name in "$@"; do
    python -c "import $name" >/dev/null 2>&1 || skip "needs the Python module '$name' in $(command -v python)"
  done
}

# need_docker: a Docker engine answers.
need_docker() {
  need_command docker
  docker info >/dev/null 2>&1 || skip "needs a running Docker engine ('docker info' fails)"
}

# need_kube_api: a Kubernetes API answers: the cluster tests/molecule/run resolved and exported
# as KUBECONFIG (tests/harness/cluster.py: KUBECONFIG, else this machine's rig). Without one the
# scenario is skipped, or fails (exit 1) when MLFLOW_K8S_NEED_CLUSTER=1 (CI: a missing cluster
# is a failure there, not a skip). MLFLOW_K8S_NO_CLUSTER: the runner's reason, when it found none.
need_kube_api() {
  local why=""
  if [[ -n "${MLFLOW_K8S_NO_CLUSTER:-}" ]]; then
    why="$MLFLOW_K8S_NO_CLUSTER"
  elif [[ -z "${KUBECONFIG:-}" ]]; then
    why="no KUBECONFIG, and no rig up on this machine (tests/rig/up)"
  elif ! python - <<'EOF' >/dev/null 2>&1; then
from kubernetes import client, config

config.load_kube_config()
client.VersionApi().get_code(_request_timeout=5)
EOF
    why="the cluster in KUBECONFIG=$KUBECONFIG does not answer"
  fi
  [[ -n $why ]] || return 0
  if [[ ${MLFLOW_K8S_NEED_CLUSTER:-} == 1 ]]; then
    echo "needs a Kubernetes API, and MLFLOW_K8S_NEED_CLUSTER=1 makes a missing one a failure: $why"
    exit 1
  fi
  skip "needs a Kubernetes API: $why"
}

# need_url URL [WHAT]: URL answers an HTTP(S) request within 5 s (any HTTP status counts).
need_url() {
  local url="$1" what="${2:-$1}"
  python - "$url" <<'EOF' >/dev/null 2>&1 || skip "needs $what ($url), not reachable from here"
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=5)  # noqa: S310
except urllib.error.HTTPError:
    pass
EOF
}

# need_memory_mb MB: at least MB MiB of memory available.
need_memory_mb() {
  local have
  have=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
  ((have >= $1)) || skip "needs ${1} MiB of available memory, has ${have} MiB"
}
