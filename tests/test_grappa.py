"""GRAPPA calibration and application against independent references.

References used here: a numpy loop GRAPPA (explicit source/target matrices built
position by position, regularised normal equations solved with numpy), a numpy loop
k-space application with circular edges, exactly predictable k-space (phase-ramp
coils), and the image-space form (per-pixel unmixing) vs k-space.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax import grappa
from rakijax.fft import fft2c, ifft2c
from rakijax.image_space.weights import linear_unmixing
from rakijax.sampling import make_sampling, undersample

from _props import assert_linear, no_recompile


# ----------------------------------------------------------------------------- references
def loop_grappa_calibrate(acs, R, kernel=(2, 5), lamda=1e-4):
    """Straightforward GRAPPA: explicit loops over ACS positions, numpy normal equations.

    Anchor ``(ay, ax) = ((kh-1)//2, (kw-1)//2)``: for an acquired-pattern row ``a`` of the
    ACS block, the sources are rows ``a + R*(ty-ay)`` and columns ``x + tx - ax``; the
    targets are rows ``a + d``, ``d = 1..R-1``, at column ``x``. Positions where any
    row/column falls outside the block are skipped. ``lam = lamda * trace(S^H S)/n``.
    Returns W ((R-1)*Nc, Nc, kh, kw).
    """
    acs = np.asarray(acs)
    nc, A, nx = acs.shape
    kh, kw = kernel
    ay, ax = (kh - 1) // 2, (kw - 1) // 2
    src, tgt = [], []
    for a in range(A):
        rows = [a + R * (ty - ay) for ty in range(kh)]
        trows = [a + d for d in range(1, R)]
        if min(rows) < 0 or max(rows + trows) >= A:
            continue
        for x in range(nx):
            cols = [x + tx - ax for tx in range(kw)]
            if min(cols) < 0 or max(cols) >= nx:
                continue
            s = np.empty((nc, kh, kw), complex)
            for i in range(nc):
                for ty in range(kh):
                    for tx in range(kw):
                        s[i, ty, tx] = acs[i, rows[ty], cols[tx]]
            src.append(s.ravel())
            tgt.append(np.concatenate([acs[:, r, x] for r in trows]))
    S, T = np.array(src), np.array(tgt)
    AhA = S.conj().T @ S
    lam = lamda * np.trace(AhA).real / S.shape[1]
    w = np.linalg.solve(AhA + lam * np.eye(S.shape[1]), S.conj().T @ T)  # (n, cout)
    return w.T.reshape(-1, nc, kh, kw)


def loop_grappa_apply(W, kspace_zf, R, offset):
    """Numpy loop application on the full grid, circular edges (Ny % R == 0)."""
    nc, ny, nx = kspace_zf.shape
    _, _, kh, kw = W.shape
    ay, ax = (kh - 1) // 2, (kw - 1) // 2
    out = np.array(kspace_zf, complex)
    for l in range(offset, ny, R):
        for x in range(nx):
            s = np.empty((nc, kh, kw), complex)
            for ty in range(kh):
                for tx in range(kw):
                    s[:, ty, tx] = kspace_zf[:, (l + R * (ty - ay)) % ny, (x + tx - ax) % nx]
            for d in range(1, R):
                out[:, (l + d) % ny, x] = np.einsum("oitu,itu->o", W[(d - 1) * nc : d * nc], s)
    return out


def smooth_maps(rng, nc, ny, nx, order=2):
    """Random smooth complex coil maps: few low-frequency Fourier terms."""
    yy, xx = np.meshgrid(np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
    m = np.zeros((nc, ny, nx), complex)
    for c in range(nc):
        for a in range(-order, order + 1):
            for b in range(-order, order + 1):
                amp = (rng.standard_normal() + 1j * rng.standard_normal()) / (1 + a * a + b * b)
                m[c] += amp * np.exp(2j * np.pi * (a * yy + b * xx))
    return m


def random_kspace(rng, nc, ny, nx):
    maps = smooth_maps(rng, nc, ny, nx)
    img = rng.standard_normal((ny, nx)) + 0.3 * rng.standard_normal((ny, nx)) * 1j
    return np.asarray(fft2c(maps * img))


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("R,kernel,acs", [(2, (2, 5), 10), (3, (2, 5), 12), (4, (3, 3), 16)])
def test_calibration_matches_loop_reference(R, kernel, acs):
    rng = np.random.default_rng(R)
    ny, nx, nc = 24, 20, 4
    k = random_kspace(rng, nc, ny, nx)
    s = make_sampling(ny, R, acs)
    zf, u, acs_block = undersample(k, s)
    W = grappa.calibrate(acs_block, s, kernel=kernel, lamda=1e-3)
    W_ref = loop_grappa_calibrate(acs_block, R, kernel, lamda=1e-3)
    assert W[0].shape == ((R - 1) * nc, nc) + kernel
    # same linear system solved two ways in float64: agreement to rounding (cond ~ 1e3)
    np.testing.assert_allclose(W[0], W_ref, rtol=0, atol=1e-10 * np.abs(W_ref).max())
    rec = grappa.apply(W, u, s)
    rec_ref = loop_grappa_apply(W_ref, zf, R, s.offset)
    assert np.linalg.norm(rec - rec_ref) / np.linalg.norm(rec_ref) < 1e-10
    np.testing.assert_array_equal(np.asarray(rec)[:, s.offset :: R], u)  # acquired lines kept
    assert_linear(lambda v: grappa.apply(W, v, s), u.shape, rng=rng, rtol=1e-12)  # complex-linear in the data


@pytest.mark.parametrize("R", [2, 4])
def test_exactly_predictable_kspace_is_reconstructed(R):
    """Phase-ramp coils S_c(r) = exp(2 pi i c (ry - cy)/Ny) shift k-space by c lines:
    k_c[ky] = m[ky - c], so every missing line of coil c equals an acquired line of
    another coil (coil c-d at line ky-d, or coil c-d+R at ky-d+R): a 2-row kernel
    predicts it exactly (needs Nc >= R), everywhere, with circular edges."""
    rng = np.random.default_rng(10 + R)
    ny, nx, nc = 24, 20, 4
    ry = np.arange(ny) - ny // 2
    maps = np.exp(2j * np.pi * np.arange(nc)[:, None, None] * ry[None, :, None] / ny) * np.ones((1, 1, nx))
    img = rng.standard_normal((ny, nx)) + 1j * rng.standard_normal((ny, nx))
    k = np.asarray(fft2c(maps * img))
    np.testing.assert_allclose(k[1], np.roll(k[0], 1, axis=0), atol=1e-12)  # the model holds
    s = make_sampling(ny, R, 12)
    rec, _ = grappa.reconstruct(k, s, lamda=1e-12)
    # tiny Tikhonov bias only (relative weight 1e-12, rank-deficient but consistent system)
    assert np.linalg.norm(rec - k) / np.linalg.norm(k) < 1e-6


def test_smooth_coils_reconstruct_well():
    """Band-limited smooth coils, smooth object, R=2: NMSE of the coil k-space is small."""
    rng = np.random.default_rng(3)
    ny, nx, nc = 24, 20, 4
    maps = smooth_maps(rng, nc, ny, nx, order=1)
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    img = np.exp(-3 * (yy**2 + xx**2)) * (1 + 0.2 * np.cos(3 * xx))
    k = np.asarray(fft2c(maps * img))
    s = make_sampling(ny, 2, 12)
    rec, _ = grappa.reconstruct(k, s, lamda=1e-8)
    zf, _, _ = undersample(k, s)
    err = np.linalg.norm(rec - k) ** 2 / np.linalg.norm(k) ** 2
    err_zf = np.linalg.norm(zf - k) ** 2 / np.linalg.norm(k) ** 2
    assert err < 1e-3 and err < 1e-2 * err_zf, (err, err_zf)


@pytest.mark.parametrize("ny,nx,R,acs", [(24, 20, 2, 10), (21, 20, 3, 12), (20, 16, 4, 12)])
def test_image_space_equals_kspace(ny, nx, R, acs):
    rng = np.random.default_rng(ny + R)
    nc = 4
    k = random_kspace(rng, nc, ny, nx)
    s = make_sampling(ny, R, acs)
    zf, u, acs_block = undersample(k, s)
    W = grappa.calibrate(acs_block, s)
    x_k = ifft2c(grappa.apply(W, u, s))
    G = linear_unmixing(W, s, nx)
    x_i = jnp.einsum("abyx,byx->ayx", G, ifft2c(zf))
    # both exact in float64: agreement to rounding
    assert float(jnp.linalg.norm(x_i - x_k) / jnp.linalg.norm(x_k)) < 1e-10


def test_dtype_follows_input_and_lamda_vmaps():
    rng = np.random.default_rng(4)
    k = random_kspace(rng, 4, 24, 20)
    s = make_sampling(24, 3, 12)
    _, u, acs_block = undersample(k, s)
    W32 = grappa.calibrate(acs_block.astype(np.complex64), s)
    assert W32[0].dtype == jnp.complex64
    W64 = grappa.calibrate(acs_block, s)
    assert W64[0].dtype == jnp.complex128
    # complex64 normal equations, cond <= 1/lamda = 1e4: relative error ~ 1e4 * 6e-8
    assert float(jnp.linalg.norm(W32[0] - W64[0]) / jnp.linalg.norm(W64[0])) < 1e-2
    rec32 = grappa.apply(W32, u.astype(np.complex64), s)
    assert rec32.dtype == jnp.complex64
    # lamda is traced: a vmapped sweep equals the loop
    lams = jnp.array([1e-5, 1e-3, 1e-1])
    Wv = jax.vmap(lambda l: grappa.calibrate(jnp.asarray(acs_block), s, lamda=l)[0])(lams)
    for i, l in enumerate([1e-5, 1e-3, 1e-1]):
        np.testing.assert_allclose(Wv[i], grappa.calibrate(acs_block, s, lamda=l)[0], atol=1e-10)
    # lamda is traced, not static: new values do not recompile the solver
    with no_recompile():
        for l in (2e-4, 3e-2):
            grappa.calibrate(acs_block, s, lamda=l)
    # more regularisation shrinks the kernel
    norms = [float(jnp.linalg.norm(Wv[i])) for i in range(3)]
    assert norms[0] > norms[1] > norms[2]


def test_r1_apply_is_identity():
    rng = np.random.default_rng(5)
    k = random_kspace(rng, 3, 12, 10)
    s = make_sampling(12, 1, 0)
    _, u, _ = undersample(k, s)
    np.testing.assert_array_equal(grappa.apply([], u, s), k)


def test_validation_errors():
    rng = np.random.default_rng(6)
    acs = rng.standard_normal((4, 12, 20)) + 0j
    s2 = make_sampling(24, 2, 12)
    with pytest.raises(ValueError, match="R >= 2"):
        grappa.calibrate(acs, make_sampling(24, 1, 12))
    with pytest.raises(TypeError, match="Sampling"):
        grappa.calibrate(acs, 2)  # R enters through the Sampling only
    with pytest.raises(ValueError, match="too few ACS lines"):
        grappa.calibrate(acs[:, :4], make_sampling(24, 4, 4))  # 2x5 kernel at R=4 needs R+1 = 5 lines
    with pytest.raises(ValueError, match=r"\(Nc, A, Nx\)"):
        grappa.calibrate(acs[0], s2)
    bad = acs.copy()
    bad[1, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        grappa.calibrate(bad, s2)
    with pytest.raises(ValueError, match="lamda"):
        grappa.calibrate(acs, s2, lamda=-1.0)
    with pytest.raises(ValueError, match="acs=16"):
        grappa.calibrate(acs, make_sampling(32, 2, 16))
    s = make_sampling(24, 3, 12)
    W = grappa.calibrate(acs, s)
    with pytest.raises(ValueError, match="rows"):
        grappa.apply(W, np.zeros((4, 7, 20), complex), s)
    with pytest.raises(ValueError, match="coils"):
        grappa.apply(W, np.zeros((5, 8, 20), complex), s)
