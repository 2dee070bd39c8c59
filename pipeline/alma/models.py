"""The networks of the ALMA pipeline (Delli Veneri et al. 2022) and of the DECORAS baseline.

Torch modules only: no data reading, no training loop. Every constructor takes its configuration
explicitly, so a checkpoint is ``(kind, config, state_dict)`` and :func:`build_model` rebuilds
any model from the first two (:func:`save_checkpoint`, :func:`load_checkpoint`).

- :class:`BlobsFinder`: 2-D convolutional autoencoder; frequency-integrated dirty image in,
  map of where the sources are out (the paper's Table 3 at the default sizes).
- :class:`DeepGRU`: recurrent network; a source's dirty spectrum in, its clean spectrum out.
- :class:`ResNetRegressor`: one per source parameter group (:data:`PARAMETERS`); a spectrally
  focused 64 x 64 image in, numbers out (the paper's Figure 8 at the default width).
- :class:`Decoras` / :class:`DecorasPair`: the DECORAS baseline (Rezaei et al. 2022) as the ALMA
  paper re-implemented it: two small encoder-decoders, one trained with binary cross-entropy,
  one with the mean squared logarithmic error.

Images are ``[batch, channel, y, x]`` float32; spectra ``[batch, n_channels]`` (spectral
channels). Sizes are in pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.atomic import atomic_write
from pipeline.errors import InputError

#: What the ResNets estimate, one network each: the shape (major and minor FWHM and the major
#: axis's angle, together, so that the size and angle estimates agree on which axis is the
#: major one) and the flux.
PARAMETERS = ("shape", "flux")

CHECKPOINT_FORMAT = 1


# --- building blocks --------------------------------------------------------------------------

class ConvBlock(nn.Sequential):
    """3x3 convolution -> LeakyReLU -> BatchNorm, as the Blobs Finder's blocks (the paper's and
    its code's order: activation before normalisation). ``stride`` 2 halves the image."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 negative_slope: float = 0.01):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.BatchNorm2d(out_channels),
        )


class UpBlock(nn.Module):
    """Doubles the image: a bilinear x2 upsample (keeps ``in_channels``) concatenated with a
    stride-2 transposed convolution (``out_channels``), then a :class:`ConvBlock` to
    ``out_channels``. The fixed upsample carries the smooth part, the learned one the detail."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.01,
                 skip_channels: int = 0):
        super().__init__()
        self.transposed = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1,
                               output_padding=1, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.BatchNorm2d(out_channels),
        )
        self.merge = ConvBlock(in_channels + out_channels + skip_channels, out_channels,
                               negative_slope=negative_slope)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        upsampled = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        parts = [upsampled, self.transposed(x)] + ([skip] if skip is not None else [])
        return self.merge(torch.cat(parts, dim=1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with BatchNorm, identity (or 1x1 strided)
    shortcut, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _check_images(name: str, x: torch.Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise InputError(
            f"{name} takes images shaped [batch, {in_channels}, y, x]; got {list(x.shape)}. "
            "Add the batch and channel axes, e.g. image[None, None].")


# --- Blobs Finder -----------------------------------------------------------------------------

class BlobsFinder(nn.Module):
    """Convolutional autoencoder that maps a min-max normalised, frequency-integrated dirty
    image to a map in [0, 1] of where the emission is (trained on the normalised integrated sky
    model).

    Encoder: one stride-2 :class:`ConvBlock` per entry of ``widths`` (channels), a stride-1
    block, a fully connected layer to ``latent_dim``. Decoder: a fully connected layer back to
    ``widths[-1] x bottom x bottom``, one :class:`UpBlock` per level (channels ``widths``
    reversed, ending at ``widths[0]``), a 3x3 conv block and a 1x1 convolution + sigmoid.

    The defaults are the paper's Table 3 at ``image_size`` 256 (pixels):
    [b,1,256,256] -> [b,8,128,128] -> [b,16,64,64] -> [b,32,32,32] -> [b,64,16,16] -> 1024
    -> [b,64,16,16] -> [b,32,32,32] -> [b,16,64,64] -> [b,8,128,128] -> [b,8,256,256]
    -> [b,1,256,256]. The fully connected layers fix the input size: ``image_size`` must be a
    multiple of ``2 ** len(widths)`` and images must be exactly that size.

    ``skips=True`` (this project's trained model) adds U-Net skip connections: each decoder
    block also takes the encoder's output at its resolution (the input image at the last one),
    and the bottleneck's features are added to the decoded latent. The shapes along the main
    path stay the paper's. Why: with the latent as the only path, everything about *where* the
    sources are must pass through ``latent_dim`` numbers; on 2 CPU cores in under an hour that
    did not train (a 600-step run collapsed to an empty map), while the skips carry positions
    directly and train in a few hundred steps. ``skips=False`` is the paper's network.
    """

    def __init__(self, in_channels: int = 1, widths: tuple = (8, 16, 32, 64),
                 latent_dim: int = 1024, image_size: int = 256, negative_slope: float = 0.01,
                 skips: bool = False):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths:
            raise InputError("BlobsFinder needs at least one encoder width.")
        if image_size % 2 ** len(widths):
            raise InputError(
                f"BlobsFinder image_size must be a multiple of 2**{len(widths)} "
                f"= {2 ** len(widths)} (one halving per encoder block); got {image_size}.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.skips = bool(skips)
        bottom = image_size // 2 ** len(widths)
        self.bottom_shape = (widths[-1], bottom, bottom)
        flat = widths[-1] * bottom * bottom

        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoder.append(ConvBlock(channels, width, stride=2, negative_slope=negative_slope))
            channels = width
        self.bottleneck = ConvBlock(channels, channels, negative_slope=negative_slope)
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(flat, latent_dim))
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat),
                                         nn.LeakyReLU(negative_slope),
                                         nn.Unflatten(1, self.bottom_shape))
        self.decoder = nn.ModuleList()
        # skip sources per decoder block, coarse to fine: encoder outputs, then the input image
        skip_widths = widths[-2::-1] + (in_channels,) if self.skips else (0,) * len(widths)
        for width, skip_width in zip(widths[-2::-1] + (widths[0],), skip_widths):
            self.decoder.append(UpBlock(channels, width, negative_slope=negative_slope,
                                        skip_channels=skip_width))
            channels = width
        self.head = nn.Sequential(ConvBlock(channels, channels, negative_slope=negative_slope),
                                  nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``[b, in_channels, image_size, image_size]`` -> latent ``[b, latent_dim]``."""
        return self._encode(image)[0]

    def _check_size(self, image: torch.Tensor) -> None:
        _check_images("BlobsFinder", image, self.in_channels)
        if tuple(image.shape[-2:]) != (self.image_size, self.image_size):
            raise InputError(
                f"This BlobsFinder was built for {self.image_size} x {self.image_size} px images "
                f"(its fully connected layers fix the size); got {tuple(image.shape[-2:])}. "
                f"Crop or pad the integrated image to {self.image_size} px, or build the model "
                "with a matching image_size.")

    def _encode(self, image):
        """(latent, features): features are the input, each encoder block's output and the
        bottleneck's, fine to coarse."""
        self._check_size(image)
        features = [image]
        x = image
        for block in self.encoder:
            x = block(x)
            features.append(x)
        x = self.bottleneck(x)
        features[-1] = x
        return self.to_latent(x), features

    def decode(self, latent: torch.Tensor, features: list | None = None) -> torch.Tensor:
        """Latent ``[b, latent_dim]`` -> map ``[b, 1, image_size, image_size]`` in [0, 1].
        With skips, ``features`` (from the encoder) are required."""
        x = self.from_latent(latent)
        if self.skips:
            if features is None:
                raise InputError("This BlobsFinder has skip connections: decode needs the encoder features; call the model on an image.")
            x = x + features[-1]
            for block, skip in zip(self.decoder, features[-2::-1]):
                x = block(x, skip)
        else:
            for block in self.decoder:
                x = block(x)
        return self.head(x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        latent, features = self._encode(image)
        return self.decode(latent, features if self.skips else None)


# --- Deep GRU ---------------------------------------------------------------------------------

class DeepGRU(nn.Module):
    """Recurrent denoiser of a source's spectrum: standardised dirty spectrum ``[b, n_channels]``
    in (any number of spectral channels), clean spectrum ``[b, n_channels]`` in [0, 1] out
    (a GRU over the channels, then a fully connected layer + sigmoid on each channel).

    The paper's figure shows two GRU layers, its released code one bidirectional layer of 32
    units; the default follows the paper (``num_layers=2``, one direction), and
    ``DeepGRU(num_layers=1, bidirectional=True)`` is the released code. ``dropout`` acts between
    GRU layers only. The sigmoid bounds the output: targets must be scaled to [0, 1].
    """

    def __init__(self, hidden_size: int = 32, num_layers: int = 2, bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.gru = nn.GRU(input_size=1, hidden_size=hidden_size, num_layers=num_layers,
                          batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        if spectrum.ndim != 2:
            raise InputError(
                f"DeepGRU takes spectra shaped [batch, n_channels]; got {list(spectrum.shape)}. "
                "Add the batch axis (spectrum[None]) or drop a trailing unit axis.")
        hidden, _ = self.gru(spectrum.unsqueeze(-1))
        return torch.sigmoid(self.head(hidden)).squeeze(-1)


# --- ResNet regressor -------------------------------------------------------------------------

class ResNetRegressor(nn.Module):
    """ResNet-18-like regressor of source parameters from a spectrally focused image
    ``[b, in_channels, 64, 64]`` (any size works: the pooling is adaptive) -> ``[b, out_features]``.

    The paper's Figure 8: 3x3 conv -> 3x3/2 max pool -> BatchNorm -> ReLU -> 4 stages of 2
    :class:`BasicBlock` (``base_width`` x 1, 2, 4, 8 channels; stages 2-4 halve the image) ->
    adaptive max pool -> latent ``[b, 8 * base_width]`` (512 by default) -> fully connected
    to ``hidden_features`` -> ReLU -> fully connected to ``out_features`` numbers. No output
    activation: the scale of the target is the training's choice. Train one per entry of
    :data:`PARAMETERS` (see :mod:`pipeline.alma.tasks` for their inputs and targets).
    """

    def __init__(self, in_channels: int = 1, base_width: int = 64, hidden_features: int = 128,
                 out_features: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 3, padding=1, bias=False),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.BatchNorm2d(base_width),
            nn.ReLU(),
        )
        stages, channels = [], base_width
        for i, factor in enumerate((1, 2, 4, 8)):
            width = base_width * factor
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, width, stride), BasicBlock(width, width)))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.latent_dim = channels
        self.head = nn.Sequential(nn.Linear(channels, hidden_features), nn.ReLU(),
                                  nn.Linear(hidden_features, out_features))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The latent vector ``[b, 8 * base_width]``."""
        _check_images("ResNetRegressor", image, self.in_channels)
        return torch.flatten(self.pool(self.stages(self.stem(image))), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


# --- DECORAS ----------------------------------------------------------------------------------

DECORAS_LOSSES = ("bce", "msle")


class Decoras(nn.Module):
    """DECORAS-style encoder-decoder (Rezaei et al. 2022): a few convolutional layers on a
    dirty image ``[b, in_channels, H, W]`` -> per-pixel map ``[b, 1, H, W]``.

    Encoder: per entry of ``widths``, 3x3 conv -> BatchNorm -> ReLU -> 2x2 max pool; a 3x3 conv
    block at the bottom; decoder: per level, bilinear x2 upsample -> 3x3 conv -> BatchNorm ->
    ReLU (``widths`` reversed); a 1x1 convolution. H and W must be multiples of
    ``2 ** len(widths)``. ``loss`` says what the model is (to be) trained with and what it
    predicts: ``"bce"``, binary cross-entropy on a detection map (sigmoid output, a probability)
    or ``"msle"``, mean squared logarithmic error on a brightness map (softplus output,
    non-negative and unbounded: the log in the loss is there for a wide dynamic range, so the
    target is not squeezed into [0, 1]); :meth:`criterion` returns that function.
    """

    def __init__(self, in_channels: int = 1, widths: tuple = (16, 32, 64), loss: str = "bce"):
        super().__init__()
        if loss not in DECORAS_LOSSES:
            raise InputError(f"Decoras loss must be one of {DECORAS_LOSSES}; got {loss!r}.")
        widths = tuple(int(w) for w in widths)
        self.loss = loss
        self.in_channels = in_channels
        self.depth = len(widths)

        def conv(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU())

        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoder.append(nn.Sequential(conv(channels, width), nn.MaxPool2d(2)))
            channels = width
        self.bottleneck = conv(channels, channels)
        self.decoder = nn.ModuleList()
        for width in widths[::-1]:
            self.decoder.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                conv(channels, width)))
            channels = width
        self.head = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid() if loss == "bce" else nn.Softplus())

    def criterion(self):
        """The training loss of this model: ``(prediction, target) -> scalar``."""
        return F.binary_cross_entropy if self.loss == "bce" else msle_loss

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_images("Decoras", image, self.in_channels)
        multiple = 2 ** self.depth
        if image.shape[-2] % multiple or image.shape[-1] % multiple:
            raise InputError(
                f"Decoras with {self.depth} levels takes images whose sides are multiples of "
                f"{multiple} px; got {tuple(image.shape[-2:])}. Crop or pad the image.")
        x = image
        for block in self.encoder:
            x = block(x)
        x = self.bottleneck(x)
        for block in self.decoder:
            x = block(x)
        return self.head(x)


class DecorasPair(nn.Module):
    """The ALMA paper's DECORAS: two :class:`Decoras` of the same shape, ``bce`` trained with
    binary cross-entropy and ``msle`` with the mean squared logarithmic error (train each on its
    own). Blobs are then detected on both maps and kept when found by both within 3 px.
    ``forward`` returns ``(bce_map, msle_map)``, each ``[b, 1, H, W]``."""

    def __init__(self, in_channels: int = 1, widths: tuple = (16, 32, 64)):
        super().__init__()
        self.bce = Decoras(in_channels, widths, loss="bce")
        self.msle = Decoras(in_channels, widths, loss="msle")

    @classmethod
    def from_models(cls, bce: Decoras, msle: Decoras) -> DecorasPair:
        """A pair made of two separately trained :class:`Decoras` (e.g. two loaded checkpoints);
        their widths may differ."""
        if (getattr(bce, "loss", None), getattr(msle, "loss", None)) != ("bce", "msle"):
            raise InputError("DecorasPair.from_models takes a Decoras trained with loss='bce' "
                             "then one trained with loss='msle'.")
        pair = cls.__new__(cls)
        nn.Module.__init__(pair)
        pair.bce, pair.msle = bce, msle
        return pair

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bce(image), self.msle(image)


# --- losses -----------------------------------------------------------------------------------

def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    window = torch.exp(-coords**2 / (2 * sigma**2))
    return window / window.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11,
         sigma: float = 1.5, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of images ``[b, c, H, W]`` with a Gaussian window
    of ``window_size`` px and ``sigma`` px, over the pixels where the window fits (no padding).

    ``data_range``: the span of pixel values (1 for min-max normalised images). Returns the mean
    SSIM (``reduction="mean"``) or one value per image (``"none"``, shape ``[b]``); 1 when the
    images are equal.
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise InputError(f"ssim takes two images of the same shape [b, c, H, W]; got "
                         f"{list(prediction.shape)} and {list(target.shape)}.")
    if min(prediction.shape[-2:]) < window_size:
        raise InputError(f"ssim window of {window_size} px is larger than the image "
                         f"{tuple(prediction.shape[-2:])}; use a smaller window_size.")
    channels = prediction.shape[1]
    g = _gaussian_window(window_size, sigma, prediction.dtype, prediction.device)
    kernel_x = g.view(1, 1, 1, -1).expand(channels, 1, 1, window_size)
    kernel_y = g.view(1, 1, -1, 1).expand(channels, 1, window_size, 1)

    def blur(x):  # separable Gaussian mean, per channel
        return F.conv2d(F.conv2d(x, kernel_x, groups=channels), kernel_y, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(prediction), blur(target)
    var_p = blur(prediction * prediction) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(prediction * target) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    per_image = ssim_map.flatten(1).mean(1)
    return per_image.mean() if reduction == "mean" else per_image


def l1_ssim_loss(prediction: torch.Tensor, target: torch.Tensor, ssim_weight: float = 1.0,
                 window_size: int = 11, data_range: float = 1.0) -> torch.Tensor:
    """The Blobs Finder's loss: mean absolute error + ``ssim_weight`` * (1 - SSIM).

    0 for equal images, positive otherwise. (The released code adds kornia's ``SSIMLoss``, which
    is (1 - SSIM) / 2: ``ssim_weight=0.5`` reproduces it.)
    """
    structural = 1.0 - ssim(prediction, target, window_size=window_size, data_range=data_range)
    return F.l1_loss(prediction, target) + ssim_weight * structural


def bce_dice_loss(prediction: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy (soft targets allowed) + (1 - soft Dice) per image, for sparse maps
    in [0, 1]: the Dice term is relative to the target's own area, so a map that is almost all
    background cannot be matched by predicting background everywhere; ``smooth`` keeps it
    defined (and asking for an empty map) when the target is empty."""
    bce = F.binary_cross_entropy(prediction, target)
    p, t = prediction.flatten(1), target.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return bce + (1 - dice).mean()


def msle_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared logarithmic error, ``mean((log(1 + p) - log(1 + t))^2)``, for non-negative
    maps (negative values are clipped to 0, as Keras does)."""
    return F.mse_loss(torch.log1p(prediction.clamp(min=0)), torch.log1p(target.clamp(min=0)))


# --- registry and checkpoints -----------------------------------------------------------------

MODEL_REGISTRY = {
    "blobs_finder": BlobsFinder,
    "deep_gru": DeepGRU,
    "resnet": ResNetRegressor,
    "decoras": Decoras,
    "decoras_pair": DecorasPair,
}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(kind: str, **config) -> nn.Module:
    """A new model of ``kind`` (a key of :data:`MODEL_REGISTRY`) built with ``config``."""
    if kind not in MODEL_REGISTRY:
        raise InputError(f"Unknown model kind {kind!r}; known: {', '.join(MODEL_REGISTRY)}.")
    try:
        return MODEL_REGISTRY[kind](**config)
    except TypeError as error:
        raise InputError(f"Bad configuration for a {kind} model: {error}.") from error


def save_checkpoint(path, model: nn.Module, kind: str, config: dict, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically) as ``{kind, config, state_dict, extra}`` so that
    :func:`load_checkpoint` can rebuild it.

    ``config`` must be what the model was built with: it is checked by building the model on
    torch's meta device and comparing parameter shapes. ``config`` and ``extra`` (e.g.
    normalisation, training history) must hold plain Python values (numbers, strings, lists,
    tuples, dicts) or tensors. Returns the path.
    """
    config = dict(config)
    if kind not in MODEL_REGISTRY or not isinstance(model, MODEL_REGISTRY[kind]):
        raise InputError(f"A {type(model).__name__} cannot be saved as kind {kind!r}; "
                         f"kinds: {', '.join(f'{k}={v.__name__}' for k, v in MODEL_REGISTRY.items())}.")
    with torch.device("meta"):
        rebuilt = build_model(kind, **config)
    expected = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in state_dict.items()}
    if expected != actual:
        differ = sorted(set(expected.items()) ^ set(actual.items()))[:3]
        raise InputError(f"config {config} does not describe this {kind} model "
                         f"(parameters differ, e.g. {differ}); pass the config it was built with.")
    checkpoint = {"format": CHECKPOINT_FORMAT, "kind": kind, "config": config,
                  "state_dict": state_dict, "extra": dict(extra or {}),
                  "torch_version": str(torch.__version__)}
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def load_checkpoint(path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` at ``path``, on the CPU and in
    evaluation mode. Returns ``(model, checkpoint)`` where ``checkpoint`` holds ``kind``,
    ``config``, ``extra`` (and the ``state_dict``).

    Only tensors and plain values are unpickled (``weights_only``), so a checkpoint cannot run
    code.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint at {path}; train a model or give the path of one.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise InputError(f"{path} is not a readable model checkpoint: {error}") from error
    missing = {"kind", "config", "state_dict"} - set(checkpoint if isinstance(checkpoint, dict) else ())
    if missing:
        raise InputError(f"{path} is not a checkpoint written by save_checkpoint "
                         f"(missing {', '.join(sorted(missing))}).")
    model = build_model(checkpoint["kind"], **checkpoint["config"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise InputError(f"{path}: the weights do not fit a {checkpoint['kind']} model with "
                         f"config {checkpoint['config']}: {error}") from error
    model.eval()
    return model, checkpoint
