"""The DECORAS family: the hand-designed DECORAS is one of its points, and every choice builds."""

import pytest
import torch

from pipeline.alma.models import (
    DECORAS_SHAPE,
    Decoras,
    EncoderDecoder,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.errors import InputError


def test_decoras_is_a_point_of_the_family():
    family, hand = EncoderDecoder(**DECORAS_SHAPE), Decoras()
    assert count_parameters(family) == count_parameters(hand) == 120_545
    assert [tuple(p.shape) for p in family.parameters()] == [tuple(p.shape) for p in hand.parameters()]


@pytest.mark.parametrize("skip,widths", [("none", [4, 6, 9]), ("add", [5, 5, 5]), ("concat", [3, 6, 12])])
@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_every_choice_builds_and_keeps_the_image_size(skip, widths, norm):
    net = EncoderDecoder(1, 2, widths, [5, 3, 3], convs=2, skip=skip, norm=norm, output="brightness")
    out = net(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 2, 32, 32) and (out >= 0).all()  # softplus


def test_skips_change_what_the_decoder_sees():
    torch.manual_seed(0)
    plain = count_parameters(EncoderDecoder(widths=[8, 16], kernels=[3, 3], skip="none"))
    joined = count_parameters(EncoderDecoder(widths=[8, 16], kernels=[3, 3], skip="concat"))
    assert joined > plain  # the decoder's convolutions take the encoder's channels too


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match="multiples of 8"):
        EncoderDecoder(widths=[4, 4, 4], kernels=[3, 3, 3])(torch.zeros(1, 1, 36, 36))
    with pytest.raises(InputError, match="odd kernel"):
        EncoderDecoder(widths=[4, 8], kernels=[4, 3])
    with pytest.raises(InputError, match="skip='add'"):
        EncoderDecoder(widths=[4, 8], kernels=[3, 3], skip="add")
    with pytest.raises(InputError, match="norm"):
        EncoderDecoder(norm="layer")


def test_a_searched_network_round_trips_through_a_checkpoint(tmp_path):
    config = {"in_channels": 1, "out_channels": 1, "widths": [4, 8], "kernels": [5, 3], "convs": 1,
              "skip": "concat", "norm": "group", "output": "probability"}
    net = EncoderDecoder(**config).eval()
    save_checkpoint(tmp_path / "m.pt", net, "encoder_decoder", config)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(net(x), loaded(x))


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_a_peak_scaled_brightness_answer_scales_with_the_sky(norm):
    torch.manual_seed(0)
    scaled = EncoderDecoder(1, 2, [4, 4], [3, 3], skip="add", norm=norm, output="brightness", scale="peak").eval()
    plain = EncoderDecoder(1, 2, [4, 4], [3, 3], skip="add", norm=norm, output="brightness").eval()
    x = torch.rand(3, 1, 16, 16) + 0.1
    with torch.no_grad():
        assert torch.allclose(scaled(50 * x), 50 * scaled(x), rtol=1e-4)  # imaging is linear in flux
        assert not torch.allclose(plain(50 * x), 50 * plain(x), rtol=1e-2)  # softplus of a net of 50 x: not so
    assert torch.equal(plain.input_scale(x), torch.ones(3, 1, 1, 1))
    assert torch.allclose(scaled.input_scale(-2 * x), 2 * x.amax(dim=(1, 2, 3), keepdim=True))
    with pytest.raises(InputError, match="scale"):
        EncoderDecoder(scale="mean")


def test_a_refinement_starts_as_the_classic_answer_and_asinh_sees_bright_emission_compressed():
    torch.manual_seed(0)
    net = EncoderDecoder(2, 1, [4, 4], [3, 3], skip="add", norm="none", output="refinement", scale="asinh")
    x = torch.rand(2, 2, 16, 16) * 1000
    assert torch.equal(net(x), x[:, :1])  # the correction starts at zero
    torch.nn.init.normal_(net.head[0].weight)
    assert not torch.equal(net(x), x[:, :1]) and net(x).abs().max() < 1e4  # learnt: a correction of any sign
    with pytest.raises(InputError, match="first 2 input channels"):
        EncoderDecoder(1, 2, output="refinement")
