"""Test setup: float64 everywhere (tolerances in the tests assume it)."""

import jax

jax.config.update("jax_enable_x64", True)
