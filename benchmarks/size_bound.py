"""How well any measurement can know the sources' sizes and angles in a set: the Cramer-Rao bound.

For each true source of a set made by ``benchmarks/casa_cubes.py`` (its truth.csv: position,
FWHM, angle, line, peak SNR, and the observation: configuration, track, declination, cell,
frequency) the project's simulator makes the same observation (``examples.make_instrument``, 128
px) and this computes the Fisher information of the 64 x 64 focused image the shape ResNet sees:
the source (an elliptical Gaussian of 6 parameters: x, y, amplitude, FWHM along its two axes,
angle) convolved with the dirty beam, over the line's emission range, in the dirty image's
correlated noise (its autocorrelation, the covariance of the cut's pixels). The derivatives are
analytic, then convolved with the dirty beam. The inverse of the information bounds the scatter
of any unbiased measurement of each parameter at those true values, whatever measures it (a fit,
a network). Noise modes weaker than ``--mode-floor`` of the strongest are left out: the dirty
noise is band-limited, and information carried by modes far weaker than that (a part in 10^4 of
the variance) would need the image to hold the beam to that precision; a lower floor bounds less.

Rows: per band of true peak SNR (and all at SNR >= 10), the number of sources, the rms bound of
the intrinsic major and minor FWHM (px) and of the angle (deg, sources of axis ratio < 0.8; each
capped at the scatter of a random angle, 52 deg), beside Condon's (1997) errors at the same true
values and the focused image's peak SNR (``uncertainties.shape_errors``: what the catalogue's
noise floor uses, at its estimated values). The std of an
unbiased measurement's residuals over a band cannot fall below its rms bound.

Usage: python benchmarks/size_bound.py SET_FOLDER [SET_FOLDER ...] [--mode-floor 1e-4]
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _report import report
from casa_cubes import CHANNEL_WIDTH_HZ, INTEGRATION_S

from pipeline.alma import examples as ex
from pipeline.alma import preprocess as pre
from pipeline.alma import uncertainties
from pipeline.alma.evaluate import ELONGATED_AXIS_RATIO
from pipeline.alma.gaussian import major_minor
from pipeline.alma.simulate import Observation

SIZE = 128  # the CASA-made cubes' side
SIDE = pre.FOCUS_SIZE
SNR_BANDS = ((10, 20), (20, 30), (30, np.inf), (10, np.inf))
FOUR_LN2 = 4.0 * math.log(2.0)


def gaussian_derivatives(source, size=SIZE) -> np.ndarray:
    """(6, size, size): d/d(x, y, amplitude, fwhm_x, fwhm_y, pa in deg) of a unit-amplitude
    elliptical Gaussian (the simulator's ``gaussian_images``) at ``source``'s values."""
    grid = np.arange(size, dtype=np.float64)
    dx, dy = grid[None, :] - source["x"], grid[:, None] - source["y"]
    theta = np.radians(source["pa"])
    cos, sin = math.cos(theta), math.sin(theta)
    fx, fy = source["fwhm_x"], source["fwhm_y"]
    a, b = dx * cos + dy * sin, -dx * sin + dy * cos
    g = np.exp(-FOUR_LN2 * (a ** 2 / fx ** 2 + b ** 2 / fy ** 2))
    return np.array([
        2 * FOUR_LN2 * g * (a * cos / fx ** 2 - b * sin / fy ** 2),
        2 * FOUR_LN2 * g * (a * sin / fx ** 2 + b * cos / fy ** 2),
        g,
        2 * FOUR_LN2 * g * a ** 2 / fx ** 3,
        2 * FOUR_LN2 * g * b ** 2 / fy ** 3,
        -2 * FOUR_LN2 * g * a * b * (1 / fx ** 2 - 1 / fy ** 2) * math.pi / 180.0,
    ])


def noise_modes(instrument, mode_floor):
    """Eigenvectors and eigenvalues of the covariance of a SIDE x SIDE cut of the dirty
    noise (unit variance per pixel), those above ``mode_floor`` of the largest."""
    corr = np.asarray(instrument.noise_correlation, np.float64)
    c = corr.shape[0] // 2
    yy, xx = (v.ravel() for v in np.mgrid[:SIDE, :SIDE])
    values, vectors = np.linalg.eigh(corr[c + yy[:, None] - yy[None, :], c + xx[:, None] - xx[None, :]])
    keep = values > mode_floor * values.max()
    return vectors[:, keep], values[keep]


def source_bound(source, instrument, modes) -> tuple[np.ndarray, float]:
    """1-sigma bounds on (x, y, amplitude, fwhm_x, fwhm_y, pa) for ``source`` (a truth row) in
    its focused image, the image in units of its noise rms, and that image's peak SNR."""
    first, last = ex.emission_range(source, int(source["channels"]))
    line = np.exp(-FOUR_LN2 * (np.arange(first, last) - source["z"]) ** 2 / source["fwhm_z"] ** 2).sum()
    derivatives = ex.convolve_with_psf(instrument, gaussian_derivatives(source).astype(np.float32))
    peak = float(derivatives[2].max())  # the unit-amplitude source's dirty peak
    # the focused image's amplitude: the true per-channel peak SNR summed over the line's range,
    # over the noise of that sum
    amplitude = source["snr_peak"] / peak * line / math.sqrt(last - first)
    cuts = np.stack([pre.crop(d, source["x"], source["y"], SIDE) for d in derivatives]).astype(np.float64)
    cuts[[0, 1, 3, 4, 5]] *= amplitude
    vectors, values = modes
    # a round source has no angle: its derivative is zero, and the bound is on the other five
    known = slice(0, 6 if abs(source["fwhm_x"] - source["fwhm_y"]) > 1e-6 else 5)
    projected = (cuts[known].reshape(-1, SIDE * SIDE) @ vectors) / np.sqrt(values)
    bound = np.full(6, np.inf)
    bound[known] = np.sqrt(np.diag(np.linalg.inv(projected @ projected.T)))
    return bound, amplitude * peak


def observation(row) -> Observation:
    return Observation(config=str(row["config"]), cell_arcsec=float(row["cell_arcsec"]),
                       centre_frequency_hz=float(row["frequency_ghz"]) * 1e9,
                       declination_deg=float(row["declination_deg"]), observation_s=float(row["track_min"]) * 60,
                       integration_s=INTEGRATION_S, channel_width_hz=CHANNEL_WIDTH_HZ)


def set_bounds(folder: Path, mode_floor: float) -> Table:
    """One row per true source of SNR >= 10: its bounds and Condon's errors."""
    truth = Table.read(folder / "truth.csv")
    truth = truth[truth["snr_peak"] >= 10]
    rows = []
    for name in sorted(set(truth["cube"])):
        sources = truth[truth["cube"] == name]
        instrument = ex.make_instrument(observation(sources[0]), SIZE)
        modes = noise_modes(instrument, mode_floor)
        beam_px = (sources[0]["bmaj_arcsec"] / sources[0]["cell_arcsec"],
                   sources[0]["bmin_arcsec"] / sources[0]["cell_arcsec"], instrument.beam[2] + 90.0)
        for s in sources:
            bound, focused_snr = source_bound(s, instrument, modes)
            major, minor, pa = (v[0] for v in major_minor(np.array([s["fwhm_x"]]), np.array([s["fwhm_y"]]),
                                                          np.array([s["pa"]])))
            x_is_major = s["fwhm_x"] >= s["fwhm_y"]
            condon = uncertainties.shape_errors(major, minor, pa, beam_px, focused_snr)
            rows.append({"snr": float(s["snr_peak"]), "elongated": bool(minor < ELONGATED_AXIS_RATIO * major),
                         "bound_major": bound[3] if x_is_major else bound[4],
                         "bound_minor": bound[4] if x_is_major else bound[3],
                         "bound_pa": min(bound[5], uncertainties.MAX_PA_ERROR_DEG),
                         "condon_major": float(condon["err_major"][0]), "condon_minor": float(condon["err_minor"][0]),
                         "condon_pa": float(condon["err_pa"][0])})
    return Table(rows=rows)


def rms(values) -> float | None:
    values = np.asarray(values, float)
    return float(np.sqrt(np.mean(values ** 2))) if len(values) else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="folders made by benchmarks/casa_cubes.py")
    parser.add_argument("--mode-floor", type=float, default=1e-4)
    args = parser.parse_args(argv)
    rows = []
    for folder in args.sets:
        per_source = set_bounds(folder, args.mode_floor)
        for lo, hi in SNR_BANDS:
            band = per_source[(per_source["snr"] >= lo) & (per_source["snr"] < hi)]
            elongated = band[band["elongated"]]
            rows.append({"set": folder.name, "snr": f">= {lo}" if hi == np.inf else f"{lo}-{hi}", "n": len(band),
                         "bound maj": rms(band["bound_major"]), "bound min": rms(band["bound_minor"]),
                         "Condon maj": rms(band["condon_major"]), "Condon min": rms(band["condon_minor"]),
                         "n q<0.8": len(elongated), "bound pa": rms(elongated["bound_pa"]),
                         "Condon pa": rms(elongated["condon_pa"])})
    report("size_bound", rows, targets={"FWHM at SNR >= 10": "std <= 0.5 px (issue 10)"})


if __name__ == "__main__":
    main()
