"""Image metrics against hand-computed values and a numpy loop SSIM."""

import numpy as np
import pytest

from rakijax import metrics


def loop_ssim(ref, x, mask=None, sigma=1.5, k1=0.01, k2=0.03):
    """Wang 2004 SSIM by explicit loops: Gaussian 11x11 window (radius 5), reflecting
    (symmetric, edge sample repeated) borders, population moments, L = max-min of the whole ref."""
    ref, x = np.abs(ref), np.abs(x)
    ny, nx = ref.shape
    r = int(3.5 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    w1 = np.exp(-(t**2) / (2 * sigma**2))
    w2 = np.outer(w1, w1)
    w2 /= w2.sum()

    def refl(i, n):  # symmetric extension: -1 -> 0, -2 -> 1, n -> n-1
        while i < 0 or i >= n:
            i = -i - 1 if i < 0 else 2 * n - 1 - i
        return i

    m = np.ones(ref.shape, bool) if mask is None else mask
    L = ref.max() - ref.min()
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    out = np.zeros(ref.shape)
    for i in range(ny):
        for j in range(nx):
            a = np.empty((2 * r + 1, 2 * r + 1))
            b = np.empty_like(a)
            for p in range(2 * r + 1):
                for q in range(2 * r + 1):
                    ii, jj = refl(i + p - r, ny), refl(j + q - r, nx)
                    a[p, q], b[p, q] = ref[ii, jj], x[ii, jj]
            ma, mb = (w2 * a).sum(), (w2 * b).sum()
            va = (w2 * (a - ma) ** 2).sum()
            vb = (w2 * (b - mb) ** 2).sum()
            cab = (w2 * (a - ma) * (b - mb)).sum()
            out[i, j] = (2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return out[m].mean()


def test_nmse_psnr_hand_values():
    ref = np.array([[3.0, 4.0], [0.0, 1.0]])
    x = np.array([[3.0, 5.0], [1.0, 1.0]])
    # errors 0,1,1,0; ||ref||^2 = 9+16+0+1 = 26
    assert float(metrics.nmse(ref, x)) == pytest.approx(2 / 26, rel=1e-14)
    # mse = 2/4, peak 4: 10 log10(16 / 0.5)
    assert float(metrics.psnr(ref, x)) == pytest.approx(10 * np.log10(32.0), rel=1e-14)
    mask = np.array([[True, True], [False, True]])
    assert float(metrics.nmse(ref, x, mask)) == pytest.approx(1 / 26, rel=1e-14)
    assert float(metrics.psnr(ref, x, mask)) == pytest.approx(10 * np.log10(16 / (1 / 3)), rel=1e-14)
    # magnitudes: a global phase and complex input do not matter
    assert float(metrics.nmse(ref * 1j, x * np.exp(0.3j))) == pytest.approx(2 / 26, rel=1e-12)
    assert float(metrics.nmse(ref, ref)) == 0.0


def test_ssim_identity_and_loop_reference():
    rng = np.random.default_rng(0)
    ref = rng.random((13, 9)) + 1j * rng.random((13, 9))
    x = ref + 0.2 * rng.standard_normal((13, 9))
    assert float(metrics.ssim(ref, ref)) == pytest.approx(1.0, abs=1e-12)
    # same formula evaluated two ways in float64: rounding only
    assert float(metrics.ssim(ref, x)) == pytest.approx(loop_ssim(ref, x), abs=1e-12)
    mask = np.zeros((13, 9), bool)
    mask[2:10, 1:7] = True
    assert float(metrics.ssim(ref, x, mask)) == pytest.approx(loop_ssim(ref, x, mask), abs=1e-12)
    assert float(metrics.ssim(ref, x)) < 1


def test_ssim_constant_offset_closed_form():
    """x = ref + c: sigma terms equal, so SSIM = (2 mr mx + C1)/(mr^2 + mx^2 + C1) per pixel;
    for a constant ref the map is that constant everywhere."""
    ref = np.full((12, 12), 2.0)
    ref[0, 0] = 0.0  # makes L = 2 (ref max - min)
    x = ref + 0.5
    L = 2.0
    c1 = (0.01 * L) ** 2
    mask = np.zeros((12, 12), bool)
    mask[6:, 6:] = True  # far from the odd pixel (window radius 5): locally constant
    expect = (2 * 2.0 * 2.5 + c1) / (2.0**2 + 2.5**2 + c1)
    assert float(metrics.ssim(ref, x, mask)) == pytest.approx(expect, rel=1e-10)


def test_gfactor_summary_and_validation():
    g = np.arange(1, 101, dtype=float).reshape(10, 10) / 10
    mask = np.ones((10, 10), bool)
    mask[0] = False
    s = metrics.gfactor_summary(g, mask)
    v = g[mask]
    assert s["gfactor_mean"] == pytest.approx(v.mean())
    assert s["gfactor_max"] == 10.0
    # linear interpolation percentile of 11.0..100.0 /10: index 0.95*89 = 84.55
    assert s["gfactor_p95"] == pytest.approx((11 + 84.55) / 10)
    assert set(s) == {"gfactor_mean", "gfactor_p95", "gfactor_max"}
    with pytest.raises(ValueError, match="mask"):
        metrics.gfactor_summary(g, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="shape"):
        metrics.nmse(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="no pixel"):
        metrics.psnr(np.ones((4, 4)), np.ones((4, 4)), np.zeros((4, 4), bool))
