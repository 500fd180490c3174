"""Figures: functions that return a :class:`matplotlib.figure.Figure` (never shown).

All figures are built on the Agg canvas (no display, no ``plt.show``); save them
with :func:`rakijax.results.save_figure` or ``fig.savefig``.

Orientation (every figure says which in a note at its foot): ``orientation="ky-vertical"``
(the default) draws the library's array layout as stored, ``(ky, kx)``: phase encoding
vertical (top to bottom), readout horizontal; the built-in phantom appears upright.
``orientation="kx-vertical"`` draws the transpose, readout vertical and phase encoding
horizontal: the usual view of data from BART (``bart toimg``), MATLAB (``imagesc`` of
``(kx, ky)``) and fastMRI (``(kx, ky)`` images), where ky-vertical figures would look
transposed.

g-factor colour scale: :func:`gfactor_scale` gives one ``(vmin, vmax)`` for all maps of a
run (pass it as ``scale=`` to every g figure); ``vmin`` is ``min(1, 0.5th percentile)``, so
``g < 1`` is never clipped to the bottom colour, and values beyond the scale are drawn in
marked colours (below: blue, above: green, with arrows on the colour bar). Outside the
support is blank (white).

Labels: :func:`gfactor_method_label` spells the g-factor methods out ("analytic linear
response (true widely-linear derivative)", "Monte Carlo (1000 pseudo-replicas)");
:func:`run_label` gives "R=4, 24 ACS, slope 0.5, 1000 replicas" for the titles
(``R=``, ``acs=``, ``slope=``, ``replicas=`` keywords of every figure).

Layout: the figure size follows the displayed aspect ratio of the images, so
non-square images leave no white gaps between panels.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "reconstruction_figure",
    "gfactor_figure",
    "gfactor_comparison_figure",
    "image_kspace_figure",
    "loss_figure",
    "gfactor_scale",
    "gfactor_method_label",
    "run_label",
    "ORIENTATIONS",
]

ORIENTATIONS = ("ky-vertical", "kx-vertical")

_NOTE = {
    "ky-vertical": "orientation: ky (phase encoding) vertical, kx (readout) horizontal",
    "kx-vertical": "orientation: kx (readout) vertical, ky (phase encoding) horizontal",
}
_UNDER, _OVER = "#1f77b4", "#2ca02c"  # marked out-of-scale colours of g maps (blue below, green above)


def run_label(method: str | None = None, *, R=None, acs=None, slope=None, replicas=None) -> str:
    """``"RAKI R=4, 24 ACS, slope 0.5, 1000 replicas"`` from whatever is given (empty if nothing)."""
    parts = []
    if R is not None:
        parts.append(f"R={R:g}" if isinstance(R, (int, float)) else f"R={R}")
    if acs is not None:
        parts.append(f"{acs} ACS")
    if slope is not None:
        parts.append(f"slope {slope:g}")
    if replicas is not None:
        parts.append(f"{replicas} replicas")
    s = ", ".join(parts)
    return f"{method} {s}".strip() if method else s


def gfactor_method_label(kind: str, linearisation: str | None = None, *, replicas: int | None = None,
                         noise_scale: float | None = None) -> str:
    """The g-factor method spelled out for titles and legends.

    ``("analytic", "true")`` -> ``"analytic linear response (true widely-linear derivative)"``;
    ``("analytic", "frozen")`` -> ``"analytic linear response (frozen activation masks)"``;
    ``("montecarlo", replicas=1000)`` -> ``"Monte Carlo (1000 pseudo-replicas)"``;
    ``"autodiff"`` -> ``"dense Jacobian (autodiff)"``.
    """
    if kind == "analytic":
        lin = {"true": "true widely-linear derivative", "frozen": "frozen activation masks"}
        return "analytic linear response" + (f" ({lin.get(linearisation, linearisation)})" if linearisation else "")
    if kind == "montecarlo":
        bits = [f"{replicas} pseudo-replicas" if replicas is not None else "pseudo-replicas"]
        if noise_scale is not None and noise_scale != 1:
            bits.append(f"noise x{noise_scale:g}")
        return f"Monte Carlo ({', '.join(bits)})"
    if kind == "autodiff":
        return "dense Jacobian (autodiff)"
    return str(kind)


def _masked(g, support):
    g = np.asarray(g, dtype=float)
    return np.where(support, g, np.nan) if support is not None else g


def gfactor_scale(maps, support=None) -> tuple[float, float]:
    """One g colour scale ``(vmin, vmax)`` for all ``maps`` of a run.

    ``vmin = min(1, 0.5th percentile)`` (g < 1 is shown, not clipped), ``vmax`` the 99.5th
    percentile over all maps (at least ``vmin + 0.05``), inside ``support``.

    Args:
        maps: one (Ny, Nx) map, a sequence of maps, or ``{label: map}`` / ``{label: (a, b)}``.
        support: optional (Ny, Nx) bool.
    """
    if isinstance(maps, Mapping):
        maps = list(maps.values())
    elif isinstance(maps, np.ndarray) and maps.ndim == 2:
        maps = [maps]
    flat = []
    for m in maps:
        for a in (m if isinstance(m, tuple) else (m,)):
            a = _masked(a, support)
            flat.append(a[np.isfinite(a)])
    allg = np.concatenate(flat) if flat else np.zeros(0)
    if not allg.size:
        return 0.0, 2.0
    vmin = min(1.0, float(np.percentile(allg, 0.5)))
    vmax = max(float(np.percentile(allg, 99.5)), vmin + 0.05)
    return vmin, vmax


def _orient(img, orientation):
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    img = np.asarray(img)
    return img.T if orientation == "kx-vertical" else img


def _grid(nrows: int, ncols: int, shape, *, panel: float = 2.6, title_h: float = 0.55, extra_w: float = 0.0,
          foot: float = 0.3):
    """A constrained-layout figure whose panels have the displayed image aspect (no gaps)."""
    from matplotlib.figure import Figure

    h, w = shape
    aspect = h / w
    pw = panel if aspect <= 1 else max(panel / aspect, 0.8 * panel)
    ph = pw * aspect
    fig = Figure(figsize=(ncols * pw + extra_w + 0.2, nrows * (ph + title_h) + foot), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.01, hspace=0.01)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, max(width, 16)) if line else line for line in text.split("\n"))


def _finish(fig, orientation, warning=None, head: str = ""):
    """Orientation note at the foot; run label and warning (red) at the head."""
    fig.supxlabel(_NOTE[orientation], fontsize=7, color="0.3")
    width = int(fig.get_figwidth() * 11)
    lines = [head] if head else []
    if warning:
        lines.append(f"WARNING: {warning}")
    if lines:
        fig.suptitle(_wrap("\n".join(lines), width), fontsize=8, color="#b00000" if warning else "black")
    return fig


def _show(ax, img, title, vmin=None, vmax=None, cmap="gray"):
    im = ax.imshow(np.asarray(img), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    width = int(ax.get_figure().get_figwidth() / max(ax.get_gridspec().ncols, 1) * 13)
    ax.set_title(_wrap(title, width), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _gcmap():
    import matplotlib

    return matplotlib.colormaps["inferno"].with_extremes(under=_UNDER, over=_OVER, bad=(1, 1, 1, 0))


def _extend(g, vmin, vmax):
    f = g[np.isfinite(g)]
    lo, hi = bool((f < vmin).any()), bool((f > vmax).any())
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(lo, hi)]


def reconstruction_figure(reference, recons: Mapping[str, np.ndarray], *, support=None,
                          error_scale: float = 10.0, metrics: Mapping[str, Mapping] | None = None,
                          orientation: str = "ky-vertical", R=None, acs=None, slope=None,
                          warning: str | None = None):
    """Reference | reconstructions (top row) and their errors x ``error_scale`` (bottom).

    Args:
        reference: (Ny, Nx) magnitude reference (RSS of the fully sampled data).
        recons: ``{label: (Ny, Nx) magnitude}``, e.g. ``{"GRAPPA": ..., "RAKI": ...}``.
        support: optional (Ny, Nx) bool; errors are shown inside it only.
        error_scale: magnification of ``|recon - reference|`` (same grey scale as the images).
        metrics: optional ``{label: {"nmse": .., "psnr": .., "ssim": ..}}`` shown in titles.
        orientation: ``"ky-vertical"`` (as stored) or ``"kx-vertical"`` (module docstring).
        R, acs, slope: shown in the reference panel's title.
        warning: a line shown in red above the panels (e.g. an untrusted noise estimate).
    """
    ref = np.abs(np.asarray(reference))
    vmax = float(np.percentile(ref, 99.5))
    n = len(recons) + 1
    fig, axes = _grid(2, n, _orient(ref, orientation).shape)
    run = run_label(R=R, acs=acs, slope=slope)
    _show(axes[0, 0], _orient(ref, orientation), "reference (fully sampled RSS)" + (f"\n{run}" if run else ""), 0, vmax)
    axes[1, 0].axis("off")
    for i, (label, img) in enumerate(recons.items(), start=1):
        img = np.abs(np.asarray(img))
        title = label
        if metrics and label in metrics:
            m = metrics[label]
            title += f"\nNMSE {m.get('nmse', np.nan):.2e}  PSNR {m.get('psnr', np.nan):.1f} dB"
        _show(axes[0, i], _orient(img, orientation), title, 0, vmax)
        err = np.abs(img - ref) * error_scale
        if support is not None:
            err = np.where(support, err, 0)
        _show(axes[1, i], _orient(err, orientation), f"|error| x{error_scale:g}", 0, vmax)
    return _finish(fig, orientation, warning)


def gfactor_figure(g, *, support=None, title: str = "g-factor", vmax: float | None = None,
                   scale: tuple[float, float] | None = None, orientation: str = "ky-vertical",
                   method: str | None = None, R=None, acs=None, slope=None, replicas=None,
                   gfactor: str | None = None, linearisation: str | None = None, warning: str | None = None):
    """One g-factor map (or several side by side) with a colour bar; outside the support blank.

    Args:
        g: (Ny, Nx) map, or ``{label: (Ny, Nx) map}`` for panels sharing one scale.
        support: optional (Ny, Nx) bool.
        title: title of the map (prefixed by the run label and method when given).
        vmax: upper end of the scale (old keyword; ``scale`` takes precedence).
        scale: ``(vmin, vmax)`` shared by all g figures of the run (:func:`gfactor_scale`);
            default: this figure's own maps. Values outside are drawn in marked colours.
        orientation: ``"ky-vertical"`` or ``"kx-vertical"`` (module docstring).
        method, R, acs, slope, replicas: shown in the title (:func:`run_label`).
        gfactor, linearisation: the g method, spelled out (:func:`gfactor_method_label`).
        warning: a line in red (e.g. "noise covariance not trusted").
    """
    maps = dict(g) if isinstance(g, Mapping) else {"": g}
    maps = {k: _masked(v, support) for k, v in maps.items()}
    if scale is None:
        scale = gfactor_scale(list(maps.values()))
        if vmax is not None:
            scale = (min(scale[0], vmax - 0.05), vmax)
    vmin, vmax = scale
    head = run_label(method, R=R, acs=acs, slope=slope, replicas=replicas)
    how = gfactor_method_label(gfactor, linearisation, replicas=replicas) if gfactor else ""
    first = next(iter(maps.values()))
    lines = [t for t in (head, title + (f" ({how})" if how else "")) if t]
    fig, axes = _grid(1, len(maps), _orient(first, orientation).shape, panel=3.4, extra_w=0.9,
                      title_h=0.2 * (len(lines) + 3))
    cmap = _gcmap()
    im = None
    for ax, (label, m) in zip(axes[0], maps.items()):
        sub = m[np.isfinite(m)]
        stats = (f"mean {sub.mean():.3f}  p95 {np.percentile(sub, 95):.3f}  max {sub.max():.3f}"
                 if sub.size else "no pixels")
        t = "\n".join(([label] if label else []) + lines + [stats])
        im = _show(ax, _orient(m, orientation), t, vmin, vmax, cmap=cmap)
    allg = np.concatenate([m.ravel() for m in maps.values()])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="g", extend=_extend(allg, vmin, vmax))
    return _finish(fig, orientation, warning)


def gfactor_comparison_figure(rows: Mapping[str, tuple], *, support=None,
                              labels: Sequence[str] = ("analytic", "Monte Carlo"),
                              scale: tuple[float, float] | None = None, orientation: str = "ky-vertical",
                              R=None, acs=None, slope=None, replicas=None, warning: str | None = None):
    """Side-by-side g-factor maps per method: analytic | Monte Carlo | difference.

    Every map shares one colour scale (``scale``, default :func:`gfactor_scale` of all
    maps, ``g < 1`` shown), and every difference map one symmetric scale, so the methods
    compare at a glance.

    Args:
        rows: ``{method label: (g_analytic, g_montecarlo)}``, each (Ny, Nx).
        support: optional (Ny, Nx) bool mask; outside it is blank.
        labels: column titles of the two maps (see :func:`gfactor_method_label`).
        scale: shared ``(vmin, vmax)``.
        orientation: ``"ky-vertical"`` or ``"kx-vertical"``.
        R, acs, slope, replicas: shown in the figure title.
        warning: a line in red.
    """
    rows = {k: (_masked(a, support), _masked(b, support)) for k, (a, b) in rows.items()}
    vmin, vmax = scale if scale is not None else gfactor_scale(rows)
    diffs = [b - a for a, b in rows.values()]
    dmax = max((float(np.nanpercentile(np.abs(d), 99.5)) for d in diffs if np.isfinite(d).any()), default=0.1) or 0.1
    first = next(iter(rows.values()))[0]
    fig, axes = _grid(len(rows), 3, _orient(first, orientation).shape, panel=3.0, extra_w=1.6)
    cmap = _gcmap()
    allg = np.concatenate([np.ravel(m) for pair in rows.values() for m in pair])
    ext = _extend(allg, vmin, vmax)
    for i, ((name, (a, b)), d) in enumerate(zip(rows.items(), diffs)):
        ma, mb = np.nanmean(a), np.nanmean(b)
        im = _show(axes[i, 0], _orient(a, orientation), f"{name}: {labels[0]}\nmean {ma:.3f}", vmin, vmax, cmap=cmap)
        _show(axes[i, 1], _orient(b, orientation), f"{name}: {labels[1]}\nmean {mb:.3f}", vmin, vmax, cmap=cmap)
        imd = _show(axes[i, 2], _orient(d, orientation), f"difference (2nd - 1st)\nmean {np.nanmean(d):+.3f}",
                    -dmax, dmax, cmap="RdBu_r")
        fig.colorbar(im, ax=axes[i, :2].tolist(), shrink=0.85, label="g", extend=ext)
        fig.colorbar(imd, ax=axes[i, 2], shrink=0.85, label="difference")
    return _finish(fig, orientation, warning, run_label(R=R, acs=acs, slope=slope, replicas=replicas))


def image_kspace_figure(kspace_recon, image_recon, *, label: str = "RAKI", rel_error: float | None = None,
                        orientation: str = "ky-vertical", R=None, acs=None, slope=None):
    """k-space reconstruction | image-space reconstruction | their difference (own scale).

    Args:
        kspace_recon: (Ny, Nx) magnitude of the k-space (convolutional) reconstruction.
        image_recon: (Ny, Nx) magnitude of the image-space (per-pixel + mask
            convolution) reconstruction of the same network.
        label: method name for the titles.
        rel_error: ``||x_image - x_kspace|| / ||x_kspace||`` of the coil images, shown.
        orientation: ``"ky-vertical"`` or ``"kx-vertical"``.
        R, acs, slope: shown in the first title.
    """
    a = np.abs(np.asarray(kspace_recon))
    b = np.abs(np.asarray(image_recon))
    vmax = float(np.percentile(a, 99.5))
    d = b - a
    dmax = float(np.abs(d).max()) or 1.0
    fig, axes = _grid(1, 3, _orient(a, orientation).shape, panel=3.0, extra_w=0.8, title_h=0.75)
    run = run_label(label, R=R, acs=acs, slope=slope)
    _show(axes[0, 0], _orient(a, orientation), f"{run}\nk-space inference", 0, vmax)
    _show(axes[0, 1], _orient(b, orientation), f"{label}: image-space inference", 0, vmax)
    extra = f"\ncoil-image rel. error {rel_error:.1e}" if rel_error is not None else ""
    im = _show(axes[0, 2], _orient(d, orientation), f"image - k-space (max {dmax:.1e}){extra}", -dmax, dmax,
               cmap="RdBu_r")
    fig.colorbar(im, ax=axes[0, 2], shrink=0.85)
    return _finish(fig, orientation)


def loss_figure(losses: Mapping[str, Sequence[float]] | Sequence[float], *, title: str = "RAKI training loss",
                R=None, acs=None, slope=None):
    """Training loss curve(s) on a log scale (``{label: losses}`` or one sequence); R/ACS/slope in the title."""
    if not isinstance(losses, Mapping):
        losses = {"loss": losses}
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    for label, l in losses.items():
        l = np.asarray(l, dtype=float)
        ax.semilogy(np.arange(1, l.size + 1), l, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("ACS loss (MSE)")
    run = run_label(R=R, acs=acs, slope=slope)
    ax.set_title(title + (f" ({run})" if run else ""), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if len(losses) > 1:
        ax.legend(fontsize=8)
    return fig
