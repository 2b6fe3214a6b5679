#!/usr/bin/env bash
# Creates (or reuses) Modelship's virtual environment outside the repository
# and installs the project with its test and training extras into it. The pip
# cache stays in place, so PyTorch is downloaded once per machine.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${MODELSHIP_CACHE:-$HOME/.cache/modelship}"
VENV="${MODELSHIP_VENV:-$CACHE/venv}"
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment in $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel
fi

stamp="$VENV/.modelship-installed"
want="$(sha256sum "$here/pyproject.toml" | cut -c1-16):$here"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing modelship and its dependencies (the first time downloads PyTorch, several GB)"
  t=$(date +%s)
  "$VENV/bin/pip" install --progress-bar off -e "$here[test]" >&2
  echo "$want" > "$stamp"
  log "installed in $(( $(date +%s) - t ))s"
else
  log "reusing $VENV"
fi
echo "$VENV"
