from functools import partial

import pytest
import torch

from pipeline.alma.models import (
    MODEL_REGISTRY,
    PARAMETERS,
    BlobsFinder,
    Decoras,
    DecorasPair,
    DeepGRU,
    ResNetRegressor,
    bce_dice_loss,
    build_model,
    count_parameters,
    l1_ssim_loss,
    load_checkpoint,
    msle_loss,
    save_checkpoint,
    ssim,
)
from pipeline.errors import InputError


def blob_images(n, size, seed=0):
    """Min-max normalised Gaussian blobs at random places, [n, 1, size, size]."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.rand(n, 2, generator=gen) * size * 0.6 + size * 0.2
    sigma = size / 10
    images = torch.exp(-((xx - centres[:, 0, None, None]) ** 2 + (yy - centres[:, 1, None, None]) ** 2)
                       / (2 * sigma**2))
    return images[:, None].float()


def test_blobs_finder_shapes_are_the_papers_table_3():
    model = BlobsFinder()
    shapes = {}

    def record(name):
        return lambda module, args, output: shapes.__setitem__(name, tuple(output.shape))

    for i, block in enumerate(model.encoder):
        block.register_forward_hook(record(f"encoder{i}"))
    for i, block in enumerate(model.decoder):
        block.register_forward_hook(record(f"decoder{i}"))
    for name in ("bottleneck", "to_latent", "from_latent", "head"):
        getattr(model, name).register_forward_hook(record(name))
    with torch.no_grad():
        out = model.eval()(torch.rand(2, 1, 256, 256))
    assert shapes == {
        "encoder0": (2, 8, 128, 128), "encoder1": (2, 16, 64, 64), "encoder2": (2, 32, 32, 32),
        "encoder3": (2, 64, 16, 16), "bottleneck": (2, 64, 16, 16), "to_latent": (2, 1024),
        "from_latent": (2, 64, 16, 16), "decoder0": (2, 32, 32, 32), "decoder1": (2, 16, 64, 64),
        "decoder2": (2, 8, 128, 128), "decoder3": (2, 8, 256, 256), "head": (2, 1, 256, 256),
    }
    assert out.shape == (2, 1, 256, 256)
    assert 0 <= out.min() and out.max() <= 1
    # each up block joins a bilinear upsample (64 ch) with a transposed convolution (32 ch)
    assert model.decoder[0].merge[0].in_channels == 64 + 32


def test_blobs_finder_skips_keep_the_main_path_shapes():
    plain, skipped = BlobsFinder(latent_dim=64), BlobsFinder(latent_dim=64, skips=True)
    with torch.no_grad():
        out = skipped.eval()(torch.rand(2, 1, 256, 256))
    assert out.shape == (2, 1, 256, 256)
    # each merge also takes the encoder's output at its resolution (the input at full size)
    extra = [b.merge[0].in_channels - a.merge[0].in_channels
             for a, b in zip(plain.decoder, skipped.decoder, strict=True)]
    assert extra == [32, 16, 8, 1]
    # the skips carry position: moving a bright pixel moves the output even with a zero latent
    image = torch.zeros(1, 1, 256, 256)
    image[..., 40, 200] = 1.0
    skipped.eval()
    with torch.no_grad():
        latent, features = skipped._encode(image)
        a = skipped.decode(torch.zeros_like(latent), features)
        b = skipped.decode(torch.zeros_like(latent), skipped._encode(image.flip(-1))[1])
    assert not torch.allclose(a, b)
    with pytest.raises(InputError, match="encoder features"):
        skipped.decode(latent)


def test_blobs_finder_rejects_other_sizes_with_advice():
    model = BlobsFinder(widths=(4, 8), latent_dim=16, image_size=32)
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(InputError, match="built for 32 x 32"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(InputError, match=r"\[batch, 1, y, x\]"):
        model(torch.rand(32, 32))
    with pytest.raises(InputError, match="multiple of"):
        BlobsFinder(image_size=100)


@pytest.mark.parametrize("config", [{}, {"num_layers": 1, "bidirectional": True}])
def test_deep_gru_any_length_output_in_unit_range(config):
    model = DeepGRU(**config)
    for n_channels in (7, 128, 301):
        out = model(torch.randn(3, n_channels))
        assert out.shape == (3, n_channels)
        assert 0 <= out.min() and out.max() <= 1
    with pytest.raises(InputError, match="n_channels"):
        model(torch.randn(3, 20, 1))


def test_resnet_latent_and_output():
    model = ResNetRegressor().eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert model.features(x).shape == (2, 512)
        assert model(x).shape == (2, 1)
    assert model.latent_dim == 512
    small = ResNetRegressor(base_width=8)
    assert small.latent_dim == 64 and small(x).shape == (2, 1)
    assert PARAMETERS == ("shape", "flux")
    shape = ResNetRegressor(in_channels=2, base_width=8, out_features=4)
    assert shape(torch.rand(3, 2, 64, 64)).shape == (3, 4)


def test_decoras_shapes_and_pair():
    x = torch.rand(2, 1, 64, 96)
    model = Decoras(loss="msle")
    assert model.loss == "msle" and model.criterion() is msle_loss
    out = model(x)  # a brightness: softplus, non-negative and unbounded
    assert out.shape == x.shape and 0 <= out.min()
    with torch.no_grad():
        model.head[0].bias.fill_(10.0)
    assert model(x).min() > 5
    assert 0 <= Decoras(loss="bce")(x).min() and Decoras(loss="bce")(x).max() <= 1  # a probability
    pair = DecorasPair(widths=(4, 8))
    bce_map, msle_map = pair(torch.rand(2, 1, 20, 12))
    assert bce_map.shape == msle_map.shape == (2, 1, 20, 12)
    assert (pair.bce.loss, pair.msle.loss) == ("bce", "msle")
    joined = DecorasPair.from_models(pair.bce, Decoras(widths=(8,), loss="msle"))
    assert [m.shape for m in joined(torch.rand(1, 1, 8, 8))] == [(1, 1, 8, 8)] * 2
    with pytest.raises(InputError, match="bce"):
        DecorasPair.from_models(pair.msle, pair.bce)
    with pytest.raises(InputError, match="multiples of 8"):
        model(torch.rand(1, 1, 60, 64))
    with pytest.raises(InputError, match="loss must be"):
        Decoras(loss="mse")


def test_ssim_and_losses():
    a = blob_images(2, 32)
    b = blob_images(2, 32, seed=1)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(a, b).item() < 0.9
    assert ssim(a, b, reduction="none").shape == (2,)
    assert l1_ssim_loss(a, a).item() == pytest.approx(0.0, abs=1e-5)
    assert l1_ssim_loss(a, b).item() > 0.05
    assert l1_ssim_loss(a, b, ssim_weight=0.0).item() == pytest.approx((a - b).abs().mean().item())
    assert msle_loss(a, a).item() == 0.0
    assert msle_loss(a, b).item() > 0
    assert msle_loss(torch.tensor([0.0]), torch.tensor([torch.e - 1])).item() == pytest.approx(1.0)
    with pytest.raises(InputError, match="window"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    # BCE + Dice: near 0 for a confident right answer; an empty prediction of a sparse target
    # costs the whole Dice term although its BCE is small
    sparse = torch.zeros(1, 1, 32, 32)
    sparse[..., 10:13, 10:13] = 1.0
    assert bce_dice_loss(sparse.clamp(1e-4, 1 - 1e-4), sparse).item() < 0.01
    empty = torch.full_like(sparse, 1e-4)
    assert bce_dice_loss(empty, sparse).item() > 0.9
    assert bce_dice_loss(torch.full_like(sparse, 1e-6), torch.zeros_like(sparse)).item() < 0.01


@pytest.mark.parametrize("kind, config, shape", [
    ("blobs_finder", {"widths": (4, 8), "latent_dim": 16, "image_size": 32}, (2, 1, 32, 32)),
    ("deep_gru", {"hidden_size": 8}, (2, 40)),
    ("resnet", {"base_width": 4}, (2, 1, 64, 64)),
    ("decoras", {"widths": (4, 8), "loss": "msle"}, (2, 1, 16, 16)),
    ("decoras_pair", {"widths": (4,)}, (2, 1, 16, 16)),
])
def test_checkpoint_round_trip(tmp_path, kind, config, shape):
    torch.manual_seed(0)
    model = build_model(kind, **config)
    # one training step so BatchNorm running statistics differ from their initial values
    out = model.train()(torch.rand(shape))
    sum(o.sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, kind, config, extra={"epoch": 3})
    loaded, checkpoint = load_checkpoint(path)
    assert type(loaded) is MODEL_REGISTRY[kind] and not loaded.training
    assert checkpoint["kind"] == kind and checkpoint["config"] == config
    assert checkpoint["extra"] == {"epoch": 3}
    x = torch.rand(shape)
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                    got if isinstance(got, tuple) else (got,), strict=True):
        assert torch.equal(e, g)
    if kind == "decoras":
        assert loaded.loss == "msle"


def test_checkpoint_errors(tmp_path):
    model = DeepGRU(hidden_size=8)
    with pytest.raises(InputError, match="does not describe"):
        save_checkpoint(tmp_path / "a.pt", model, "deep_gru", {"hidden_size": 16})
    with pytest.raises(InputError, match="cannot be saved as kind"):
        save_checkpoint(tmp_path / "a.pt", model, "resnet", {})
    assert not (tmp_path / "a.pt").exists()
    with pytest.raises(InputError, match="No checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="Unknown model kind"):
        build_model("unet")
    with pytest.raises(InputError, match="Bad configuration"):
        build_model("deep_gru", hidden=3)


def test_count_parameters():
    assert count_parameters(DeepGRU(hidden_size=4, num_layers=1)) == 3 * (4 * 1 + 4 * 4 + 2 * 4) + 4 + 1


def _overfit(model, inputs, target, loss_fn, steps, lr):
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_fn(model(inputs), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def test_small_blobs_finder_overfits_one_batch():
    torch.manual_seed(0)
    target = blob_images(4, 16)
    dirty = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    model = BlobsFinder(widths=(4, 8), latent_dim=16, image_size=16)
    losses = _overfit(model, dirty, target, partial(l1_ssim_loss, window_size=7), steps=40, lr=3e-2)
    assert losses[-1] < losses[0] / 5


def test_small_deep_gru_overfits_one_batch():
    torch.manual_seed(0)
    channels = torch.arange(48.0)
    centres = torch.tensor([15.0, 30.0, 35.0, 20.0])[:, None]
    clean = torch.exp(-((channels - centres) ** 2) / (2 * 3.0**2))
    dirty = clean + 0.2 * torch.randn_like(clean)
    dirty = (dirty - dirty.mean(1, keepdim=True)) / dirty.std(1, keepdim=True)
    model = DeepGRU(hidden_size=16)
    losses = _overfit(model, dirty, clean, torch.nn.functional.l1_loss, steps=30, lr=3e-2)
    assert losses[-1] < losses[0] / 5
