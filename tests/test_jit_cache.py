"""Persistent compilation cache: written by one process, read by the next (subprocesses,
so that the global jax config of the test process is untouched)."""

import json
import os
import subprocess
import sys

from rakijax import jit_cache

_SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp
from rakijax.jit_cache import enable_persistent_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
path = enable_persistent_cache(sys.argv[1], min_compile_time_s=0.0)
f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 3.0)
f(jnp.ones((7, 5))).block_until_ready()
print(json.dumps({"path": None if path is None else str(path),
                  "hits": sum("cache_hits" in e for e in events)}))
"""


def _run(folder, **env):
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(folder)], capture_output=True, text=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu", **env}, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_from_the_cache(tmp_path):
    folder = tmp_path / "cache"
    first = _run(folder, RAKIJAX_NO_CACHE="0")
    assert first["path"] == str(folder) and first["hits"] == 0
    assert any(folder.iterdir())  # the executable was written
    second = _run(folder, RAKIJAX_NO_CACHE="0")
    assert second["hits"] >= 1  # ... and read back instead of compiled


def test_opt_out(tmp_path, monkeypatch):
    folder = tmp_path / "off"
    assert _run(folder, RAKIJAX_NO_CACHE="1")["path"] is None
    assert not folder.exists()
    monkeypatch.setenv("RAKIJAX_CACHE_DIR", str(tmp_path / "env"))
    assert jit_cache.default_cache_dir() == tmp_path / "env"
