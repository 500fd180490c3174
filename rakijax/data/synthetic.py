"""Built-in multi-coil brain phantom (no download): anatomy, loop-coil array, correlated noise.

The phantom is an axial slice of a head, T1-weighted-like contrast, generated in
image space and transformed with :func:`rakijax.fft.fft2c`:

* **anatomy** (:func:`brain_image`): scalp (skin, subcutaneous fat), skull with
  diploe, CSF, a folded cortex (gyri and CSF-filled sulci around the brain,
  grey matter over white matter fingers), interhemispheric fissure, lateral and
  third ventricles, deep grey nuclei (caudate, putamen, thalamus), a few small
  lesions and vessels, a smooth tissue texture and a smooth background phase.
  Edges are soft (about one pixel wide) so the image is band-limited enough to be
  free of pixel staircase artefacts.
* **coils** (:func:`loop_coil_maps`): ``ncoils`` circular loops on a helmet (an
  elliptical cylinder about 2 cm outside the scalp) in two rings above and below
  the slice, each ring rotated by half a coil spacing. The receive sensitivity of a
  loop is its quasi-static Biot-Savart field ``B`` in the slice,
  ``S = B_x - i B_y`` (the counter-rotating component; Hoult 2000), which gives
  the 1/r^3-like falloff and the position-dependent complex phase of real arrays.
  Maps are scaled so that the root-sum-of-squares ``sqrt(sum_c |S_c|^2)`` has median 1
  in the object.
* **noise**: circular complex Gaussian, independent between samples, with coil
  covariance ``Psi = noise_level^2 * D C D`` where ``C`` is a correlation matrix
  that grows with the overlap of the coil fields (neighbours 0.1-0.3) and ``D``
  holds unequal coil noise levels (0.8-1.25). ``noise_level`` is therefore the RMS
  per-coil noise standard deviation per k-space sample (and per image pixel, the
  FFT being unitary) relative to a white-matter magnitude of 1. A noise-only scan of
  ``noise_samples`` samples per coil comes with the data.

Geometry is in units of the half field of view along each axis (``x``, ``y`` in
``[-1, 1)``; anterior at the top, row 0), so any grid ``(Ny, Nx)``, odd or
non-square, holds the whole head; a half field of view is taken as 120 mm for the
coil model.

Calibration of the default array (16 loops of 75 mm radius, 40 mm outside the
scalp, rings at z = +-48 mm): GRAPPA with a 2x5 kernel, 24 ACS lines and Tikhonov
weight 1e-4 (relative to the mean eigenvalue of ``S^H S``), analytic g-factor
(Breuer 2009) with ``p = x/RSS(x)``, 240x240 grid, default noise:

    R          3      4      5      6
    mean g     1.20   2.10   4.50   8.9    (brain, elliptical radius < 0.84)
    mean g     1.16   1.98   4.12   8.0    (``support``, whole head)
    NMSE       0.001  0.004  0.023  0.11   (RSS vs the noise-free RSS, in ``support``)

which matches a real 16-32 channel head array (about 1.2-1.5 at R=3, 1.5-2.5 at
R=4). RSS SNR in white matter (median) is about 46; single-coil SNR there about 19
on average over coils and 38 for the best coil.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import jax
import numpy as np
from scipy.interpolate import RectBivariateSpline

from ..fft import fft2c
from .container import KSpaceData
from .template import COLIN27, grid, template_slice

__all__ = ["brain_phantom", "brain_image", "brain_mask", "loop_coil_maps", "coil_noise_covariance", "CoilArray"]

log = logging.getLogger(__name__)

HALF_FOV_MM = 120.0

# Tissue magnitudes (T1-weighted-like, white matter = 1).
WM, GM, CSF, DEEP_GM = 1.0, 0.72, 0.22, 0.80
FAT, SKIN, BONE, DIPLOE = 1.15, 0.55, 0.06, 0.55


def _step(d, w):
    """Soft step ``0 -> 1`` as ``d`` goes from ``-w`` to ``+w`` (``d`` > 0 is inside)."""
    return 0.5 * (1.0 + np.tanh(d / np.maximum(w, 1e-12)))


def _ellipse(X, Y, cx, cy, ax, ay, angle, w):
    """Soft indicator of a rotated ellipse; ``w`` edge width in units of its normalised radius."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((X - cx) * c + (Y - cy) * s) / ax
    v = (-(X - cx) * s + (Y - cy) * c) / ay
    r = np.sqrt(u * u + v * v)
    return _step(1.0 - r, w / min(ax, ay))


def _smooth_field(rng, shape, corr):
    """Zero-mean, unit-std Gaussian random field with correlation length ``corr`` (grid units)."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=2.0 / ny)
    fx = np.fft.fftfreq(nx, d=2.0 / nx)
    F = np.exp(-0.5 * (2 * np.pi * corr) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    z = rng.standard_normal(shape)
    f = np.real(np.fft.ifft2(np.fft.fft2(z) * F))
    return (f - f.mean()) / max(f.std(), 1e-12)


def brain_mask(shape=(256, 256)) -> np.ndarray:
    """Brain region of the synthetic phantom (inside the cortical surface, ``rho < 0.845``).

    The phantom's ``support`` is the whole head (scalp, fat and skull included); the
    g-factor targets of a head array are quoted for the brain, which this mask selects.

    Args:
        shape: ``(Ny, Nx)``.

    Returns:
        (Ny, Nx) bool.
    """
    Y, X = grid(tuple(shape))
    hx, hy, cy0 = 0.66, 0.82, 0.02  # the head ellipse of brain_image
    return np.sqrt((X / hx) ** 2 + ((Y - cy0) / hy) ** 2) < 0.845


def brain_image(shape=(256, 256), *, seed: int = 0, with_phase: bool = True, anatomy: str = "synthetic", template=None):
    """Complex axial brain slice and its object support.

    Args:
        shape: ``(Ny, Nx)`` grid.
        seed: folding pattern, lesions, texture and phase are drawn from it.
        with_phase: multiply by a smooth background phase (else real, non-negative).
        anatomy: ``"synthetic"`` (the model above) or ``"colin27"``: an axial slice of
            the Colin27 T1 template (Debian ``mricron-data``, ``template`` path,
            default ``/usr/share/mricron/templates/ch2.nii.gz``) fitted into the same
            head ellipse, magnitude scaled to white matter about 1.
        template: path of the NIfTI template for ``anatomy="colin27"``.

    Returns:
        ``(image, support)``: (Ny, Nx) complex image (white matter magnitude about 1)
        and (Ny, Nx) bool head mask.
    """
    ny, nx = shape
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    Y, X = grid(shape)
    px = 2.0 / min(ny, nx)  # one pixel in normalised units (smaller axis)
    w = 0.6 * px  # soft edge half-width

    # Head ellipse (normalised elliptical radius rho, polar angle th).
    hx, hy, cy0 = 0.66, 0.82, 0.02
    u, v = X / hx, (Y - cy0) / hy
    rho = np.sqrt(u * u + v * v)
    th = np.arctan2(v, u)
    wr = w / hx  # edge width in rho units

    def shell(r_in, r_out):
        return _step(rho - r_in, wr) * _step(r_out - rho, wr)

    head = _step(1.0 - rho, wr)
    img = SKIN * shell(0.975, 1.0) + FAT * shell(0.925, 0.975)
    img += BONE * shell(0.86, 0.925) + (DIPLOE - BONE) * shell(0.88, 0.905)

    # Cortex: sulcal pattern s(th) = cos(N th + warp(th)); sulci where s ~ 1.
    nsulci = 34
    k = np.arange(1, 7)
    warp = sum(rng.uniform(0.3, 1.2) / kk * np.sin(kk * th + rng.uniform(0, 2 * np.pi)) for kk in k)
    s = np.cos(nsulci * th + 3.0 * warp)
    # sulcal depth varies from sulcus to sulcus (irregular beat of two incommensurate patterns)
    depth = 0.03 + 0.012 * np.cos(3 * th + rng.uniform(0, 2 * np.pi)) + 0.012 * np.cos(
        0.37 * nsulci * th + 2.0 * warp + rng.uniform(0, 2 * np.pi)
    )
    r_brain = 0.845 + 0.01 * np.sin(2 * th + rng.uniform(0, 2 * np.pi))
    r_wm = r_brain - 0.075 - depth * s  # WM fingers under the gyral crowns (s ~ -1)
    brain = _step(r_brain - rho, wr)
    wm = _step(r_wm - rho, wr)
    # Sulci: CSF clefts from the surface down to near the WM, width about 2 px at n=256
    sulc_w = 0.5 * (1 + np.tanh((s - 0.86) / 0.04))
    sulcus = sulc_w * _step(rho - (r_wm + 0.012), wr) * brain
    tissue = GM * brain + (WM - GM) * wm * brain
    tissue = tissue * (1 - sulcus) + CSF * sulcus

    # Interhemispheric fissure (front and back), a thin CSF sheet at x ~ 0.
    fiss_w = max(0.012, 0.7 * px) / hx
    fiss = _step(fiss_w - np.abs(u - 0.02 * np.sin(3 * v)), 0.4 * wr) * _step(np.abs(v) - 0.3, 4 * wr) * brain
    tissue = tissue * (1 - fiss) + CSF * fiss

    # Deep grey nuclei (caudate heads, putamen, thalami).
    deep = np.zeros(shape)
    for sx in (-1, 1):
        deep = np.maximum(deep, _ellipse(X, Y, sx * 0.13, -0.17, 0.045, 0.075, sx * 0.3, w))
        deep = np.maximum(deep, _ellipse(X, Y, sx * 0.25, -0.03, 0.045, 0.14, -sx * 0.25, w))
        deep = np.maximum(deep, _ellipse(X, Y, sx * 0.085, 0.12, 0.07, 0.095, 0.0, w))
    tissue = tissue * (1 - deep) + DEEP_GM * deep

    # Ventricles: frontal horns, bodies, occipital horns, third ventricle.
    vent = np.zeros(shape)
    for sx in (-1, 1):
        vent = np.maximum(vent, _ellipse(X, Y, sx * 0.075, -0.2, 0.04, 0.10, sx * 0.35, w))
        vent = np.maximum(vent, _ellipse(X, Y, sx * 0.09, 0.0, 0.032, 0.16, -sx * 0.12, w))
        vent = np.maximum(vent, _ellipse(X, Y, sx * 0.14, 0.25, 0.03, 0.08, -sx * 0.5, w))
    vent = np.maximum(vent, _ellipse(X, Y, 0.0, 0.1, 0.012, 0.06, 0.0, 0.5 * w))
    tissue = tissue * (1 - vent) + CSF * vent

    # Texture (smooth, 3 %) in brain tissue.
    tissue *= 1.0 + 0.03 * _smooth_field(rng, shape, 0.01)
    inner = _step(0.86 - rho, wr)
    img = img * (1 - inner) + inner * (tissue * brain + CSF * (1 - brain))

    # Small lesions in white matter (hypo- and hyperintense) and bright vessels in CSF spaces.
    nles = 6
    deep_wm = wm * brain * (1 - vent) * (1 - deep)
    cand = np.argwhere(deep_wm > 0.99)
    if len(cand):
        for i in range(nles):
            cyi, cxi = cand[rng.integers(len(cand))]
            r = rng.uniform(0.012, 0.03)
            les = _ellipse(X, Y, X[cyi, cxi], Y[cyi, cxi], r, r * rng.uniform(0.7, 1.3), rng.uniform(0, np.pi), w)
            val = 0.45 if i % 2 else 1.35
            img = img * (1 - les) + val * les
    cand = np.argwhere((sulcus + fiss) > 0.6)
    if len(cand):
        for _ in range(8):
            cyi, cxi = cand[rng.integers(len(cand))]
            ves = _ellipse(X, Y, X[cyi, cxi], Y[cyi, cxi], 0.6 * px, 0.6 * px, 0.0, 0.5 * w)
            img = img * (1 - ves) + 1.4 * ves

    img = np.clip(img, 0.0, None) * head
    support = head > 1e-3  # the whole object, soft edge included
    if anatomy == "colin27":
        img, support = template_slice(shape, template)
    elif anatomy != "synthetic":
        raise ValueError(f"anatomy must be 'synthetic' or 'colin27', got {anatomy!r}")
    if with_phase:
        c = rng.normal(size=6) * np.array([0.4, 0.6, 0.6, 0.5, 0.5, 0.5])
        phase = c[0] + c[1] * X + c[2] * Y + c[3] * X * X + c[4] * X * Y + c[5] * Y * Y
        img = img * np.exp(1j * phase)
    return img.astype(np.complex128), support


@dataclass(frozen=True)
class CoilArray:
    """Geometry of the loop-coil head array (mm; slice at z = 0).

    Attributes:
        ncoils: number of loops (split over ``rings`` rings).
        radius_mm: loop radius.
        standoff_mm: distance of the loop centres outside the scalp ellipse.
        ring_z_mm: ring heights above/below the slice.
        rings: number of rings (1 or 2).
        stagger: ring ``i`` is rotated by ``i * stagger`` coil spacings.
        segments: straight segments per loop in the Biot-Savart sum.
    """

    ncoils: int = 16
    radius_mm: float = 75.0
    standoff_mm: float = 40.0
    ring_z_mm: tuple = (-48.0, 48.0)
    rings: int = 2
    stagger: float = 0.5
    segments: int = 36

    def loops(self):
        """Loop centres (ncoils, 3) and unit normals (ncoils, 3), pointing into the head."""
        nring = self.rings if self.ncoils >= 2 * self.rings - 1 and self.ncoils > 1 else 1
        counts = [self.ncoils // nring + (1 if i < self.ncoils % nring else 0) for i in range(nring)]
        hx = 0.66 * HALF_FOV_MM + self.standoff_mm
        hy = 0.82 * HALF_FOV_MM + self.standoff_mm
        cen, nrm = [], []
        for i, m in enumerate(counts):
            z = self.ring_z_mm[i] if nring > 1 else 0.0
            for j in range(m):
                phi = 2 * np.pi * (j + self.stagger * i) / m + np.pi / 2
                p = np.array([hx * np.cos(phi), hy * np.sin(phi), z])
                n = -np.array([np.cos(phi) / hx, np.sin(phi) / hy, 0.0])
                if nring > 1:  # tilt the loop towards the slice, like a helmet
                    n[2] = -0.35 * np.sign(z) * np.linalg.norm(n[:2])
                cen.append(p)
                nrm.append(n / np.linalg.norm(n))
        return np.array(cen), np.array(nrm)


_COARSE = 96


def _resample(v, gy, gx, shape):
    """Values ``v`` on the grid ``(gy, gx)`` at the pixel centres of ``shape`` (bicubic, exact if same grid)."""
    ny, nx = shape
    y = (np.arange(ny) - ny // 2) / (ny / 2.0)
    x = (np.arange(nx) - nx // 2) / (nx / 2.0)
    ky, kx = min(3, len(gy) - 1), min(3, len(gx) - 1)
    return RectBivariateSpline(gy, gx, v, kx=ky, ky=kx)(y, x)


def loop_coil_maps(shape, array: CoilArray = CoilArray(), *, support=None):
    """Complex receive sensitivities of a loop array in the slice z = 0.

    Biot-Savart field of each loop (unit current, polygon of ``segments`` sides)
    ``B(r) = sum_seg dl x (r - r_seg) / |r - r_seg|^3`` and ``S = B_x - i B_y``.

    Args:
        shape: ``(Ny, Nx)``.
        array: coil geometry.
        support: optional (Ny, Nx) bool; maps are scaled so that the RSS of the maps has
            median 1 in it (in the whole field of view if None), and outside it each map's
            magnitude is clipped at its maximum over the support.

    Returns:
        (Nc, Ny, Nx) complex128 sensitivities.
    """
    ny, nx = shape
    # The fields are smooth on the scale of a few mm: evaluate Biot-Savart on a grid of at
    # most `_COARSE` points per axis spanning the field of view, then bicubic splines.
    gy = np.linspace(-1.0, 1.0, min(ny, _COARSE))
    gx = np.linspace(-1.0, 1.0, min(nx, _COARSE))
    Yc, Xc = np.meshgrid(gy, gx, indexing="ij")
    px, py = Xc * HALF_FOV_MM, Yc * HALF_FOV_MM  # slice z = 0
    cen, nrm = array.loops()
    t = 2 * np.pi * (np.arange(array.segments) + 0.5) / array.segments
    maps = np.empty((len(cen),) + tuple(shape), np.complex128)
    for c, (p0, n) in enumerate(zip(cen, nrm)):
        a = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
        a /= np.linalg.norm(a)
        b = np.cross(n, a)
        pts = p0 + array.radius_mm * (np.cos(t)[:, None] * a + np.sin(t)[:, None] * b)  # (S, 3)
        dl = np.roll(pts, -1, axis=0) - pts
        mid = pts + 0.5 * dl
        bx = np.zeros(Xc.shape)
        by = np.zeros(Xc.shape)
        for (mx, my, mz), (dx, dy, dz) in zip(mid, dl):
            rx, ry, rz = px - mx, py - my, -mz
            inv3 = (rx * rx + ry * ry + rz * rz) ** -1.5
            bx += (dy * rz - dz * ry) * inv3  # (dl x r)_x / |r|^3
            by += (dz * rx - dx * rz) * inv3  # (dl x r)_y / |r|^3
        maps[c] = _resample(bx, gy, gx, shape) - 1j * _resample(by, gy, gx, shape)
    rss = np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    if support is None or not support.any():
        return maps / np.median(rss)
    maps = maps / np.median(rss[support])
    # Outside the object the field grows towards the wires (some lie in the field-of-view
    # corners); it multiplies a zero image there. Clip each map's magnitude at its maximum
    # over the object so that displays stay readable (continuous; unchanged on the object).
    cap = np.abs(maps[:, support]).max(axis=1)[:, None, None]
    mag = np.abs(maps)
    return np.where(mag > cap, maps * (cap / np.maximum(mag, 1e-300)), maps)


def coil_noise_covariance(maps, support, *, rng, coupling: float = 0.35):
    """Noise correlation from coil-field overlap, with unequal coil noise levels.

    ``C = (1 - c) I + c G`` with ``G`` the normalised Gram matrix of the sensitivities
    over the object (sample-loss noise correlates coils whose fields overlap),
    ``D = diag(d)``, ``d`` log-uniform in [0.8, 1.25]; returns ``D C D`` scaled to mean
    diagonal 1.
    """
    # the overlap integral of smooth fields: a grid of about 64 x 64 points is plenty
    st = max(1, min(maps.shape[1:]) // 64)
    sub = maps[:, ::st, ::st]
    S = sub[:, support[::st, ::st]] if support is not None else sub.reshape(sub.shape[0], -1)
    G = S @ S.conj().T
    dg = np.sqrt(np.real(np.diag(G)))
    G = G / np.outer(dg, dg)
    C = (1 - coupling) * np.eye(len(G)) + coupling * G
    d = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=len(G)))
    psi = C * np.outer(d, d)
    psi = 0.5 * (psi + psi.conj().T)
    return psi / np.mean(np.real(np.diag(psi)))


def _complex_gauss(rng, psi, shape_rest):
    nc = psi.shape[0]
    L = np.linalg.cholesky(psi)
    z = (rng.standard_normal((nc,) + shape_rest) + 1j * rng.standard_normal((nc,) + shape_rest)) / np.sqrt(2)
    return (L @ z.reshape(nc, -1)).reshape(z.shape)


def brain_phantom(
    n: int = 256,
    ncoils: int = 16,
    *,
    seed: int = 0,
    noise_level: float = 0.01,
    shape: tuple[int, int] | None = None,
    noise_samples: int = 2000,
    coils: CoilArray | None = None,
    anatomy: str = "synthetic",
    template=None,
) -> KSpaceData:
    """The built-in multi-coil brain phantom (see the module docstring for the model).

    ``clean = fft2c(S_c * m)``, ``kspace = clean + n`` with ``n`` circular complex
    Gaussian of coil covariance ``psi`` per sample, ``noise`` an independent
    noise-only scan (Nc, noise_samples) with the same covariance.

    Args:
        n: grid size ``n x n`` (ignored when ``shape`` is given).
        ncoils: number of receive loops (8-32 realistic; any >= 1 works).
        seed: everything random (anatomy details, phase, coil noise levels, noise) is
            drawn from it; equal seeds give identical data.
        noise_level: RMS per-coil noise std per k-space sample relative to white
            matter magnitude 1 (default 0.01: RSS SNR about 45 in white matter).
        shape: ``(Ny, Nx)`` for non-square or odd grids.
        noise_samples: samples per coil of the noise-only scan.
        coils: coil geometry (default :class:`CoilArray` with ``ncoils`` loops).
        anatomy: ``"synthetic"`` or ``"colin27"`` (see :func:`brain_image`; needs the
            template file, FileNotFoundError otherwise).
        template: template path for ``"colin27"``.

    Returns:
        :class:`KSpaceData` with ``kspace``, ``clean``, ``noise``, ``psi``, ``maps``,
        ``support`` (head mask) and ``meta`` (generator settings, ``image`` not stored).

    Raises:
        ValueError: non-positive sizes, ``ncoils < 1``, negative ``noise_level``.
    """
    if shape is None:
        shape = (n, n)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 4:
        raise ValueError(f"phantom shape must be (Ny, Nx) with both >= 4, got {shape}")
    if int(ncoils) != ncoils or ncoils < 1:
        raise ValueError(f"ncoils must be a positive integer, got {ncoils!r}")
    if not noise_level >= 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level!r}")
    if int(noise_samples) < 0:
        raise ValueError(f"noise_samples must be >= 0, got {noise_samples!r}")
    if coils is None:
        coils = CoilArray(ncoils=int(ncoils))
    elif coils.ncoils != ncoils:
        raise ValueError(f"coils.ncoils={coils.ncoils} differs from ncoils={ncoils}")
    ss = np.random.SeedSequence([int(seed), 7])
    r_psi, r_noise, r_scan = (np.random.default_rng(s) for s in ss.spawn(3))

    if anatomy == "colin27" and not os.path.exists(template or COLIN27):
        raise FileNotFoundError(
            f"anatomy='colin27' needs the Colin27 template {template or COLIN27!r} (Debian package mricron-data)"
        )
    img, support = brain_image(shape, seed=seed, anatomy=anatomy, template=template)
    maps = loop_coil_maps(shape, coils, support=support)
    coil_img = maps * img[None]
    with jax.enable_x64(True):  # scoped: keep the phantom in double precision whatever the global mode
        clean = np.asarray(jax.jit(fft2c)(coil_img))
    psi = noise_level**2 * coil_noise_covariance(maps, support, rng=r_psi)
    if noise_level > 0:
        kspace = clean + _complex_gauss(r_noise, psi, shape)
        noise = _complex_gauss(r_scan, psi, (int(noise_samples),)) if noise_samples else None
    else:
        kspace, noise = clean.copy(), (np.zeros((int(ncoils), int(noise_samples)), complex) if noise_samples else None)
    meta = {
        "source": "rakijax.data.synthetic.brain_phantom",
        "seed": int(seed),
        "shape": list(shape),
        "ncoils": int(ncoils),
        "noise_level": float(noise_level),
        "noise_samples": int(noise_samples),
        "anatomy": anatomy,
        "coils": {
            "radius_mm": coils.radius_mm,
            "standoff_mm": coils.standoff_mm,
            "ring_z_mm": list(coils.ring_z_mm),
            "rings": coils.rings,
        },
    }
    return KSpaceData(kspace=kspace, noise=noise, psi=psi, maps=maps, support=support, clean=clean, meta=meta)
