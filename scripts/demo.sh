#!/usr/bin/env bash
# The README's first command: installs what the demo needs from the project's
# own files (reusing caches), then runs Modelship's demo on the local control
# plane. `--keep` leaves the environment up for exploring.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup-system.sh
VENV="$(bash scripts/setup-python.sh)"
bash tests/harness/build-controlplane.sh >/dev/null
exec "$VENV/bin/python" -m tests.harness.demo "$@"
