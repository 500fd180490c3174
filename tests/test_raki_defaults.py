"""The RAKI training defaults against the previous ones (2000 Adam steps at 1e-3, complex He init),
on a small phantom, judged by the image NMSE against the fully sampled reference (not by the loss
the optimiser minimises)."""

import jax
import numpy as np

from rakijax import metrics, raki
from rakijax.data import brain_phantom
from rakijax.fft import ifft2c
from rakijax.sampling import make_sampling, undersample

OLD = dict(optimizer="adam", steps=2000, learning_rate=1e-3, init_scale=1.0)


def _rss(k):
    return np.sqrt((np.abs(np.asarray(ifft2c(k))) ** 2).sum(0))


def test_new_default_no_worse_than_old_default():
    data = brain_phantom(48, 6, seed=3)
    k = data.kspace.astype(np.complex64)  # float32 throughout, as users run it
    s = make_sampling(48, 3, 16)
    _, red, acs = undersample(k, s)
    ref = _rss(k)
    new_cfg, old_cfg = raki.RakiConfig(), raki.RakiConfig(**OLD)
    assert new_cfg.steps * 4 <= old_cfg.steps  # the point of the new default: far fewer steps
    err = {}
    for name, cfg in (("new", new_cfg), ("old", old_cfg)):
        res = raki.train(acs, s, cfg, 0.5, key=jax.random.key(0))
        err[name] = float(metrics.nmse(ref, _rss(raki.apply(res.kernels, red, s, 0.5)), data.support))
    # "no worse": one seed, so allow the 2% that init seeds alone move the NMSE on this grid
    assert err["new"] <= 1.02 * err["old"], err
