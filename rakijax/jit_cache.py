"""Compile once per machine: JAX's persistent compilation cache in a user cache directory.

XLA compiles every jitted program on its first call in a process (a paper-size RAKI
training step ~1-5 s, an exact g-map 9-33 s on a GPU). With the persistent cache
on, the compiled executables are written to disk and later processes load them
instead of compiling again. The library never turns the cache on by itself (no
global ``jax.config`` change at import); the command line, the sweeps and the
experiment scripts call :func:`enable_persistent_cache` once at start-up.

Opt out with the environment variable ``RAKIJAX_NO_CACHE=1``; choose the folder
with ``path=`` or ``RAKIJAX_CACHE_DIR``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["enable_persistent_cache", "default_cache_dir", "cache_disabled"]

log = logging.getLogger(__name__)

#: Programs that compile faster than this are not written (loading costs about as much).
MIN_COMPILE_TIME_S = 0.1


def cache_disabled() -> bool:
    """True when ``RAKIJAX_NO_CACHE`` is set to anything but ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get("RAKIJAX_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def default_cache_dir() -> Path:
    """``$RAKIJAX_CACHE_DIR``, else the user cache folder of the platform + ``rakijax/jax``.

    Linux ``$XDG_CACHE_HOME`` or ``~/.cache``; macOS ``~/Library/Caches``; Windows
    ``%LOCALAPPDATA%``.
    """
    env = os.environ.get("RAKIJAX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rakijax" / "jax"


def enable_persistent_cache(path: str | os.PathLike | None = None, *,
                            min_compile_time_s: float = MIN_COMPILE_TIME_S) -> Path | None:
    """Turn on JAX's persistent compilation cache (idempotent).

    Sets ``jax_compilation_cache_dir`` and ``jax_persistent_cache_min_compile_time_secs``.
    Call it before the first compilation of the process (earlier compilations are
    not written). A folder that cannot be created is logged and the cache stays off:
    a cache is never a reason to fail.

    Args:
        path: cache folder (default :func:`default_cache_dir`).
        min_compile_time_s: only programs that took longer to compile are written.

    Returns:
        The cache folder, or ``None`` when ``RAKIJAX_NO_CACHE`` is set or the folder
        is not writable.
    """
    if cache_disabled():
        log.debug("persistent compilation cache off (RAKIJAX_NO_CACHE is set)")
        return None
    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("persistent compilation cache off: cannot create %s (%s)", folder, e)
        return None
    if not os.access(folder, os.W_OK):
        log.warning("persistent compilation cache off: %s is not writable", folder)
        return None
    import jax

    if jax.config.jax_compilation_cache_dir != str(folder):
        jax.config.update("jax_compilation_cache_dir", str(folder))
        try:  # a cache initialised for another folder (or none) earlier in the process
            from jax._src import compilation_cache

            compilation_cache.reset_cache()
        except Exception:  # pragma: no cover - private API moved; the config still applies to new processes
            pass
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    log.debug("persistent compilation cache in %s", folder)
    return folder
