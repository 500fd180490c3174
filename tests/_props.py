"""Reusable operator properties for the tests (sigpy-style), not collected by pytest.

* :func:`assert_adjoint` - the dot-product test ``<A x, y> = <x, A^H y>``;
* :func:`assert_linear` - ``A(a x + b y) = a A x + b A y`` (complex or real scalars);
* :func:`assert_unitary` - ``||A x|| = ||x||`` and ``<A x, A y> = <x, y>``;
* :func:`no_recompile` - a context manager that fails when XLA compiles anything inside it,
  counted through the public ``jax.monitoring`` compile events (names of what compiled
  from ``jax.log_compiles`` go into the failure message).

Tolerances are the caller's: pass the rounding level of the dtype in use.
"""

from __future__ import annotations

import contextlib
import logging

import jax
import jax.numpy as jnp
import numpy as np

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def random_complex(rng, shape, dtype=np.complex128):
    """Standard complex Gaussian array of ``shape`` (numpy, ``dtype``)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _dot(u, v):
    return complex(jnp.vdot(jnp.ravel(u), jnp.ravel(v)))


def assert_adjoint(A, AH, x_shape, y_shape, *, rng, rtol, dtype=np.complex128, trials: int = 2):
    """Dot-product test: ``<A x, y> == <x, A^H y>`` for random complex ``x``, ``y``.

    Args:
        A, AH: the operator and its claimed adjoint (callables).
        x_shape, y_shape: domain and range shapes.
        rng: numpy Generator.
        rtol: tolerance relative to ``|<A x, y>|``.
    """
    for _ in range(trials):
        x, y = random_complex(rng, x_shape, dtype), random_complex(rng, y_shape, dtype)
        lhs, rhs = _dot(A(jnp.asarray(x)), y), _dot(x, AH(jnp.asarray(y)))
        assert abs(lhs - rhs) <= rtol * abs(lhs), (lhs, rhs)


def assert_linear(A, x_shape, *, rng, rtol, dtype=np.complex128, complex_scalars: bool = True):
    """``A(a x + b y) == a A(x) + b A(y)``.

    ``complex_scalars=True`` checks complex linearity; ``False`` only real linearity
    (R-linear maps such as the widely-linear true derivative).
    """
    x, y = random_complex(rng, x_shape, dtype), random_complex(rng, x_shape, dtype)
    if complex_scalars:
        a, b = complex(*rng.standard_normal(2)), complex(*rng.standard_normal(2))
    else:
        a, b = float(rng.standard_normal()), float(rng.standard_normal())
    lhs = A(jnp.asarray(a * x + b * y))
    rhs = a * A(jnp.asarray(x)) + b * A(jnp.asarray(y))
    err = float(jnp.linalg.norm(jnp.ravel(lhs - rhs)))
    assert err <= rtol * float(jnp.linalg.norm(jnp.ravel(rhs))), err


def assert_not_complex_linear(A, x_shape, *, rng, min_rel: float, dtype=np.complex128):
    """``A(i x) != i A(x)`` by at least ``min_rel`` relative: the map is widely, not complex, linear."""
    x = jnp.asarray(random_complex(rng, x_shape, dtype))
    Ax = A(x)
    err = float(jnp.linalg.norm(jnp.ravel(A(1j * x) - 1j * Ax)))
    assert err >= min_rel * float(jnp.linalg.norm(jnp.ravel(Ax))), err


def assert_unitary(A, x_shape, *, rng, rtol, dtype=np.complex128):
    """``||A x|| == ||x||`` and ``<A x, A y> == <x, y>`` for random complex ``x``, ``y``."""
    x, y = random_complex(rng, x_shape, dtype), random_complex(rng, x_shape, dtype)
    Ax, Ay = A(jnp.asarray(x)), A(jnp.asarray(y))
    nx = float(np.linalg.norm(x))
    assert abs(float(jnp.linalg.norm(jnp.ravel(Ax))) - nx) <= rtol * nx
    assert abs(_dot(Ax, Ay) - _dot(x, y)) <= rtol * nx * float(np.linalg.norm(y))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if "ompil" in msg:
            self.messages.append(msg.splitlines()[0][:200])


@contextlib.contextmanager
def count_compiles():
    """Yield a list that receives one entry per XLA backend compilation inside the block.

    Counted with ``jax.monitoring`` (event ``/jax/core/compile/backend_compile_duration``);
    with ``jax.log_compiles`` on, the compile log messages are kept in ``.messages`` of
    the yielded list's ``log`` attribute for error reports.
    """
    events = _Events()

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            events.append(event)

    handler = _Collect()
    jax_log = logging.getLogger("jax")
    jax_log.addHandler(handler)
    old_level = jax_log.level
    jax_log.setLevel(logging.WARNING)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with jax.log_compiles(True):
            yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax_log.removeHandler(handler)
        jax_log.setLevel(old_level)
        events.log = handler.messages


class _Events(list):
    log: list = []


@contextlib.contextmanager
def no_recompile():
    """Fail if anything is compiled inside the block (run the code once before, to warm up)."""
    with count_compiles() as events:
        yield
    assert not events, f"{len(events)} compilation(s) inside a no-recompile block: {events.log}"
