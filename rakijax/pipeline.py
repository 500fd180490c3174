"""End-to-end reconstruction of one fully sampled slice: the app layer over the library.

``reconstruct(data, cfg)`` undersamples a fully sampled multi-coil slice
retrospectively, reconstructs it with GRAPPA or RAKI, measures it against the
fully sampled reference and (optionally) computes a g-factor map:

1. **Noise covariance** ``Psi``: ``data.psi`` when known, else estimated from the
   noise scan ``data.noise``, else from signal-free k-space
   (:func:`rakijax.noise.estimate_psi_from_kspace`), else the identity.
2. **Prewhitening** (``cfg.prewhiten``, default on): with ``Psi = L L^H`` the
   k-space is whitened, ``k_w = L^{-1} k`` (noise covariance ``I``), calibrated /
   trained and reconstructed there, and the reconstructed coil k-space is mapped
   back to the scanner's coil basis, ``k = L k_w``. Because the map back is linear
   the noise analysis stays exact: the combined image
   ``rho = sum_c conj(p_c) x_c = sum_c conj((L^H p)_c) x_w,c``, so every g-factor is
   computed in the whitened basis with identity covariance and weights
   ``p_w = L^H p``, and ``g = sqrt(p_w^H Cov_w p_w) / (sqrt(p^H Psi p) sqrt(R))``
   (``p^H Psi p = |p_w|^2``). Without prewhitening the work basis is the scanner's
   and the g-factor uses ``Psi`` directly.
3. **Images**: ``reference`` is the root-sum-of-squares of the fully sampled
   input's coil images; ``recon`` is ``rho = sum conj(p) x`` with
   ``p = x / RSS(x)`` of the reconstructed coil images, i.e. their RSS
   (DESIGN.md), both in the scanner's coil basis.
4. **Support** for metrics and g-factor summaries: ``data.support`` when given,
   else ``reference > 0.1 * percentile_99(reference)`` closed and hole-filled
   (:func:`support_mask`): the object, without the noise-only background.
5. **g-factor** (``cfg.gfactor``): ``"analytic"`` (GRAPPA: Breuer 2009 per-pixel
   form; RAKI: the exact banded linear-response map of :mod:`rakijax.gfactor`,
   ``cfg.linearisation`` "true" or "frozen"), ``"montecarlo"`` (pseudo-replicas of
   the actual, possibly nonlinear, reconstruction with noise of covariance
   ``mc_noise_scale**2 Psi`` on the acquired samples; Robson 2008), ``"autodiff"``
   (dense ``jax.jacfwd`` of the reconstruction; small grids only, refused above
   ``cfg.autodiff_max_gib``) or ``"none"``.

References: Griswold 2002 (GRAPPA); Akcakaya 2019 (RAKI); Breuer 2009 (GRAPPA
g-factor); Robson 2008 (pseudo-replicas); Dawood 2024 (image-space formalism).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .fft import ifft2c
from .sampling import Sampling, make_sampling, undersample

__all__ = [
    "ReconConfig",
    "ReconResult",
    "reconstruct",
    "gfactor_map",
    "support_mask",
    "rss",
    "autodiff_bytes",
    "check_feasible",
]

log = logging.getLogger(__name__)

METHODS = ("grappa", "raki")
GFACTOR_METHODS = ("analytic", "montecarlo", "autodiff", "none")
LINEARISATIONS = ("true", "frozen")


@dataclass(frozen=True)
class ReconConfig:
    """Configuration of one reconstruction (validated on construction).

    Attributes:
        method: ``"grappa"`` or ``"raki"``.
        R: acceleration factor (integer >= 1; >= 2 for a reconstruction to do anything).
        acs: number of contiguous ACS lines centred on ``Ny//2``.
        slope: negative slope ``a`` of the complex leaky ReLU (RAKI), ``0 <= a <= 1``.
        gfactor: ``"analytic"``, ``"montecarlo"``, ``"autodiff"`` or ``"none"``.
        linearisation: RAKI analytic map: ``"true"`` (widely-linear derivative) or
            ``"frozen"`` (the paper's frozen activation masks).
        replicas: Monte Carlo pseudo-replicas (``>= 2``).
        mc_noise_scale: Monte Carlo noise standard deviation relative to ``Psi``
            (``> 0``; small values probe the linear response).
        mc_chunk: replicas per batched call (memory bound).
        seed: seed of every PRNG key (RAKI initialisation, Monte Carlo noise).
        raki: RAKI architecture/training (:class:`rakijax.raki.RakiConfig`); ``None``
            means the default ``RakiConfig()``.
        grappa_kernel: GRAPPA kernel (acquired lines in ky, points in kx).
        grappa_lambda: GRAPPA Tikhonov regularisation; ``None`` = library default.
        offset: first acquired line; ``None`` = ``(Ny//2) % R`` (centre line acquired).
        prewhiten: reconstruct in the prewhitened coil basis (see module docstring).
        slice: slice index the data came from (recorded; loading selects it).
        autodiff_max_gib: largest dense Jacobian (GiB) that ``gfactor="autodiff"`` builds.
        progress: show progress bars (training, Monte Carlo).
    """

    method: str = "grappa"
    R: int = 4
    acs: int = 24
    slope: float = 0.5
    gfactor: str = "analytic"
    linearisation: str = "true"
    replicas: int = 1000
    mc_noise_scale: float = 1.0
    mc_chunk: int = 50
    seed: int = 0
    raki: Any = None
    grappa_kernel: tuple = (2, 5)
    grappa_lambda: float | None = None
    offset: int | None = None
    prewhiten: bool = True
    slice: int = 0
    autodiff_max_gib: float = 2.0
    progress: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.R, bool) or int(self.R) != self.R or self.R < 1:
            raise ValueError(f"acceleration R must be an integer >= 1, got R={self.R!r}")
        if isinstance(self.acs, bool) or int(self.acs) != self.acs or self.acs < 0:
            raise ValueError(f"ACS lines must be a non-negative integer, got acs={self.acs!r}")
        if not (0.0 <= float(self.slope) <= 1.0):
            raise ValueError(f"negative slope must lie in [0, 1], got slope={self.slope!r}")
        if self.gfactor not in GFACTOR_METHODS:
            raise ValueError(f"gfactor must be one of {GFACTOR_METHODS}, got {self.gfactor!r}")
        if self.linearisation not in LINEARISATIONS:
            raise ValueError(f"linearisation must be one of {LINEARISATIONS}, got {self.linearisation!r}")
        if int(self.replicas) != self.replicas or self.replicas < 2:
            raise ValueError(f"Monte Carlo needs at least 2 replicas, got replicas={self.replicas!r}")
        if not (float(self.mc_noise_scale) > 0 and np.isfinite(self.mc_noise_scale)):
            raise ValueError(f"mc_noise_scale must be a positive number, got {self.mc_noise_scale!r}")
        if int(self.mc_chunk) != self.mc_chunk or self.mc_chunk < 1:
            raise ValueError(f"mc_chunk must be a positive integer, got {self.mc_chunk!r}")
        if len(self.grappa_kernel) != 2 or min(self.grappa_kernel) < 1:
            raise ValueError(f"grappa_kernel must be (lines in ky, points in kx) >= 1, got {self.grappa_kernel!r}")
        if self.grappa_lambda is not None and not float(self.grappa_lambda) >= 0:
            raise ValueError(f"grappa_lambda must be >= 0, got {self.grappa_lambda!r}")
        if self.slice < 0:
            raise ValueError(f"slice index must be >= 0, got {self.slice}")
        if not self.autodiff_max_gib > 0:
            raise ValueError(f"autodiff_max_gib must be positive, got {self.autodiff_max_gib}")
        object.__setattr__(self, "R", int(self.R))
        object.__setattr__(self, "acs", int(self.acs))
        object.__setattr__(self, "replicas", int(self.replicas))
        object.__setattr__(self, "grappa_kernel", tuple(int(k) for k in self.grappa_kernel))

    def raki_config(self):
        """The RAKI configuration in effect (default ``RakiConfig()``)."""
        if self.raki is not None:
            return self.raki
        from .raki import RakiConfig

        return RakiConfig()

    def to_dict(self) -> dict:
        """JSON-friendly dictionary of the resolved configuration."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["grappa_kernel"] = list(self.grappa_kernel)
        if self.method == "raki" or self.raki is not None:
            rc = self.raki_config()
            d["raki"] = _jsonable(dataclasses.asdict(rc) if dataclasses.is_dataclass(rc) else rc)
        else:
            d["raki"] = None
        return _jsonable(d)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


@dataclass
class ReconResult:
    """What :func:`reconstruct` returns (numpy arrays, scanner coil basis).

    Attributes:
        reference: (Ny, Nx) RSS of the fully sampled input.
        recon: (Ny, Nx) coil-combined reconstruction ``rho = sum conj(p) x`` (= RSS).
        recon_kspace: (Nc, Ny, Nx) reconstructed coil k-space.
        coil_images: (Nc, Ny, Nx) reconstructed coil images ``ifft2c(recon_kspace)``.
        gfactor: (Ny, Nx) g-factor map, or ``None``.
        mask: (Ny,) bool, the sampled ky lines (regular lines and ACS).
        support: (Ny, Nx) bool, where metrics and g summaries are taken.
        image_space_recon: (Ny, Nx) RSS of the image-space reconstruction (or ``None``).
        metrics: NMSE/PSNR/SSIM, g summaries, ``image_space_rel_error``, ``timings``...
        timings: seconds per step.
        kernels: the reconstruction's kernels (work basis), list of (cout, cin, kh, kw).
        losses: RAKI training loss curve (or ``None``).
        sampling: the :class:`~rakijax.sampling.Sampling`.
        config: the :class:`ReconConfig`.
        psi: (Nc, Nc) noise covariance used.
        work: internals for further noise analysis (:func:`gfactor_map`).
    """

    reference: np.ndarray
    recon: np.ndarray
    recon_kspace: np.ndarray
    coil_images: np.ndarray
    gfactor: np.ndarray | None
    mask: np.ndarray
    support: np.ndarray
    image_space_recon: np.ndarray | None
    metrics: dict
    timings: dict
    kernels: list
    losses: np.ndarray | None
    sampling: Sampling
    config: ReconConfig
    psi: np.ndarray
    work: dict = field(default_factory=dict, repr=False)


# ----------------------------------------------------------------------------- helpers


def rss(x, axis: int = -3):
    """Root-sum-of-squares over the coil axis."""
    return np.sqrt(np.sum(np.abs(np.asarray(x)) ** 2, axis=axis))


def support_mask(reference, frac: float = 0.1) -> np.ndarray:
    """Object support from a magnitude image (used when the data carries none).

    ``reference > frac * percentile_99(reference)``, then a binary closing
    (3x3, 2 iterations) and hole filling, so that dark structures inside the
    object (CSF, vessels) stay in the support and the noise-only background is out.
    """
    from scipy import ndimage

    ref = np.asarray(reference, dtype=float)
    thr = frac * np.percentile(ref, 99)
    m = ref > thr
    m = ndimage.binary_closing(m, structure=np.ones((3, 3)), iterations=2)
    m = ndimage.binary_fill_holes(m)
    if not m.any():
        raise ValueError("the reference image is empty: no object support found")
    return m


def autodiff_bytes(nc: int, ny: int, nx: int, R: int, itemsize: int = 8) -> int:
    """Peak memory estimate (bytes) of ``gfactor="autodiff"``.

    The dense real Jacobian ``d[Re x, Im x] / d[Re n, Im n]`` has
    ``(2 Nc Ny Nx) x (2 Nc Y Nx)`` entries (``Y = ceil(Ny/R)`` acquired lines;
    :func:`rakijax.gfactor.reference.dense_jacobian_bytes`), and the per-pixel
    contraction holds a complex copy of it: peak about twice the Jacobian.
    """
    from .gfactor.reference import dense_jacobian_bytes

    Y = len(range(0, ny, R))
    return 2 * dense_jacobian_bytes((nc, Y, nx), (nc, ny, nx), itemsize)


def check_feasible(shape, cfg: "ReconConfig", itemsize: int | None = None) -> Sampling:
    """Cheap up-front checks of a reconstruction of k-space ``shape`` (Nc, Ny, Nx).

    Validates the sampling (R, ACS), that ``R > 1`` has ACS lines, that an analytic
    g-factor is defined (``Ny % R == 0``) and that an autodiff g-factor fits in
    ``cfg.autodiff_max_gib``; called by :func:`reconstruct` before any heavy work.

    Returns:
        The :class:`~rakijax.sampling.Sampling`.

    Raises:
        ValueError: naming the problem and the sizes.
    """
    if len(shape) != 3:
        raise ValueError(f"k-space must be (coil, ky, kx), got shape {tuple(shape)}")
    nc, ny, nx = (int(n) for n in shape)
    sampling = make_sampling(ny, cfg.R, cfg.acs, cfg.offset)
    if cfg.R > 1 and cfg.acs == 0:
        raise ValueError(f"R={cfg.R} needs ACS lines for calibration, got acs=0")
    if cfg.gfactor == "analytic" and ny % cfg.R:
        raise ValueError(
            f"the analytic g-factor needs Ny divisible by R (Ny={ny}, R={cfg.R}); use --gfactor montecarlo"
        )
    if cfg.gfactor == "autodiff":
        if itemsize is None:
            itemsize = 8 if jax.config.jax_enable_x64 else 4
        need = autodiff_bytes(nc, ny, nx, cfg.R, itemsize=itemsize)
        if need > cfg.autodiff_max_gib * 2**30:
            raise ValueError(_autodiff_refusal(nc, ny, nx, cfg, need))
    return sampling


def _autodiff_refusal(nc, ny, nx, cfg, need):
    return (
        f"--gfactor autodiff refused: the dense Jacobian of a {nc}-coil {ny}x{nx} reconstruction at "
        f"R={cfg.R} needs about {need / 2**30:.1f} GiB (limit {cfg.autodiff_max_gib:g} GiB); it grows as "
        f"(Nc*Ny*Nx)^2/R. Use --gfactor analytic (exact, banded) or montecarlo"
    )


def _block(x):
    return jax.block_until_ready(x)


def _check_data(data):
    k = np.asarray(data.kspace)
    if k.ndim != 3:
        raise ValueError(f"k-space must be (coil, ky, kx), got shape {k.shape}")
    if not np.iscomplexobj(k):
        raise ValueError(f"k-space must be complex, got dtype {k.dtype}")
    if not np.all(np.isfinite(k)):
        n_bad = int(np.size(k) - np.count_nonzero(np.isfinite(k)))
        raise ValueError(f"k-space contains {n_bad} NaN/Inf values (shape {k.shape})")
    return k


def _noise_covariance(data, nc: int):
    """``(psi, source)``: given, from the noise scan, from k-space, or identity."""
    from . import noise as nz

    psi = getattr(data, "psi", None)
    if psi is not None:
        return np.asarray(psi), "given"
    nscan = getattr(data, "noise", None)
    if nscan is not None:
        return np.asarray(nz.estimate_psi(nscan)), "noise scan"
    try:
        return np.asarray(nz.estimate_psi_from_kspace(np.asarray(data.kspace))), "k-space background"
    except (ValueError, np.linalg.LinAlgError) as e:  # no usable background
        log.warning("noise covariance: could not estimate from k-space (%s); using identity", e)
        return np.eye(nc, dtype=np.asarray(data.kspace).dtype), "identity"


def _whitener(psi, prewhiten: bool):
    """``(Wm, Lm)``: whitening matrix ``Wm`` (``Wm Psi Wm^H = I``) and its inverse."""
    nc = psi.shape[0]
    if not prewhiten:
        eye = np.eye(nc, dtype=np.complex128)
        return eye, eye
    from . import noise as nz

    Wm = np.asarray(nz.whitening_matrix(psi), dtype=np.complex128)
    return Wm, np.linalg.inv(Wm)


def _mix(M, k):
    return jnp.einsum("cd,d...->c...", jnp.asarray(M, k.dtype), k)


# ----------------------------------------------------------------------------- methods


def _calibrate(cfg: ReconConfig, acs_block, sampling, key):
    """Returns ``(kernels, losses, seconds)``; the kernels act on the work basis."""
    t0 = time.perf_counter()
    losses = None
    if cfg.R == 1:  # nothing to calibrate: the acquired k-space is the reconstruction
        return [], None, 0.0
    if cfg.method == "grappa":
        from . import grappa

        kw = {"kernel": cfg.grappa_kernel}
        if cfg.grappa_lambda is not None:
            kw["lamda"] = cfg.grappa_lambda
        kernels = grappa.calibrate(acs_block, cfg.R, **kw)
    else:
        from . import raki

        tr = raki.train(acs_block, cfg.R, cfg.raki_config(), cfg.slope, key=key, progress=cfg.progress)
        kernels, losses = tr.kernels, np.asarray(tr.losses)
    kernels = [_block(jnp.asarray(w)) for w in kernels]
    return kernels, losses, time.perf_counter() - t0


def _apply(cfg, kernels, u, sampling):
    if cfg.R == 1:
        return jnp.asarray(u)
    if cfg.method == "grappa":
        from . import grappa

        return grappa.apply(kernels, u, sampling)
    from . import raki

    return raki.apply(kernels, u, sampling, cfg.slope)


def _recon_fn(cfg, kernels, sampling):
    """Pure ``u (Nc, Y, X) -> coil images (Nc, Ny, Nx)`` of the reconstruction (work basis)."""
    from .kspace_net import apply_network

    slope = 1.0 if cfg.method == "grappa" else cfg.slope

    def fn(u):
        if sampling.R == 1:
            return ifft2c(u)
        return ifft2c(apply_network(kernels, u, sampling, slope))

    return fn


def _image_space(cfg, kernels, zero_filled, u, sampling, x_kspace):
    """Image-space reconstruction (coil images, work basis) or ``None`` if undefined."""
    ny, nx = zero_filled.shape[-2:]
    if cfg.R == 1:
        return ifft2c(zero_filled)
    if ny % cfg.R:
        log.info("image-space form skipped: Ny=%d is not a multiple of R=%d", ny, cfg.R)
        return None
    a = ifft2c(zero_filled)
    if cfg.method == "grappa":
        from .image_space.weights import linear_unmixing

        G = linear_unmixing(kernels, (ny, nx), cfg.R)
        return jnp.einsum("cdyx,dyx->cyx", G, a)
    from .image_space.operator import ImageSpaceRaki

    op = ImageSpaceRaki.from_kernels(kernels, u, cfg.slope, sampling)
    return op(a)


# ----------------------------------------------------------------------------- g-factor


def gfactor_map(result: ReconResult, method: str | None = None, **overrides):
    """g-factor map of a finished reconstruction (e.g. a second method for comparison).

    Args:
        result: a :class:`ReconResult` from :func:`reconstruct`.
        method: ``"analytic"``, ``"montecarlo"`` or ``"autodiff"``; default ``cfg.gfactor``.
        **overrides: :class:`ReconConfig` fields to change (``replicas``,
            ``mc_noise_scale``, ``linearisation``, ``seed``, ...).

    Returns:
        ``(g, seconds)``: (Ny, Nx) numpy g-factor map and the time it took.
    """
    cfg = dataclasses.replace(result.config, **overrides)
    method = method or cfg.gfactor
    if method not in GFACTOR_METHODS or method == "none":
        raise ValueError(f"g-factor method must be analytic, montecarlo or autodiff, got {method!r}")
    w = result.work
    t0 = time.perf_counter()
    g = _gfactor(cfg, method, result.kernels, w["u"], result.sampling, w["p_work"], w["psi_work"])
    g = np.asarray(_block(g))
    return g, time.perf_counter() - t0


def _gfactor(cfg, method, kernels, u, sampling, p_w, psi_w):
    """g-factor map in the work basis: covariance ``psi_w`` there, weights ``p_w``."""
    from .gfactor.combine import gfactor_from_cov

    nc, Y, nx = u.shape
    ny = sampling.ny
    R = cfg.R
    if method == "analytic":
        if ny % R:
            raise ValueError(
                f"the analytic g-factor needs Ny divisible by R (Ny={ny}, R={R}); use --gfactor montecarlo"
            )
        if R == 1:  # Cov = Psi exactly: g = 1 (closed form)
            return gfactor_from_cov(jnp.asarray(psi_w, p_w.dtype), p_w, psi_w, R)
        if cfg.method == "grappa":
            from .gfactor import grappa as gg

            cov = gg.grappa_cov(kernels, sampling, (ny, nx), psi_w)
            return gfactor_from_cov(cov, p_w, psi_w, R)
        from .gfactor.maps import raki_gfactor

        return raki_gfactor(kernels, u, cfg.slope, sampling, psi=psi_w, p=p_w, linearisation=cfg.linearisation).g
    fn = _recon_fn(cfg, kernels, sampling)
    if method == "autodiff":
        need = autodiff_bytes(nc, ny, nx, R, itemsize=jnp.real(u).dtype.itemsize)
        if need > cfg.autodiff_max_gib * 2**30:
            raise ValueError(_autodiff_refusal(nc, ny, nx, cfg, need))
        from .gfactor.reference import jacobian_cov

        cov = jacobian_cov(fn, u, psi=psi_w)
        return gfactor_from_cov(cov, p_w, psi_w, R)
    from .gfactor.reference import gfactor_from_variance, monte_carlo_variance

    key = jax.random.PRNGKey(cfg.seed + 1)
    var = monte_carlo_variance(
        fn, u, psi_w, p_w, key=key, replicas=cfg.replicas, noise_scale=cfg.mc_noise_scale,
        chunk=cfg.mc_chunk, progress=cfg.progress,
    )
    return gfactor_from_variance(var, p_w, psi_w, R)


# ----------------------------------------------------------------------------- main entry


def reconstruct(data, cfg: ReconConfig) -> ReconResult:
    """Undersample a fully sampled slice, reconstruct it and analyse its noise.

    Args:
        data: :class:`rakijax.data.KSpaceData` with fully sampled ``kspace`` (Nc, Ny, Nx).
        cfg: the :class:`ReconConfig`.

    Returns:
        :class:`ReconResult`; ``metrics`` holds ``nmse``, ``psnr``, ``ssim`` (in the
        support, against the reference), ``gfactor_mean/p95/max`` (in the support),
        ``gfactor_method``, ``linearisation``, ``image_space_rel_error`` =
        ``||x_image - x_kspace|| / ||x_kspace||`` of the coil images and ``timings``.

    Raises:
        ValueError: bad data (rank, NaN/Inf), sampling (R, ACS), or a g-factor
            method that cannot run on this grid.
    """
    from . import metrics as mt

    if not isinstance(cfg, ReconConfig):
        raise ValueError(f"cfg must be a ReconConfig, got {type(cfg).__name__}")
    k = _check_data(data)
    nc, ny, nx = k.shape
    sampling = check_feasible(k.shape, cfg)
    timings: dict[str, float] = {}
    dtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64

    # noise covariance and the work basis
    psi, psi_source = _noise_covariance(data, nc)
    if psi.shape != (nc, nc):
        raise ValueError(f"noise covariance must be ({nc}, {nc}) for {nc} coils, got {psi.shape}")
    Wm, Lm = _whitener(psi, cfg.prewhiten)
    psi_w = np.eye(nc) if cfg.prewhiten else psi
    kj = jnp.asarray(k, dtype)
    k_w = _mix(Wm, kj) if cfg.prewhiten else kj

    reference = rss(ifft2c(kj))
    support = np.asarray(data.support, bool) if getattr(data, "support", None) is not None else support_mask(reference)
    if support.shape != (ny, nx):
        raise ValueError(f"support mask must be ({ny}, {nx}), got {support.shape}")

    zero_filled, u, acs_block = undersample(k_w, sampling)
    key = jax.random.PRNGKey(cfg.seed)

    log.info("%s: calibrating on %d ACS lines (R=%d, %d coils, %dx%d)", cfg.method.upper(), cfg.acs, cfg.R, nc, ny, nx)
    kernels, losses, t_cal = _calibrate(cfg, acs_block, sampling, key)
    timings["train_s" if cfg.method == "raki" else "calibration_s"] = t_cal

    t0 = time.perf_counter()
    kw_rec = _block(_apply(cfg, kernels, u, sampling))
    timings["apply_s"] = time.perf_counter() - t0
    log.info("%s: applied in %.2f s", cfg.method.upper(), timings["apply_s"])

    x_w = ifft2c(kw_rec)
    recon_kspace = _mix(Lm, kw_rec) if cfg.prewhiten else kw_rec
    x = ifft2c(recon_kspace)
    from .gfactor.combine import combination_weights, combine

    p = combination_weights(x)
    recon = np.real(np.asarray(combine(x, p)))
    p_w = _mix(np.conj(Lm).T, p) if cfg.prewhiten else p  # p_w = L^H p

    # image-space form
    x_img = _image_space(cfg, kernels, zero_filled, u, sampling, x_w)
    if x_img is not None:
        rel = float(jnp.linalg.norm(x_img - x_w) / jnp.linalg.norm(x_w))
        img_recon = rss(_mix(Lm, x_img) if cfg.prewhiten else x_img)
    else:
        rel, img_recon = None, None

    # g-factor
    g = None
    if cfg.gfactor != "none":
        log.info("g-factor (%s) ...", cfg.gfactor)
        t0 = time.perf_counter()
        g = np.asarray(_block(_gfactor(cfg, cfg.gfactor, kernels, u, sampling, p_w, psi_w)))
        timings["gfactor_s"] = time.perf_counter() - t0
        log.info("g-factor (%s) in %.2f s", cfg.gfactor, timings["gfactor_s"])

    metrics: dict[str, Any] = {
        "method": cfg.method,
        "R": cfg.R,
        "acs": cfg.acs,
        "R_eff": float(sampling.R_eff),
        "nmse": float(mt.nmse(reference, recon, support)),
        "psnr": float(mt.psnr(reference, recon, support)),
        "ssim": float(mt.ssim(reference, recon, support)),
        "nmse_full_image": float(mt.nmse(reference, recon)),
        "gfactor_method": cfg.gfactor,
        "linearisation": cfg.linearisation if (cfg.method == "raki" and cfg.gfactor == "analytic") else None,
        "image_space_rel_error": rel,
        "noise_covariance": psi_source,
        "prewhitened": bool(cfg.prewhiten),
        "support_pixels": int(support.sum()),
    }
    if cfg.method == "raki":
        metrics["slope"] = float(cfg.slope)
        if losses is not None and len(losses):
            metrics["final_loss"] = float(losses[-1])
    if g is not None:
        metrics.update({k_: float(v) for k_, v in mt.gfactor_summary(g, support).items()})
        if cfg.gfactor == "montecarlo":
            metrics["replicas"] = cfg.replicas
            metrics["mc_noise_scale"] = float(cfg.mc_noise_scale)
    metrics["timings"] = dict(timings)

    return ReconResult(
        reference=np.asarray(reference),
        recon=recon,
        recon_kspace=np.asarray(recon_kspace),
        coil_images=np.asarray(x),
        gfactor=g,
        mask=sampling.mask(include_acs=True),
        support=support,
        image_space_recon=None if img_recon is None else np.asarray(img_recon),
        metrics=metrics,
        timings=timings,
        kernels=[np.asarray(w) for w in kernels],
        losses=losses,
        sampling=sampling,
        config=cfg,
        psi=np.asarray(psi),
        work={"u": u, "p_work": p_w, "psi_work": jnp.asarray(psi_w, u.dtype), "Lm": Lm},
    )
