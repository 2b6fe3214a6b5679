#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by Modelship's tests and demo:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from
# k8s.io/kubernetes (every staging module pinned to the same release through
# `replace` lines), and helm from helm.sh/helm built against that same
# client-go. Everything comes from the Go module proxy.
#
# The binaries land in $MODELSHIP_CACHE/controlplane/<release>/bin and are
# reused when present, so only the first run on a machine pays for the build.
set -euo pipefail

K8S_VERSION="${MODELSHIP_K8S_VERSION:-v1.37.2}"
HELM_VERSION="${MODELSHIP_HELM_VERSION:-v4.3.2}"
CACHE="${MODELSHIP_CACHE:-$HOME/.cache/modelship}"
ROOT="$CACHE/controlplane/$K8S_VERSION"
BIN="$ROOT/bin"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

export GOPATH="${GOPATH:-$HOME/go}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

log() { printf '[controlplane %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

all_built() {
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if all_built; then
  log "reusing binaries for $K8S_VERSION in $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
mkdir -p "$ROOT/k8s" "$ROOT/helm" "$BIN"

# The staging modules that k8s.io/kubernetes requires at v0.0.0 are read from
# its own go.mod, so a new release needs no edit here.
log "resolving k8s.io/kubernetes@$K8S_VERSION"
gomod=$(cd "$ROOT/k8s" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
mapfile -t STAGING < <(awk '$2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}' "$gomod" | sort -u)
log "pinning ${#STAGING[@]} staging modules to $STAGING_VERSION"

write_replaces() {
  for m in "${STAGING[@]}"; do
    echo "replace $m => $m $STAGING_VERSION"
  done
}

ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local v
  for v in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s ' \
      "$v" "$K8S_VERSION" "$v" "$v" "$minor"
    printf -- '-X %s.gitTreeState=clean -X %s.buildDate=1970-01-01T00:00:00Z ' "$v" "$v"
  done
  printf -- '-s -w'
}

# --- Kubernetes and etcd: one module, so etcd is the release's own pick. ---
cd "$ROOT/k8s"
cat > go.mod <<GOMOD
module modelship.local/controlplane

go 1.26

$(write_replaces)
GOMOD
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
mkdir -p etcd
cat > etcd/main.go <<'GO'
// Command etcd starts the etcd server that this Kubernetes release pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
log "go get k8s.io/kubernetes@$K8S_VERSION"
go get "k8s.io/kubernetes@$K8S_VERSION" >&2
go mod tidy -e >&2 || true
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [[ -x "$BIN/$cmd" ]] && continue
  log "building $cmd (a cold build takes several minutes)"
  t=$(date +%s)
  go build -trimpath -ldflags "$(ldflags)" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
  mv "$BIN/$cmd.tmp" "$BIN/$cmd"
  log "built $cmd in $(( $(date +%s) - t ))s"
done
if [[ ! -x "$BIN/etcd" ]]; then
  log "building etcd"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" ./etcd >&2
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

# --- helm: its own module, with client-go pinned to the same release. ---
if [[ ! -x "$BIN/helm" ]]; then
  cd "$ROOT/helm"
  cat > go.mod <<GOMOD
module modelship.local/helm

go 1.26

$(write_replaces)
GOMOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v4/cmd/helm"
GO
  log "go get helm.sh/helm/v4@$HELM_VERSION"
  go get "helm.sh/helm/v4@$HELM_VERSION" >&2
  go mod tidy -e >&2 || true
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  helm_ld="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  helm_ld+=" -X helm.sh/helm/v4/pkg/chart/common.k8sVersionMajor=1"
  helm_ld+=" -X helm.sh/helm/v4/pkg/chart/common.k8sVersionMinor=$minor"
  helm_ld+=" -X helm.sh/helm/v4/internal/version.kubeClientVersionMajor=1"
  helm_ld+=" -X helm.sh/helm/v4/internal/version.kubeClientVersionMinor=$minor"
  log "building helm"
  go build -trimpath -ldflags "$helm_ld" -o "$BIN/helm.tmp" helm.sh/helm/v4/cmd/helm >&2
  mv "$BIN/helm.tmp" "$BIN/helm"
fi

log "control plane $K8S_VERSION built in $(( $(date +%s) - start ))s"
echo "$BIN"
