#!/usr/bin/env bash
# Installs the Debian packages Modelship's tests talk to as real peers:
# Prometheus and promtool (scrapes and rule tests) and Lua (Argo CD health
# scripts). Skips apt entirely when everything is already there.
set -euo pipefail
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v lua5.4 >/dev/null || need+=(lua5.4)
if (( ${#need[@]} )); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing ${need[*]}: install them with apt-get (needs root)"; exit 1
  fi
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
log "system packages present"
