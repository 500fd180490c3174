"""k-space vs image-space reconstruction for GRAPPA and RAKI (Dawood et al. 2024, Fig. 1).

Reconstructs the built-in phantom with GRAPPA and RAKI (:func:`rakijax.pipeline.reconstruct`),
then with the exact image-space operator (per-pixel weights and activation masks as image-space
convolutions), and reports NMSE / PSNR / SSIM of both against the fully sampled reference and the
relative difference ``||x_image - x_kspace|| / ||x_kspace||`` of the coil images (float precision:
circular k-space edges make the two forms identical).

Writes ``equivalence.csv/.md``, ``reconstructions.png``, ``image_vs_kspace_<method>.png``, ``config.json``.

Usage: ``python experiments/equivalence.py [--small] [--out DIR] [--slope 0.5]``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

NAME = "equivalence"


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.add_argument("--slope", type=float, default=0.5, help="RAKI negative slope")
    args = ap.parse_args(argv)
    s = C.settings(args)
    out = C.run_dir(args, NAME)
    C.write_config(out, NAME, args, s)

    from rakijax import metrics, pipeline, plotting

    data = C.phantom(s)
    rows, images, mets = [], {}, {}
    for method in ("grappa", "raki"):
        cfg = pipeline.ReconConfig(method=method, R=s["R"], acs=s["acs"], slope=args.slope, gfactor="none",
                                   seed=args.seed, raki=C.raki_config(s))
        res = pipeline.reconstruct(data, cfg)
        label = method.upper()
        images[f"{label} k-space"] = res.recon
        images[f"{label} image space"] = res.image_space_recon
        for form, img in (("k-space", res.recon), ("image space", res.image_space_recon)):
            m = {k: float(f(res.reference, img, res.support)) for k, f in
                 (("nmse", metrics.nmse), ("psnr", metrics.psnr), ("ssim", metrics.ssim))}
            mets[f"{label} {form}"] = m
            rows.append({"method": method, "form": form, **m,
                         "image_vs_kspace_rel_error": float(res.metrics["image_space_rel_error"])})
        C.save(plotting.image_kspace_figure(res.recon, res.image_space_recon, label=label,
                                            rel_error=res.metrics["image_space_rel_error"]), out,
               f"image_vs_kspace_{method}")
    C.write_table(out, NAME, rows)
    C.save(plotting.reconstruction_figure(res.reference, images, support=res.support, metrics=mets),
           out, "reconstructions")
    return out


if __name__ == "__main__":
    print(main())
