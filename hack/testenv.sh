#!/usr/bin/env bash
# Build the test binaries (etcd, kube-apiserver, kube-controller-manager, kubectl, helm) from the Go module
# proxy at pinned versions and cache them outside the repository. A warm cache makes this a no-op.
#
#   hack/testenv.sh            build what is missing, print the bin directory
#   hack/testenv.sh --print    print the bin directory only (no build)
#
# Nothing here downloads a prebuilt binary: every binary is compiled from its Go module.
set -euo pipefail

K8S_VERSION="${ASSAY_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ASSAY_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${ASSAY_HELM_VERSION:-v3.19.5}"

CACHE_ROOT="${ASSAY_TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/assay/testbin}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"

if [[ "${1:-}" == "--print" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

log() { echo "testenv: $*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing '$1': install Go (https://go.dev/dl) or see README"; exit 1; }; }

all_present() {
  for b in etcd kube-apiserver kube-controller-manager kubectl helm; do
    [[ -x "$BIN_DIR/$b" ]] || return 1
  done
}

if all_present; then
  echo "$BIN_DIR"
  exit 0
fi

need go
mkdir -p "$BIN_DIR"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)

build_kubernetes() {
  [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/kube-controller-manager" && -x "$BIN_DIR/kubectl" ]] && return 0
  local work; work=$(mktemp -d)
  log "building kubernetes $K8S_VERSION in $work"
  (
    cd "$work"
    go mod init assay.dev/testbin-k8s >/dev/null 2>&1
    local gomod staging minor
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    # k8s.io/kubernetes pins its staging modules at v0.0.0 via ./staging replaces; point each at the
    # published module of the same release (v1.X.Y -> v0.X.Y).
    staging="v0.${K8S_VERSION#v1.}"
    for mod in $(grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$gomod" | awk '{print $1}'); do
      go mod edit -replace="$mod=$mod@$staging"
    done
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
    go mod download
    minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local ldflags=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    done
    for cmd in kube-apiserver kube-controller-manager kubectl; do
      log "go build $cmd"
      go build -tags tools -trimpath -ldflags "-s -w $ldflags" -o "$BIN_DIR/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
      mv "$BIN_DIR/$cmd.tmp" "$BIN_DIR/$cmd"
    done
  )
  rm -rf "$work"
}

build_etcd() {
  [[ -x "$BIN_DIR/etcd" ]] && return 0
  local work; work=$(mktemp -d)
  log "building etcd $ETCD_VERSION in $work"
  (
    cd "$work"
    go mod init assay.dev/testbin-etcd >/dev/null 2>&1
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go mod tidy -e >/dev/null 2>&1 || true
    go build -tags tools -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
  )
  rm -rf "$work"
}

build_helm() {
  [[ -x "$BIN_DIR/helm" ]] && return 0
  log "building helm $HELM_VERSION"
  GOBIN="$BIN_DIR" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_etcd
build_helm
build_kubernetes

all_present || { log "some binaries are missing in $BIN_DIR"; exit 1; }
log "built in $(( $(date +%s) - start ))s"
echo "$BIN_DIR"
