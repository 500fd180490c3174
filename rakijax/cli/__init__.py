"""The ``rakijax`` command: ``demo``, ``recon``, ``apply`` and ``sweep`` (one argparse tree, :mod:`.parser`).

A thin layer over :mod:`rakijax.pipeline` and :mod:`rakijax.results`. Bad input (missing
file, unknown format, missing HDF5 key, wrong rank, NaN/Inf, bad R, slice out of range, an
existing or unwritable output folder, ...) ends with one line ``rakijax: error: ...`` on
stderr and exit status 2; an interrupt with status 130 (a run being written is either
complete or not there); an unexpected internal failure with one line and status 1
(``--debug``, accepted anywhere on the line, shows the traceback). Progress is logged to
stderr.
"""

from __future__ import annotations

import logging
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from ..jit_cache import enable_persistent_cache
from .demo import cmd_demo
from .parser import build_parser
from .recon import cmd_apply, cmd_recon
from .sweep import cmd_sweep, spec_from_args

__all__ = ["main", "build_parser", "spec_from_args"]

_USER_ERRORS = (ValueError, KeyError, IndexError, FileNotFoundError, FileExistsError, NotADirectoryError,
                IsADirectoryError, PermissionError, FloatingPointError, OSError)
_COMMANDS = {"demo": cmd_demo, "recon": cmd_recon, "apply": cmd_apply, "sweep": cmd_sweep}


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(msg).split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rakijax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.quiet)
    enable_persistent_cache()  # compile once per machine (opt out: RAKIJAX_NO_CACHE=1)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("rakijax")]):  # log lines do not tear progress bars
            return int(_COMMANDS[args.command](args, ["rakijax", *argv]) or 0)
    except _USER_ERRORS as e:
        if args.debug:
            raise
        sys.stderr.write(f"rakijax: error: {_one_line(e)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rakijax: interrupted (nothing was written, or the run is complete)\n")
        return 130
    except Exception as e:  # an internal failure: one line, not a JAX traceback
        if args.debug:
            raise
        sys.stderr.write(f"rakijax: internal error ({type(e).__name__}): {_one_line(e)} (rerun with --debug)\n")
        return 1


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(quiet: bool = False) -> None:
    root = logging.getLogger("rakijax")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        root.addHandler(h)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
