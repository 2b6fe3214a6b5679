"""MLServer's own virtual environment (its pins conflict with Modelship's).

Created on first use at /root/.cache/modelship/mlserver-venv (override with
MODELSHIP_MLSERVER_VENV) with MLServer 1.7 and onnxruntime from PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MLSERVER_VENV = Path(os.environ.get("MODELSHIP_MLSERVER_VENV",
                                    "/root/.cache/modelship/mlserver-venv"))
# uvloop 0.22 dropped the implicit event loop that MLServer 1.7's workers rely on.
REQUIREMENTS = ["mlserver==1.7.1", "onnxruntime==1.32.0", "numpy<3", "uvloop<0.22"]


def ensure_mlserver_venv(venv: Path = MLSERVER_VENV) -> Path:
    """The venv's `mlserver` executable, installing it first if needed."""
    executable = venv / "bin" / "mlserver"
    stamp = venv / ".modelship-requirements"
    wanted = " ".join(REQUIREMENTS)
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return executable
    print(f"[bench] creating MLServer's virtual environment in {venv} (one time)",
          file=sys.stderr, flush=True)
    base = os.environ.get("MODELSHIP_MLSERVER_PYTHON", "python3")
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return executable


if __name__ == "__main__":
    print(ensure_mlserver_venv())
