"""Task "lofar": recovering the surface brightness of extended emission in LOFAR-like images.

The array (:func:`lofar_like_configuration`): no LOFAR station file ships here, so this is one of
the LOFAR kind, made up and fixed: a dense core (six stations on a 300 m ring like the superterp,
eighteen more within 2 km, 31 m across) and fourteen remote stations (41 m) log-spaced from 3 to
60 km along three arms, at LOFAR's latitude (52.9 deg N). It observes at 150 MHz, 2-8 h about
transit at declinations +20 to +80 deg, 5-minute integrations, Briggs weighting (robust -0.5 or
0, as LOFAR surveys image); 64 x 64 images of 1.5" pixels (beam about 7" x 4").

The sky: one to three extended sources (a double, FR II-like: two elongated lobes with hotspots
at their outer ends and sometimes a core; a jet, FR I-like: a two-sided chain of knots widening and
fading from the core; a halo: a broad diffuse ellipse) and up to three compact ones, total fluxes
log-uniform (doubles and jets 30-3000, haloes 100-1000, compact 5-100 times the image noise
times a beam), with thermal noise of rms 1.

The network learns the true sky convolved with the restoring beam (the Gaussian fitted to the
dirty beam's main lobe): the finest image the data support, and what CLEAN restores to. The
classic baseline is Hogbom CLEAN (:mod:`.clean`, gain 0.1, down to 1.5 times the noise) restored with
the same beam. The network refines CLEAN, as the R2D2 series of networks (Aghabiglou et al. 2024)
refines an image given its data residual: its input is CLEAN's components restored with the beam
and CLEAN's residual (two channels whose sum is CLEAN's image), and it answers the components plus
a learned correction. (Networks given the dirty image alone, with or without the dirty beam as a
second channel, stayed about seven times CLEAN's residual rms after 2000 steps on two CPU cores:
a variable PSF across the whole image is more than they learn on this machine's budget.)
Scored on each image: the flux recovered in each source (within where its own restored emission
is above twice the noise and brighter than its neighbours'), as the mean fractional error; the rms
of the residual (answer minus truth, in units of the noise); and SSIM.
"""

from __future__ import annotations

import numpy as np

from pipeline.alma.gaussian import gaussian_area
from pipeline.alma.interferometer import AntennaConfiguration
from pipeline.automl import radio
from pipeline.automl.clean import hogbom
from pipeline.automl.tasks import AutomlTask, Examples, Score, relative_objective

LOFAR_LATITUDE_DEG = 52.91
FREQUENCY_HZ = 150e6
SIZE = 64
CELL_ARCSEC = 1.5
INTEGRATION_S = 300.0
INSTRUMENTS_PER_SET = 12
FOOTPRINT_LEVEL = 2.0  # a source's footprint: its restored emission above this many times the noise


def lofar_like_configuration() -> AntennaConfiguration:
    """A station layout of the LOFAR kind (see the module docstring), the same every time."""
    rng = np.random.default_rng(150)
    angle = np.radians(np.arange(6) * 60.0)
    east, north = list(150 * np.cos(angle)), list(150 * np.sin(angle))
    radius = 300 + 1700 * rng.random(18) ** 1.5
    angle = rng.uniform(0, 2 * np.pi, 18)
    east += list(radius * np.cos(angle))
    north += list(radius * np.sin(angle))
    radius = np.geomspace(3e3, 6e4, 14)
    angle = np.radians(np.arange(14) % 3 * 120 + 40 * np.log(radius / 3e3) + rng.normal(0, 10, 14))
    east += list(radius * np.cos(angle))
    north += list(radius * np.sin(angle))
    xyz = np.stack([east, north, np.zeros(len(east))], axis=1)
    diameters = np.array([31.0] * 24 + [41.0] * 14)
    pads = tuple([f"CS{i:02d}" for i in range(24)] + [f"RS{i:02d}" for i in range(14)])
    return AntennaConfiguration("lofar-like", xyz, diameters, pads, LOFAR_LATITUDE_DEG)


def instruments(rng, n=INSTRUMENTS_PER_SET) -> list[radio.Instrument]:
    config = lofar_like_configuration()
    return [radio.make_instrument(config, FREQUENCY_HZ, SIZE, CELL_ARCSEC, rng.uniform(20, 80), rng.uniform(2, 8),
                                  INTEGRATION_S, "briggs", float(rng.choice([-0.5, 0.0])))
            for _ in range(n)]


def _double(rng, x, y, flux):
    length, theta = rng.uniform(15, 40), rng.uniform(0, 180)
    direction = np.array([np.cos(np.radians(theta)), np.sin(np.radians(theta))])
    rows, fluxes = [], []
    for side in (-1, 1):
        share = flux * rng.uniform(0.35, 0.65) if side < 0 else flux - sum(fluxes)
        hotspot = rng.uniform(0.1, 0.4)
        lobe_x, lobe_y = np.array([x, y]) + side * direction * length * 0.4
        spot_x, spot_y = np.array([x, y]) + side * direction * length * 0.5
        rows += [{"x": lobe_x, "y": lobe_y, "fwhm_x": rng.uniform(4, 10), "fwhm_y": rng.uniform(3, 8), "pa": theta},
                 {"x": spot_x, "y": spot_y, "fwhm_x": 1.0, "fwhm_y": 1.0, "pa": 0.0}]
        fluxes += [share * (1 - hotspot), share * hotspot]
    if rng.random() < 0.5:  # a core, taking a little of the flux
        core = flux * rng.uniform(0.01, 0.1)
        fluxes = [f * (1 - core / flux) for f in fluxes] + [core]
        rows.append({"x": x, "y": y, "fwhm_x": 1.0, "fwhm_y": 1.0, "pa": 0.0})
    return radio.gaussian_sky(rows, fluxes, SIZE)


def _jet(rng, x, y, flux):
    theta, bend, knots = rng.uniform(0, 180), rng.uniform(-4, 4), int(rng.integers(6, 12))
    rows, weights = [{"x": x, "y": y, "fwhm_x": 1.5, "fwhm_y": 1.5, "pa": 0.0}], [1.0]
    for side in (-1, 1):
        for k in range(1, knots + 1):
            angle = np.radians(theta + side * bend * k)
            step = side * 2.5 * k
            rows.append({"x": x + step * np.cos(angle), "y": y + step * np.sin(angle),
                         "fwhm_x": 1.5 + 0.5 * k, "fwhm_y": 1.5 + 0.4 * k, "pa": np.degrees(angle)})
            weights.append(np.exp(-k / knots))
    weights = np.array(weights) / np.sum(weights)
    return radio.gaussian_sky(rows, flux * weights, SIZE)


def _halo(rng, x, y, flux):
    size = rng.uniform(15, 35)
    return radio.gaussian_sky([{"x": x, "y": y, "fwhm_x": size, "fwhm_y": size * rng.uniform(0.6, 1.0),
                               "pa": rng.uniform(0, 180)}], [flux], SIZE)


def _compact(rng, x, y, flux):
    return radio.gaussian_sky([{"x": x, "y": y, "fwhm_x": rng.uniform(0.5, 2), "fwhm_y": rng.uniform(0.5, 2),
                               "pa": 0.0}], [flux], SIZE)


KINDS = {"double": (_double, (10, 300)), "jet": (_jet, (10, 300)), "halo": (_halo, (30, 300)),
         "compact": (_compact, (5, 50))}


def sky_sources(rng, beam_area_px: float) -> list[tuple[str, np.ndarray]]:
    """The sources of one image: (kind, image in flux per pixel), fluxes in units of the noise
    times the beam area (so that a compact source of flux F peaks at about F)."""
    kinds = list(rng.choice(["double", "jet", "halo"], int(rng.integers(1, 4))))
    kinds += ["compact"] * int(rng.integers(0, 4))
    sources = []
    for kind in kinds:
        draw, (low, high) = KINDS[kind]
        margin = 16 if kind != "compact" else 4
        x, y = rng.uniform(margin, SIZE - 1 - margin, 2)
        flux = float(np.exp(rng.uniform(np.log(low), np.log(high)))) * beam_area_px
        sources.append((kind, draw(rng, x, y, flux)))
    return sources


def examples(seed: int, n: int) -> Examples:
    rng = np.random.default_rng(seed)
    pool = instruments(rng)
    inputs = np.empty((n, 2, SIZE, SIZE), np.float32)
    targets = np.empty((n, 1, SIZE, SIZE), np.float32)
    dirty = np.empty((n, SIZE, SIZE), np.float32)
    truth = []
    for i in range(n):
        instrument = pool[int(rng.integers(len(pool)))]
        beam_image = radio.restoring_beam(instrument.beam, SIZE)
        beam_area = gaussian_area(instrument.beam[0], instrument.beam[1])
        sources = sky_sources(rng, beam_area)
        sky = np.sum([image for _, image in sources], axis=0)
        dirty[i] = radio.observe(sky, instrument, rng)
        components, inputs[i, 1] = hogbom(dirty[i], instrument.psf)
        inputs[i, 0] = radio.convolve(components, beam_image)
        restored = np.stack([radio.convolve(image, beam_image) for _, image in sources])
        targets[i, 0] = restored.sum(0)
        truth.append({"kinds": [kind for kind, _ in sources], "footprints": footprints(restored),
                      "beam": instrument.beam, "beam_area_px": beam_area, "psf": instrument.psf})
    return Examples(inputs, targets, truth, dirty)


def footprints(restored: np.ndarray) -> np.ndarray:
    """Per source, where its flux is measured: its own restored emission above
    :data:`FOOTPRINT_LEVEL` times the noise, where it is the brightest source. (k, SIZE, SIZE) bool."""
    owner = np.argmax(restored, axis=0)
    return np.stack([(restored[k] >= FOOTPRINT_LEVEL) & (owner == k) for k in range(len(restored))])


def answers(outputs: np.ndarray, _examples=None) -> np.ndarray:
    return np.asarray(outputs)[:, 0]


def clean_baseline(examples: Examples) -> np.ndarray:
    """Hogbom CLEAN's restored images: its components restored with the beam plus its residual (the
    sum of the two input channels)."""
    return examples.inputs.sum(axis=1)


def scores(images: np.ndarray, examples: Examples) -> dict:
    from skimage.metrics import structural_similarity

    flux_errors, rms, ssim = [], [], []
    for image, target, truth in zip(images, examples.targets[:, 0], examples.truth, strict=True):
        for footprint in truth["footprints"]:
            if footprint.any():
                flux_errors.append(abs(image[footprint].sum() / target[footprint].sum() - 1.0))
        rms.append(float(np.sqrt(np.mean((image - target) ** 2))))
        span = max(float(target.max() - target.min()), 1e-6)
        ssim.append(structural_similarity(image, target, data_range=span))
    return {"flux_error": float(np.mean(flux_errors)), "residual_rms": float(np.mean(rms)),
            "ssim": float(np.mean(ssim))}


TASK = AutomlTask(
    name="lofar", title="LOFAR-like surface-brightness recovery",
    instrument="a LOFAR-like array (made up: dense core, 14 remote stations), 150 MHz, 1.5\" pixels",
    size=SIZE, out_channels=1, output="refinement", losses=("msle", "l1_ssim", "mse"), hand_loss="msle",
    score_names={"flux_error": Score("flux error per source", False),
                 "residual_rms": Score("residual rms", False, "noise"), "ssim": Score("SSIM", True)},
    examples=examples, answers=answers, baseline=clean_baseline, baseline_name="Hogbom CLEAN",
    scores=scores, objective=relative_objective(("flux_error", "residual_rms"), ("ssim",)), direction="minimize",
    objective_note="the worst ratio of the flux error, the residual rms and 1 - SSIM to CLEAN's "
                   "(below 1 beats it on all)",
    max_parameters=400_000, in_channels=2,
    input_note=f"two {SIZE} x {SIZE} channels in units of the noise, Hogbom CLEAN's components restored with the "
               "beam and CLEAN's residual (their sum is CLEAN's image); the network answers the first plus a "
               "correction",
)
