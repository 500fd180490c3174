"""Image-space activation kernels per layer and the centre artifact as the slope varies.

For each negative slope a RAKI network is trained (:func:`rakijax.pipeline.reconstruct`);
its activation masks ``m = s(z)/z`` (:func:`rakijax.image_space.activation_masks`) are placed
on the full grid and transformed to image space, where each is a convolution kernel: a
centre peak (the mean mask, a pure scaling) on a background that convolves the image with
itself (the "autocorrelation" pattern of Dawood et al. 2024).

Per slope: mask statistics per hidden layer (:func:`rakijax.image_space.mask_statistics`:
fraction of non-identity activations, fraction with ``beta != 0``, centre energy of the image
kernels) and two centre-artifact indices, the ratio of the mean reconstruction error (and of
the mean g) in a central disk of radius ``N/16`` to its mean over the object support
(1 = no excess at the centre).

Writes ``activations.csv/.md``, ``mask_statistics.png``, ``kernels_slope<a>_layer<l>.png``,
``errors.png`` (error maps across slopes), ``config.json``.

Usage: ``python experiments/activations.py [--small] [--slopes 0,0.1,0.25,0.5,0.75,1]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

NAME = "activations"


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.add_argument("--slopes", help="comma-separated slopes (default 0,0.1,0.25,0.5,0.75,1; --small 0,1)")
    args = ap.parse_args(argv)
    s = C.settings(args)
    slopes = ([float(x) for x in args.slopes.split(",")] if args.slopes
              else ([0.0, 1.0] if args.small else [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]))
    out = C.run_dir(args, NAME)
    C.write_config(out, NAME, args, s, slopes=slopes)

    from matplotlib.figure import Figure

    from rakijax import pipeline
    from rakijax.image_space import activation_masks, mask_statistics, plot_activation_kernels, plot_mask_statistics

    data = C.phantom(s)
    rows, stats, errors = [], [], []
    centre = None
    for a in slopes:
        cfg = pipeline.ReconConfig(method="raki", R=s["R"], acs=s["acs"], slope=a, gfactor="analytic",
                                   seed=args.seed, raki=C.raki_config(s))
        res = pipeline.reconstruct(data, cfg)
        sup = res.support
        centre = C.centre_disk(sup.shape) & sup if centre is None else centre
        err = np.abs(res.recon - res.reference)
        g = np.asarray(res.gfactor)
        masks = activation_masks(res.kernels, res.prepared.reduced, res.sampling, a)
        st = mask_statistics(masks, res.sampling)
        stats.append(st)
        row = {"slope": a, "nmse": res.metrics["nmse"], "gfactor_mean": res.metrics["gfactor_mean"],
               "centre_error_ratio": float(err[centre].mean() / err[sup].mean()),
               "centre_g_ratio": float(g[centre].mean() / g[sup].mean())}
        for l, d in enumerate(st, start=1):
            row.update({f"L{l}_{k}": v for k, v in d.items()})
        rows.append(row)
        errors.append((a, err, g))
        if a in (min(slopes), 0.5) and a < 1:
            for l in range(masks.num_hidden):
                C.save(plot_activation_kernels(masks, res.sampling, layer=l), out, f"kernels_slope{a:g}_layer{l + 1}")

    C.write_table(out, NAME, rows)
    C.save(plot_mask_statistics(slopes, stats), out, "mask_statistics")
    fig = Figure(figsize=(2.4 * len(errors), 5.0), layout="constrained")
    axes = fig.subplots(2, len(errors), squeeze=False)
    emax = float(max(np.percentile(e[sup], 99.5) for _, e, _ in errors))
    gmax = float(max(np.percentile(g[sup], 99.5) for _, _, g in errors))
    for j, (a, e, g) in enumerate(errors):
        axes[0, j].imshow(np.where(sup, e, 0), cmap="gray", vmin=0, vmax=emax)
        axes[0, j].set_title(f"|error|, slope {a:g}", fontsize=8)
        axes[1, j].imshow(np.where(sup, g, np.nan), cmap="inferno", vmin=1, vmax=max(gmax, 1.01))
        axes[1, j].set_title(f"g, slope {a:g}", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([]), ax.set_yticks([])
    C.save(fig, out, "errors")
    return out


if __name__ == "__main__":
    print(main())
