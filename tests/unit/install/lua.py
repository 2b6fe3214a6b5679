"""Run an Argo CD health script under the Lua interpreter, as Argo CD would.

Argo CD hands the live object to the script as the global `obj` (a Lua
table converted from JSON, numbers as doubles) and reads back the returned
table's `status` and `message`. Here the object becomes a Lua table literal
written from Python, so no Lua JSON library is needed, and the script runs in
an environment holding only the few functions Argo CD's sandbox offers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.unit.install.paths import ARGOCD

LUA = "lua5.4"
_BUILDER = "build-argocd-cm.py"
_BUILT = Path(tempfile.mkdtemp(prefix="modelship-health-"))

# The script sees these and nothing else: no io, os, require or load.
_DRIVER = """\
local source = {script}
local env = {{
  obj = {obj},
  ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring,
  tonumber = tonumber, string = string, table = table, math = math,
}}
local check = assert(loadfile(source, "t", env))
local hs = check()
assert(type(hs) == "table", "the health script must return a table")
io.write(tostring(hs.status), "\\n", tostring(hs.message or ""))
"""


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def lua_available() -> bool:
    return shutil.which(LUA) is not None


def to_lua(value: Any, *, floats: bool = False) -> str:
    """A Lua expression for a JSON value; JSON null becomes nil (an absent field)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value) if floats else value
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"JSON has no {number!r}")
        return repr(number)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v, floats=floats) for v in value) + "}"
    if isinstance(value, dict):
        fields = (
            f"[{_lua_string(str(k))}] = {to_lua(v, floats=floats)}"
            for k, v in value.items() if v is not None
        )
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _lua_string(text: str) -> str:
    # Decimal escapes for every byte outside printable ASCII read the same in
    # every Lua version (5.1's gopher-lua in Argo CD included).
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def health_script(name: str) -> Path:
    """A kind's check as Argo CD gets it (`build-argocd-cm.py`'s `script`), in a file."""
    path = _BUILT / name
    if not path.exists():
        spec = importlib.util.spec_from_file_location("build_argocd_cm", ARGOCD / _BUILDER)
        builder = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(builder)  # type: ignore[union-attr]
        _BUILT.mkdir(parents=True, exist_ok=True)
        path.write_text(builder.script(name))
    return path


def run_health(script: Path, obj: dict[str, Any], *, floats: bool = False) -> Health:
    """Evaluate `script` on `obj`; raise with Lua's own message when the script fails."""
    driver = _DRIVER.format(script=_lua_string(str(script)), obj=to_lua(obj, floats=floats))
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(driver)
        file.flush()
        done = subprocess.run([LUA, file.name], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"{script.name} failed on the object: {done.stderr.strip()}")
    status, _, message = done.stdout.partition("\n")
    return Health(status=status, message=message)


def load_fixture(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expectation, object) from a fixture file; see fixtures/README.md for the format."""
    data = json.loads(path.read_text())
    return data["expect"], data["object"]
