"""Test setup: float64 everywhere (tolerances in the tests assume it); the command line's
persistent compilation cache off, so tests never write into the user's cache folder
(tests/test_jit_cache.py turns it on in a temporary folder)."""

import os

import jax

os.environ.setdefault("RAKIJAX_NO_CACHE", "1")
jax.config.update("jax_enable_x64", True)
