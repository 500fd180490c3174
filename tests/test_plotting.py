"""rakijax.plotting: orientation note, shared g scale without clipping at 1, titles, layouts (issue 13 item 8)."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rakijax import plotting as pl


def _img(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def _images(fig):
    return [im for ax in fig.axes for im in ax.images if ax.get_label() != "<colorbar>"]


def _texts(fig):
    out = [ax.get_title() for ax in fig.axes]
    out += [t.get_text() for t in (fig._suptitle, fig._supxlabel) if t is not None]
    return "\n".join(out)


def _all_figures(shape, orientation="ky-vertical", **kw):
    ref = _img(shape)
    g = 1 + _img(shape, 1)
    return {
        "rec": pl.reconstruction_figure(ref, {"A": ref * 1.01}, orientation=orientation, **kw),
        "g": pl.gfactor_figure(g, orientation=orientation, **kw),
        "cmp": pl.gfactor_comparison_figure({"A": (g, g * 1.01)}, orientation=orientation, **kw),
        "iks": pl.image_kspace_figure(ref, ref + 1e-7, orientation=orientation, **kw),
    }


def test_existing_calls_still_work():
    ref, g = _img((16, 16)), 1 + _img((16, 16), 1)
    sup = np.ones((16, 16), bool)
    for fig in (pl.reconstruction_figure(ref, {"RAKI": ref}, support=sup, metrics={"RAKI": {"nmse": 1e-3}}),
                pl.gfactor_figure(g, support=sup, title="RAKI g-factor", vmax=2.0),
                pl.gfactor_comparison_figure({"RAKI": (g, g)}, support=sup, labels=("analytic", "Monte Carlo")),
                pl.image_kspace_figure(ref, ref, label="RAKI", rel_error=1e-7),
                pl.loss_figure([1.0, 0.5, 0.1]), pl.loss_figure({"a": [1.0, 0.1]})):
        assert isinstance(fig, Figure)


@pytest.mark.parametrize("orientation", pl.ORIENTATIONS)
def test_orientation_note_in_every_figure_and_transpose(orientation):
    ref = _img((12, 20))
    for name, fig in _all_figures((12, 20), orientation).items():
        assert fig._supxlabel.get_text().startswith("orientation:"), name
        if orientation == "kx-vertical":
            assert "kx (readout) vertical" in fig._supxlabel.get_text()
    fig = pl.reconstruction_figure(ref, {"A": ref}, orientation=orientation)
    shown = np.asarray(_images(fig)[0].get_array())
    np.testing.assert_array_equal(shown, ref.T if orientation == "kx-vertical" else ref)
    with pytest.raises(ValueError, match="orientation"):
        pl.gfactor_figure(ref, orientation="sideways")


def test_one_g_scale_below_one_not_clipped():
    rng = np.random.default_rng(2)
    g_grappa = 1 + 0.3 * rng.random((32, 32))
    g_raki = 1.5 + rng.random((32, 32))
    g_raki[:4] = 0.6  # g < 1 in 12% of the pixels (RAKI's nonlinearity, or noise in a Monte Carlo map)
    vmin, vmax = pl.gfactor_scale({"GRAPPA": g_grappa, "RAKI": g_raki})
    both = np.concatenate([g_grappa.ravel(), g_raki.ravel()])
    assert vmin == pytest.approx(np.percentile(both, 0.5)) and vmin < 1
    assert vmax == pytest.approx(np.percentile(both, 99.5))
    figs = [pl.gfactor_figure(g, scale=(vmin, vmax)) for g in (g_grappa, g_raki)]
    clims = [_images(f)[0].get_clim() for f in figs]
    assert clims[0] == clims[1] == (vmin, vmax)  # one scale across the methods of a run
    cmap = _images(figs[1])[0].get_cmap()
    assert not np.allclose(cmap.get_under(), cmap(0.0)) and not np.allclose(cmap.get_over(), cmap(1.0))  # marked
    multi = pl.gfactor_figure({"GRAPPA": g_grappa, "RAKI": g_raki})
    assert len({im.get_clim() for im in _images(multi)}) == 1
    # all g >= 1: the scale starts at 1
    assert pl.gfactor_scale([g_grappa])[0] == 1.0


def test_titles_spell_out_run_and_method():
    g = 1 + _img((16, 16))
    fig = pl.gfactor_figure(g, method="RAKI", R=4, acs=24, slope=0.5, gfactor="analytic", linearisation="true",
                            warning="noise covariance not trusted")
    t = _texts(fig)
    for s in ("RAKI R=4", "24 ACS", "slope 0.5", "true widely-linear", "linear response"):
        assert s in t.replace("\n", " "), s
    assert fig._suptitle.get_text().startswith("WARNING: noise covariance not trusted")
    assert fig._suptitle.get_color() == "#b00000"
    assert pl.gfactor_method_label("analytic", "true") == "analytic linear response (true widely-linear derivative)"
    assert pl.gfactor_method_label("montecarlo", replicas=1000) == "Monte Carlo (1000 pseudo-replicas)"
    fig = pl.gfactor_comparison_figure({"A": (g, g)}, R=4, acs=24, replicas=1000)
    assert "R=4, 24 ACS, 1000 replicas" in fig._suptitle.get_text()
    assert "R=4, 24 ACS, slope 0.5" in pl.loss_figure([1.0, 0.1], R=4, acs=24, slope=0.5).axes[0].get_title()
    assert "R=4" in _texts(pl.reconstruction_figure(g, {"A": g}, R=4, acs=24))


def _coverage(fig):
    """Fraction of the figure's area covered by the drawn images."""
    FigureCanvasAgg(fig).draw()
    w, h = fig.canvas.get_width_height()
    return sum(im.get_window_extent().width * im.get_window_extent().height for im in _images(fig)) / (w * h)


@pytest.mark.parametrize("shape", [(32, 96), (96, 32)])
def test_non_square_images_leave_no_large_gaps(shape):
    # a square-panel layout covers ~25% of the figure with 1:3 images (measured on the old layout: 0.21-0.31);
    # the aspect-following layout keeps it above 40% (titles, colour bars and notes take the rest)
    for name, fig in _all_figures(shape).items():
        assert _coverage(fig) > 0.4, name
