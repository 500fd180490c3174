"""FFT, sampling and the shared reduced-grid network against independent references."""

import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import fft2c, ifft2c
from rakijax.image_space.weights import linear_unmixing
from rakijax.kspace_net import apply_network, compose_linear, conv, forward
from rakijax.sampling import make_sampling, undersample

from _props import assert_adjoint, assert_linear, assert_unitary


@pytest.mark.parametrize("shape", [(8, 6), (7, 9), (5, 5), (16, 15)])
def test_fft_matches_numpy(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3,) + shape) + 1j * rng.standard_normal((3,) + shape)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x), ref, atol=1e-12)
    np.testing.assert_allclose(ifft2c(fft2c(x)), x, atol=1e-12)
    # unitary: energy preserved
    np.testing.assert_allclose(np.linalg.norm(fft2c(x)), np.linalg.norm(x), rtol=1e-12)
    # the operator properties: unitary, and ifft2c is its adjoint (float64 rounding)
    assert_unitary(fft2c, (3,) + shape, rng=rng, rtol=1e-12)
    assert_adjoint(fft2c, ifft2c, (3,) + shape, (3,) + shape, rng=rng, rtol=1e-12)


def test_fft_centre_is_dc():
    for n in (6, 7):
        x = np.ones((n, n))
        k = np.array(fft2c(x))
        assert abs(k[n // 2, n // 2] - n) < 1e-12  # sum / sqrt(N) = n*n/n
        k[n // 2, n // 2] = 0
        assert np.abs(k).max() < 1e-12


def test_sampling_lines_and_validation():
    s = make_sampling(256, 4, 24)
    assert s.offset == 0 and s.acquired_lines[:3].tolist() == [0, 4, 8]
    assert 128 in s.acquired_lines
    assert s.acs_lines[0] == 116 and s.acs_lines[-1] == 139
    assert s.R_eff == pytest.approx(256 / (64 + 18))
    s5 = make_sampling(25, 5, 6)
    assert 12 in s5.acquired_lines
    with pytest.raises(ValueError, match="R must be an integer"):
        make_sampling(32, 0, 8)
    with pytest.raises(ValueError, match="acquired line"):
        make_sampling(8, 8, 4)
    with pytest.raises(ValueError, match="wider than the data"):
        make_sampling(16, 2, 20)
    with pytest.raises(ValueError, match="too few ACS"):
        make_sampling(64, 4, 4, min_acs=5)


def test_conv_matches_numpy_loop():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((3, 5, 7)) + 1j * rng.standard_normal((3, 5, 7))
    w = rng.standard_normal((2, 3, 2, 3)) + 1j * rng.standard_normal((2, 3, 2, 3))
    ref = np.zeros((2, 5, 7), complex)
    for o in range(2):
        for j in range(5):
            for x in range(7):
                for i in range(3):
                    for ty in range(2):
                        for tx in range(3):
                            ref[o, j, x] += w[o, i, ty, tx] * u[i, (j + ty) % 5, (x + tx - 1) % 7]
    np.testing.assert_allclose(conv(u, w), ref, atol=1e-12)
    assert_linear(lambda v: conv(v, jnp.asarray(w)), u.shape, rng=rng, rtol=1e-12)  # complex-linear in u


@pytest.mark.parametrize("ny,nx,R", [(24, 20, 3), (25, 19, 5), (24, 21, 4), (12, 9, 2)])
def test_linear_network_image_space_equals_kspace(ny, nx, R):
    rng = np.random.default_rng(2)
    nc = 3
    c = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
    k = c(nc, ny, nx)
    s = make_sampling(ny, R, 8)
    zf, u, _ = undersample(k, s)
    ks = [c(6, nc, 2, 5), c(5, 6, 1, 1), c((R - 1) * nc, 5, 1, 5)]
    full = apply_network(ks, jnp.asarray(u), s, 1.0)
    np.testing.assert_array_equal(np.asarray(full)[:, s.offset :: R], u)  # acquired lines kept
    x = ifft2c(full)
    g = linear_unmixing(ks, s, nx)
    x2 = jnp.einsum("oiyx,iyx->oyx", g, ifft2c(zf))
    assert float(jnp.linalg.norm(x - x2) / jnp.linalg.norm(x)) < 1e-12
    y1 = forward(ks, jnp.asarray(u), 1.0)
    y2 = forward([compose_linear(ks)], jnp.asarray(u), 1.0)
    assert float(jnp.linalg.norm(y1 - y2) / jnp.linalg.norm(y1)) < 1e-12


def test_boundary_checks_name_the_problem_and_shapes():
    """rakijax.validate: the one home of the kernel-chain / reduced-grid / psi checks."""
    import jax

    from rakijax.gfactor.combine import noise_covariance
    from rakijax.validate import check_finite, check_kernels, check_reduced, validate_psi

    s = make_sampling(24, 3, 8)
    ks = [np.zeros((8, 4, 2, 5)), np.zeros((8, 8, 1, 5))]  # 8 = (R-1)*Nc at R=3, Nc=4
    check_reduced(ks, np.zeros((4, 8, 10)), s)
    check_reduced(ks, np.zeros((2, 4, 8, 10)), s, batch=True)
    check_reduced(None, np.zeros((4, 8, 10)), s)  # grid against the sampling only (R = 1 use)
    with pytest.raises(ValueError, match="empty kernel list"):
        check_kernels([])
    with pytest.raises(ValueError, match=r"\(cout, cin, kh, kw\)"):
        check_kernels([np.zeros((8, 4, 2))])
    with pytest.raises(ValueError, match=r"does not connect.*\(6, 4, 2, 5\)"):
        check_kernels([np.zeros((6, 4, 2, 5)), np.zeros((8, 8, 1, 5))])
    with pytest.raises(ValueError, match=r"\(R-1\)\*Nc = 4 expected at R=2"):
        check_kernels(ks, 2)
    with pytest.raises(ValueError, match=r"must be \(Nc, Y, X\), got shape \(2, 4, 8, 10\)"):
        check_reduced(ks, np.zeros((2, 4, 8, 10)), s)
    with pytest.raises(ValueError, match=r"\(5, 8, 10\) has 5 coils but the first kernel expects 4"):
        check_reduced(ks, np.zeros((5, 8, 10)), s)
    with pytest.raises(ValueError, match=r"\(4, 7, 10\) has 7 rows .* 8 acquired lines"):
        check_reduced(ks, np.zeros((4, 7, 10)), s)
    # shapes only: works on tracers under jit
    jax.jit(lambda v: check_reduced(ks, v, s) or v)(np.zeros((4, 8, 10)))
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\).*\(0, 1\)"):
        check_finite(np.array([[1.0, np.nan]]), "x")
    a = np.array([[2.0, 1j], [-1j, 2.0]])
    np.testing.assert_array_equal(validate_psi(a, 2), a)
    with pytest.raises(ValueError, match="not Hermitian"):
        validate_psi(np.array([[2.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        validate_psi(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but the data have Nc=3"):
        noise_covariance(a, 3, np.complex128)
    np.testing.assert_array_equal(noise_covariance(None, 3, np.complex128), np.eye(3))
