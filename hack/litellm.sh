#!/usr/bin/env bash
# Install the LiteLLM proxy that the tests, the demo and the benchmarks start as a server, into its own venv
# outside the repository. assay never imports litellm: it talks to the proxy over HTTP only.
#
#   hack/litellm.sh            install when missing, print the venv's bin directory
#   hack/litellm.sh --print    print the bin directory only (no install)
#
# The version is pinned exactly. Never 1.82.7 or 1.82.8: those releases were compromised on PyPI.
set -euo pipefail

LITELLM_VERSION="1.108.7"
# Two packages litellm[proxy] leaves to larger extras, pinned: prometheus-client (the prometheus callback,
# i.e. /metrics; without it the proxy exits at startup) and prisma (without it a request lacking a key gets
# a 500 instead of a 401, because the auth error handler imports prisma). No database is configured.
PROMETHEUS_CLIENT_VERSION="0.26.0"
PRISMA_VERSION="0.15.0"
case "$LITELLM_VERSION" in
  1.82.7 | 1.82.8)
    echo "litellm: refusing $LITELLM_VERSION, a compromised release" >&2
    exit 1
    ;;
esac

VENV="${ASSAY_LITELLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/assay/litellm-$LITELLM_VERSION}"
BIN_DIR="$VENV/bin"

if [[ "${1:-}" == "--print" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

log() { echo "litellm: $*" >&2; }

installed() {
  [[ -x "$BIN_DIR/litellm" ]] || return 1
  # The console script must exist and the distribution must report the pinned version.
  local got
  got=$("$BIN_DIR/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null) || return 1
  [[ "$got" == "$LITELLM_VERSION" ]] || return 1
  "$BIN_DIR/python" -c 'import prometheus_client, prisma' 2>/dev/null
}

if installed; then
  echo "$BIN_DIR"
  exit 0
fi

PYTHON="${ASSAY_LITELLM_PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { log "missing '$PYTHON': install Python 3.11+"; exit 1; }

start=$(date +%s)
log "installing litellm[proxy]==$LITELLM_VERSION into $VENV"
[[ -x "$BIN_DIR/python" ]] || "$PYTHON" -m venv "$VENV"
"$BIN_DIR/python" -m pip install --quiet --disable-pip-version-check \
  "litellm[proxy]==$LITELLM_VERSION" "prometheus-client==$PROMETHEUS_CLIENT_VERSION" "prisma==$PRISMA_VERSION" >&2
installed || { log "install finished but litellm $LITELLM_VERSION is not reported by $BIN_DIR"; exit 1; }
log "installed in $(($(date +%s) - start)) s"
echo "$BIN_DIR"
