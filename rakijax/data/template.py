"""The Colin27 T1 brain template as the phantom's anatomy (``brain_phantom(anatomy="colin27")``).

Debian's ``mricron-data`` installs the template (``ch2.nii.gz``); it is read with nibabel
and one axial slice is fitted into the head ellipse of :func:`rakijax.data.synthetic.brain_image`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy.ndimage import binary_fill_holes, map_coordinates

__all__ = ["COLIN27", "grid", "read_nifti", "template_slice"]

COLIN27 = "/usr/share/mricron/templates/ch2.nii.gz"


def grid(shape):
    """``(Y, X)`` (Ny, Nx) normalised coordinates in [-1, 1), centre pixel ``(Ny//2, Nx//2)`` at 0."""
    ny, nx = shape
    y = (np.arange(ny) - ny // 2) / (ny / 2)
    x = (np.arange(nx) - nx // 2) / (nx / 2)
    return np.meshgrid(y, x, indexing="ij")


def read_nifti(path) -> np.ndarray:
    """The data array of a NIfTI file (``.nii``/``.nii.gz``), scaled by ``scl_slope``/``scl_inter``
    (nibabel), x fastest, as float64."""
    return np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float64)


def template_slice(shape, path=None, z: float = 0.56):
    """Axial slice of the Colin27 T1 template fitted into the phantom's head ellipse.

    Returns:
        ``(image, support)``, (Ny, Nx) each: the slice scaled to white matter ~1, and its head mask.
    """
    vol = read_nifti(path or COLIN27)
    sl = vol[:, :, int(round(z * (vol.shape[2] - 1)))].T[::-1]  # rows: anterior (top) -> posterior
    head = binary_fill_holes(sl > 0.08 * sl.max())
    rows, cols = np.nonzero(head)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    Y, X = grid(shape)
    hx, hy, cy0 = 0.66, 0.82, 0.02
    rr = r0 + (Y - (cy0 - hy)) / (2 * hy) * (r1 - r0)
    cc = c0 + (X + hx) / (2 * hx) * (c1 - c0)
    img = map_coordinates(sl, [rr, cc], order=1, mode="constant", cval=0.0)
    sup = map_coordinates(head.astype(float), [rr, cc], order=1, mode="constant") > 0.01
    wm = np.percentile(img[sup], 90)
    return np.clip(img, 0, None) / max(wm, 1e-12) * sup, sup
