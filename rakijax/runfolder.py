"""Run folders that never lose a user's work: checked before the work, written atomically.

:func:`check_run_dir` refuses, before any work, a non-empty folder without ``overwrite``, a
path that is a file, and a place that cannot be written. :func:`run_folder` stages the
whole run in a temporary sibling folder and only then puts it in place: a new folder is
one ``rename``; an existing one (``overwrite``) is swapped in with one atomic exchange
(Linux ``renameat2(RENAME_EXCHANGE)``, else two renames) after hard-linking the user's own
files (anything a previous rakijax run did not record as its output in ``config.json``)
into the staged folder. SIGINT is deferred while the run is put in place, so an interrupt
leaves either the old folder or the complete new one. Files and folders get the user's
umask (not the 0600/0700 of temporary files). :func:`atomic_write` is the one atomic
single-file writer (run files, sweep shards, experiment tables).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Mapping

from .config import jsonable

__all__ = ["RESULT_FILES", "OutputExistsError", "check_run_dir", "run_folder", "atomic_write", "write_json"]

#: Files every run writes (always ours).
RESULT_FILES = ("results.h5", "metrics.json", "config.json")


class OutputExistsError(FileExistsError):
    """The output folder exists and is not empty (and ``overwrite`` was not given)."""


# ----------------------------------------------------------------------------- permissions
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fix_mode(path: Path, directory: bool = False) -> None:
    """Give a file made by ``tempfile`` (0600/0700) the mode the user's umask asks for."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ----------------------------------------------------------------------------- single files
def atomic_write(path, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Write ``path`` atomically: ``write(f)`` into a temporary file beside it, then ``os.replace``.

    The file exists completely or not at all, with the user's umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _fix_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj: Mapping[str, Any]) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/Inf become ``null``)."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text))


# ----------------------------------------------------------------------------- run folders
def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_run_dir(path, overwrite: bool = False) -> Path:
    """Check, before any long work, that a run can be written to ``path``.

    Raises:
        OutputExistsError: ``path`` is a non-empty folder and ``overwrite`` is False.
        NotADirectoryError: ``path`` (or a parent) exists and is not a folder.
        PermissionError: the folder or the nearest existing parent cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"output path {str(p)!r} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {str(p)!r} exists and is not empty; choose another --out or pass --overwrite")
    base = _nearest_existing(p.parent)
    if not base.is_dir():
        raise NotADirectoryError(f"cannot create output folder {str(p)!r}: {str(base)!r} is not a folder")
    try:  # the staging folder is a sibling of the run folder: test exactly that
        tempfile.TemporaryDirectory(dir=base, prefix=".rakijax-check-").cleanup()
    except OSError as e:
        raise PermissionError(f"cannot write the output folder {str(p)!r}: {str(base)!r} is not writable ({e.strerror})") from None
    return p


def _previous_outputs(p: Path) -> set[str]:
    try:
        names = json.loads((p / "config.json").read_text()).get("outputs", [])
    except (OSError, ValueError, AttributeError):
        names = []
    ok = {n for n in names if isinstance(n, str) and n == os.path.basename(n) and n not in ("", ".", "..")}
    return ok | set(RESULT_FILES)


def _link_user_files(old: Path, new: Path) -> None:
    """Hard-link (copy where linking fails) what is not a rakijax output from ``old`` into ``new``."""
    ours = _previous_outputs(old)
    for item in old.iterdir():
        if item.name in ours or (new / item.name).exists():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, new / item.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, new / item.name, follow_symlinks=False)


def _link_or_copy(src, dst, *, follow_symlinks: bool = True):
    if Path(src).is_symlink():
        os.symlink(os.readlink(src), dst)
        return dst
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=follow_symlinks)
    return dst


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


@contextmanager
def _sigint_deferred():
    """Hold a SIGINT until the block is done (main thread only), then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


def _put_in_place(stage: Path, target: Path) -> None:
    with _sigint_deferred():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stage, target)
            return
        _link_user_files(target, stage)
        if _exchange(stage, target):
            shutil.rmtree(stage, ignore_errors=True)  # now holds the old run
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(stage, target)
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def run_folder(path, overwrite: bool = False):
    """Stage a run folder and put it in place atomically when the block succeeds.

    Yields the staging folder (write every file of the run into it). On an exception or
    interrupt the staging folder is removed and ``path`` is left as it was; on success
    the staged run replaces ``path`` (see the module docstring).
    """
    target = check_run_dir(path, overwrite).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    _fix_mode(stage, directory=True)
    try:
        yield stage
        _put_in_place(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
