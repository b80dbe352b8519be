#!/usr/bin/env bash
# Fetch the upstream CRDs the gateway adapters are tested against (Envoy AI Gateway's AIGatewayRoute, Gateway
# API's HTTPRoute) from the projects' Go modules at pinned versions, into a cache outside the repository, and
# print the directory. A warm cache makes this a no-op. The repository holds no copies of these CRDs.
#
#   hack/upstream-crds.sh            fetch what is missing, print the directory
#   hack/upstream-crds.sh --print    print the directory only (no fetch)
set -euo pipefail

AI_GATEWAY_VERSION="${ASSAY_AI_GATEWAY_VERSION:-v1.0.0}"
GATEWAY_API_VERSION="${ASSAY_GATEWAY_API_VERSION:-v1.6.3}"

CACHE_ROOT="${ASSAY_UPSTREAM_CRDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/assay/upstream-crds}"
DIR="$CACHE_ROOT/ai-gateway-$AI_GATEWAY_VERSION-gateway-api-$GATEWAY_API_VERSION"

# module|version|path inside the module
SOURCES=(
  "github.com/envoyproxy/ai-gateway|$AI_GATEWAY_VERSION|manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_aigatewayroutes.yaml"
  "github.com/envoyproxy/ai-gateway|$AI_GATEWAY_VERSION|manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_aiservicebackends.yaml"
  "sigs.k8s.io/gateway-api|$GATEWAY_API_VERSION|config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
)

if [[ "${1:-}" == "--print" ]]; then
  echo "$DIR"
  exit 0
fi

log() { echo "upstream-crds: $*" >&2; }

all_present() {
  local source
  for source in "${SOURCES[@]}"; do
    [[ -s "$DIR/$(basename "${source##*|}")" ]] || return 1
  done
}

if all_present; then
  echo "$DIR"
  exit 0
fi

command -v go >/dev/null || { log "missing 'go': install Go (https://go.dev/dl) or see README"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
staging="$work/crds"
mkdir -p "$staging"

declare -A module_dirs=()
for source in "${SOURCES[@]}"; do
  IFS='|' read -r module version path <<<"$source"
  key="$module@$version"
  if [[ -z "${module_dirs[$key]:-}" ]]; then
    log "go mod download $key"
    json=$(cd "$work" && go mod download -json "$key" 2>/dev/null || true)
    dir=$(sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p' <<<"$json")
    if [[ -z "$dir" || ! -d "$dir" ]]; then
      error=$(sed -n 's/^\s*"Error": "\(.*\)",\?$/\1/p' <<<"$json")
      log "cannot download $key: ${error:-no module directory reported}"
      exit 1
    fi
    module_dirs[$key]="$dir"
  fi
  file="${module_dirs[$key]}/$path"
  [[ -s "$file" ]] || { log "$key has no $path: the CRD moved in this version; update hack/upstream-crds.sh"; exit 1; }
  cp "$file" "$staging/"
done

mkdir -p "$CACHE_ROOT"
chmod -R u+w "$staging"
rm -rf "$DIR"
mv "$staging" "$DIR"
log "cached in $DIR"
echo "$DIR"
