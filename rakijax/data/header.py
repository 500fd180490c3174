"""The few ISMRMRD XML header values a Cartesian 2-D reconstruction needs.

Both ISMRMRD/MRD files and fastMRI files (dataset ``ismrmrd_header``) carry the
ISMRMRD XML header (schema ``ismrmrd.xsd``). It is read here with
``xml.etree.ElementTree``, namespace-agnostic and tolerant of missing optional
elements (vendor converters often omit elements the schema requires), instead of the
strict ``ismrmrd.xsd`` bindings. Values read from the first ``<encoding>``:

* ``encodedSpace/matrixSize`` (x readout, y phase encoding, z) and
  ``encodedSpace/fieldOfView_mm`` (the grid the k-space lives on), and the same for
  ``reconSpace`` (the grid a scanner reconstructs to, e.g. readout oversampling removed);
* ``encodingLimits/kspace_encoding_step_1`` (minimum, maximum, center) and ``slice``;
* ``parallelImaging/accelerationFactor/kspace_encoding_step_1`` (R) and
  ``calibrationMode`` (embedded, interleaved, separate, external, other);
* ``acquisitionSystemInformation/receiverChannels`` and
  ``relativeReceiverNoiseBandwidth``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

__all__ = ["MRDHeader", "parse_header"]


@dataclass(frozen=True)
class MRDHeader:
    """Values of an ISMRMRD XML header (None where absent).

    Attributes:
        encoded_matrix: (x, y, z) encoded matrix size.
        encoded_fov: (x, y, z) encoded field of view in mm.
        recon_matrix: (x, y, z) reconstruction matrix size.
        recon_fov: (x, y, z) reconstruction field of view in mm.
        ky_limits: (minimum, maximum, center) of ``kspace_encoding_step_1``.
        slice_limits: (minimum, maximum, center) of ``slice``.
        R: ``accelerationFactor/kspace_encoding_step_1``.
        calibration_mode: ``calibrationMode`` text (lower case).
        receiver_channels: number of receive channels.
        noise_bandwidth: ``relativeReceiverNoiseBandwidth``.
    """

    encoded_matrix: tuple | None = None
    encoded_fov: tuple | None = None
    recon_matrix: tuple | None = None
    recon_fov: tuple | None = None
    ky_limits: tuple | None = None
    slice_limits: tuple | None = None
    R: int | None = None
    calibration_mode: str | None = None
    receiver_channels: int | None = None
    noise_bandwidth: float | None = None

    def voxel_size(self, ny: int, nx: int) -> tuple[float, ...] | None:
        """``(dy, dx, dz)`` in mm of an ``(ny, nx)`` grid spanning the encoded field of view."""
        if self.encoded_fov is None:
            return None
        fx, fy, fz = self.encoded_fov
        if not (fx and fy and fx > 0 and fy > 0):
            return None
        v = (float(fy) / ny, float(fx) / nx)
        return v + (float(fz),) if fz and fz > 0 else v


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node, *path):
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _strip(c.tag) == name), None)
    return node


def _num(node, *path, kind=float):
    n = _find(node, *path)
    if n is None or n.text is None or not n.text.strip():
        return None
    try:
        return kind(float(n.text.strip())) if kind is int else kind(n.text.strip())
    except ValueError:
        return None


def _triple(node, *path, kind=float):
    n = _find(node, *path)
    if n is None:
        return None
    return tuple(_num(n, a, kind=kind) for a in ("x", "y", "z"))


def _limits(node, name):
    n = _find(node, "encodingLimits", name)
    if n is None:
        return None
    return tuple(_num(n, a, kind=int) for a in ("minimum", "maximum", "center"))


def parse_header(xml, source: str = "header") -> MRDHeader:
    """Parse an ISMRMRD XML header (str or bytes).

    A well-formed XML document that is not an ISMRMRD header (no ``<encoding>``)
    yields an empty :class:`MRDHeader`.

    Raises:
        ValueError: the text is not well-formed XML (names ``source``).
    """
    if isinstance(xml, (bytes, bytearray)):
        xml = bytes(xml).rstrip(b"\x00")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"{source}: unreadable ISMRMRD header (not well-formed XML: {e})") from None
    enc = _find(root, "encoding")
    sysinfo = _find(root, "acquisitionSystemInformation")
    chans = _num(sysinfo, "receiverChannels", kind=int)
    bw = _num(sysinfo, "relativeReceiverNoiseBandwidth")
    if enc is None:
        return MRDHeader(receiver_channels=chans, noise_bandwidth=bw)
    mode = _find(enc, "parallelImaging", "calibrationMode")
    return MRDHeader(
        encoded_matrix=_triple(enc, "encodedSpace", "matrixSize", kind=int),
        encoded_fov=_triple(enc, "encodedSpace", "fieldOfView_mm"),
        recon_matrix=_triple(enc, "reconSpace", "matrixSize", kind=int),
        recon_fov=_triple(enc, "reconSpace", "fieldOfView_mm"),
        ky_limits=_limits(enc, "kspace_encoding_step_1"),
        slice_limits=_limits(enc, "slice"),
        R=_num(enc, "parallelImaging", "accelerationFactor", "kspace_encoding_step_1", kind=int),
        calibration_mode=(mode.text or "").strip().lower() if mode is not None else None,
        receiver_channels=chans,
        noise_bandwidth=bw,
    )
