"""Frozen ImageNet features (pipeline.oneshot.features): real weights, ONNX = torch, maps = features."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from skimage import data

from pipeline.errors import Cancelled, InputError
from pipeline.oneshot import features as F


@pytest.fixture(scope="module")
def lite0():
    return F.load_backbone()


@pytest.fixture(scope="module")
def galaxies():
    """Six small RGB uint8 images of different content (cutout-sized, 80 x 80)."""
    rng = np.random.default_rng(0)
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
               np.repeat(data.camera()[..., None], 3, axis=2), rng.integers(0, 256, (120, 120, 3), np.uint8)]
    return np.stack([np.asarray(s[:80, :80]) for s in sources])


def test_lite0_weights_are_real_imagenet(lite0):
    assert lite0.name == "tf_efficientnet_lite0" and "not the paper's B0" in lite0.label
    assert lite0.mean == lite0.std == (0.5, 0.5, 0.5) and lite0.n_features == 1280
    assert not lite0.model.training and not any(p.requires_grad for p in lite0.model.parameters())
    assert F.load_backbone("tf_efficientnet_lite0") is lite0  # cached per process
    cat, coffee = F.classify(lite0, [data.chelsea(), data.coffee()], top=5)
    assert cat[0][1] in ("tiger cat", "Egyptian cat", "tabby, tabby cat")
    assert coffee[0][1] == "espresso" and coffee[0][2] > 0.5
    assert len(cat) == 5 and cat[0][2] >= cat[1][2]


def test_features_shape_and_deterministic(lite0, galaxies):
    seen = []
    a = F.extract(lite0, galaxies, size=64, batch_size=4,
                  progress=lambda done, total, stage: seen.append((done, total)))
    b = F.extract(lite0, list(galaxies), size=64, batch_size=6)
    assert a.shape == (6, 1280) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert seen == [(4, 6), (6, 6)]
    assert np.abs(a[0] - a[1]).max() > 1e-3  # different images, different features


def test_onnx_equals_torch(lite0, galaxies):
    for size in (64, 224):
        torch_features = F.extract(lite0, galaxies[:3], size=size)
        onnx_features = F.extract(lite0, galaxies[:3], size=size, engine="onnx", batch_size=2)
        assert np.abs(onnx_features - torch_features).max() < 1e-4
    assert F.onnx_session(lite0, 64) is F.onnx_session(lite0, 64)
    assert F.onnx_path(lite0, 64).name == f"{lite0.key}-64px.onnx"


def test_int8_engine_is_the_network_in_8_bits(lite0):
    from pipeline.oneshot import quantised, views
    from pipeline.oneshot.galaxies import to_rgb
    from pipeline.oneshot.population import draw_galaxies
    from pipeline.oneshot.render import render_galaxies
    from pipeline.oneshot.survey import assign_labels

    rng = np.random.default_rng(7)  # not the calibration's galaxies
    galaxies = assign_labels(draw_galaxies(4, rng), rng)
    shown = [views.view(to_rgb(bands), "galaxy") for bands in render_galaxies(galaxies)]
    eight = F.extract(lite0, shown, engine="onnx-int8")
    full = F.extract(lite0, shown, engine="onnx")
    cos = (eight * full).sum(1) / np.linalg.norm(eight, axis=1) / np.linalg.norm(full, axis=1)
    # near, not equal: cosine 0.85-0.91 on an AVX2 machine without VNNI (7-bit weights, see quantised.py)
    assert eight.shape == full.shape and (cos > 0.8).all() and cos.mean() > 0.85 and np.abs(eight - full).max() > 1e-3
    path = quantised.int8_path(lite0, 224)
    assert path.is_file() and path.stat().st_size < F.onnx_path(lite0, 224).stat().st_size / 2  # 8-bit weights
    assert F.onnx_session(lite0, 224, int8=True) is F.onnx_session(lite0, 224, int8=True)
    with pytest.raises(InputError, match="224 px only"):
        F.extract(lite0, shown, size=64, engine="onnx-int8")


def test_an_8_bit_store_says_so_and_describes_uploads_with_the_same_network(tiny_set, tmp_path):
    from pipeline.oneshot import store as st

    built = st.build_store(tiny_set, tmp_path / "int8", engine="onnx-int8", invariance="none", scheduler="threads")
    assert "8-bit integers" in built.describe() and built.meta["engine"] == "onnx-int8"
    again = st.image_features(built, tiny_set.path(0))  # an upload goes through the 8-bit network too
    np.testing.assert_allclose(again, built.features[0], atol=1e-4)
    with pytest.raises(InputError, match="224 px only"):
        st.build_store(tiny_set, tmp_path / "small", size=64, engine="onnx-int8", invariance="none")
    assert not (tmp_path / "small").exists()


def test_an_unknown_engine_is_refused(lite0, galaxies):
    with pytest.raises(InputError, match="unknown engine"):
        F.extract(lite0, galaxies[:1], size=96, engine="int4")


def test_feature_maps_average_to_features(lite0, galaxies):
    pooled = F.extract(lite0, galaxies[:2], size=96)
    maps = F.feature_maps(lite0, galaxies[:2], size=96)
    assert maps.shape == (2, 1280, 3, 3)
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), pooled, atol=1e-5)
    some = F.feature_maps(lite0, galaxies[:2], size=96, channels=[7, 3])
    np.testing.assert_array_equal(some, maps[:, [7, 3]])


def test_preprocess(lite0):
    image = np.full((50, 70, 3), 255, np.uint8)
    x = F.preprocess([image, np.zeros((30, 30, 3), np.uint8)], 64, lite0)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.ones(1)) and torch.allclose(x[1], -torch.ones(1))  # (v - 0.5) / 0.5


def test_bad_inputs(lite0):
    grey = data.camera()
    with pytest.raises(InputError, match="RGB"):
        F.extract(lite0, grey)
    with pytest.raises(InputError, match="RGB"):
        F.extract(lite0, [grey[..., None]])
    with pytest.raises(InputError, match="uint8"):
        F.extract(lite0, [np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(InputError, match="channels-first"):
        F.extract(lite0, [np.zeros((3, 32, 32), np.uint8)])
    with pytest.raises(InputError, match="efficientnet_b0"):
        F.load_backbone("resnet50")
    with pytest.raises(InputError, match="engine"):
        F.extract(lite0, [data.chelsea()], engine="tensorrt")
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        F.extract(lite0, [data.chelsea()], size=64, cancel=stop)


def test_b0_missing_weights_names_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "efficientnet_b0.pth"
    with pytest.raises(InputError, match=str(missing)):
        F.load_backbone("efficientnet_b0", weights=missing)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    with pytest.raises(InputError, match=str(tmp_path / "torch" / "checkpoints" / "efficientnet_b0_ra-3dd342df.pth")):
        F.load_backbone("efficientnet_b0")


def test_b0_from_torchvision_file_in_hub_cache(tmp_path, monkeypatch):
    """A torchvision state dict is renamed into timm's layout, loaded strictly, and computes the same."""
    import huggingface_hub.constants
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_b0().eval()
    checkpoints = tmp_path / "torch" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / "efficientnet_b0_rwightman-7f5810bc.pth")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    b0 = F.load_backbone("efficientnet_b0")
    assert b0.label == "EfficientNet-B0 (ImageNet), the paper's model" and b0.weights_source == "torch hub cache"
    assert b0.mean == F.IMAGENET_MEAN
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(b0.model(x).numpy(), reference(x).numpy(), atol=1e-4)
    assert F.extract(b0, [data.coffee()], size=64).shape == (1, 1280)
    with pytest.raises(InputError, match="TensorFlow port"):  # Lite0's file is not B0
        F.load_backbone("efficientnet_b0", weights=F.load_backbone().weights)
    torch.save(reference.state_dict(), tmp_path / "torchvision_b0.pth")
    with pytest.raises(InputError, match="does not hold"):  # strict: no silent partial load
        F.load_backbone("tf_efficientnet_lite0", weights=tmp_path / "torchvision_b0.pth")


def test_available_backbones_lists_those_with_weights_here(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache: no B0
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert F.available_backbones() == ["tf_efficientnet_lite0"]
