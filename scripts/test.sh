#!/usr/bin/env bash
# The README's test command: installs what the tests need from the project's
# own files (Debian peers, the virtual environment, the control plane, each
# reused when already present), then runs the whole suite. Arguments go to
# pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup-system.sh
VENV="$(bash scripts/setup-python.sh)"
bash tests/harness/build-controlplane.sh >/dev/null
exec "$VENV/bin/python" -m pytest "$@"
