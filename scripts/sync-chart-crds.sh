#!/usr/bin/env bash
# Copies the generated CRDs from crds/ into the Helm chart's crds/ folder, so
# `helm install` and `kubectl apply -f crds/` create the same API. Files in the
# chart's folder that crds/ no longer has are removed, except Kopf's peering
# CRDs (*.kopf.dev.yaml), which belong to the chart alone.
# tests/unit/install/test_chart_crds.py fails when the two folders drift.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/crds"
dst="$here/charts/modelship/crds"
mkdir -p "$dst"
shopt -s nullglob
for f in "$dst"/*.yaml; do
  name="$(basename "$f")"
  [[ "$name" == *.kopf.dev.yaml ]] && continue
  if [[ ! -e "$src/$name" ]]; then
    rm -- "$f"
    echo "removed $name"
  fi
done
for f in "$src"/*.yaml; do
  name="$(basename "$f")"
  if ! cmp -s "$f" "$dst/$name"; then
    cp -- "$f" "$dst/$name"
    echo "copied $name"
  fi
done
