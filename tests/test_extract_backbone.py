"""Backbones: resolution without building, missing-weights errors, shapes per level, frozen."""

import numpy as np
import pytest
import torch

from clawcrane.build import backbones as bb
from clawcrane.build import detectors
from clawcrane.errors import ConfigError, WeightsError


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_missing_imagenet_weights_say_where_to_put_the_file(empty_hub):
    with pytest.raises(WeightsError) as err:
        bb.resolve_backbone("resnet50", "imagenet")
    msg = str(err.value)
    assert str(empty_hub) in msg and "resnet50-0676ba61.pth" in msg and "resnet50-11ad3fa6.pth" in msg


def test_auto_picks_resnet50_only_when_its_imagenet_file_is_present(empty_hub):
    assert bb.resolve_backbone("auto").name == "efficientnet-lite0"
    empty_hub.mkdir(parents=True)
    (empty_hub / "resnet50-11ad3fa6.pth").write_bytes(b"not really weights")
    spec = bb.resolve_backbone("auto")
    assert spec.name == "resnet50" and spec.weights_path.endswith("resnet50-11ad3fa6.pth") and spec.levels == ("C5",)


def test_spec_key_follows_weights_content_and_settings(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    ka = bb.resolve_backbone("resnet18", str(a)).key()
    assert ka != bb.resolve_backbone("resnet18", str(b)).key()
    b.write_bytes(b"1")  # same content elsewhere: same key
    assert ka == bb.resolve_backbone("resnet18", str(b)).key()
    assert ka != bb.resolve_backbone("resnet18", str(a), input_size=256).key()


def test_unknown_level_is_refused():
    with pytest.raises(ConfigError, match="C2, C3, C4, C5"):
        bb.resolve_backbone("resnet18", "none", ("head",))


def test_resnet18_levels_have_the_documented_widths_and_strides():
    m = bb.build_backbone(bb.resolve_backbone("resnet18", "none", ("C3", "C5"), input_size=64))
    x = m.preprocess([np.zeros((30, 50, 3), np.uint8), np.full((90, 70, 3), 200, np.uint8)])
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    f = m(x)
    assert [tuple(t.shape) for t in f] == [(2, 128, 8, 8), (2, 512, 2, 2)]  # strides 8 and 32
    assert m.channels == 640 and m.feature_sizes == ((8, 8), (2, 2))
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training  # stays frozen


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights_and_exposes_its_stages():
    spec = bb.resolve_backbone("efficientnet-lite0", "imagenet", ("C2", "C3", "C4", "C5", "head"), input_size=64)
    m = bb.build_backbone(spec)
    f = m(m.preprocess([np.full((40, 40, 3), 127, np.uint8)]))
    assert [tuple(t.shape) for t in f] == [(1, 24, 16, 16), (1, 40, 8, 8), (1, 112, 4, 4), (1, 320, 2, 2), (1, 1280, 2, 2)]
    state = torch.load(spec.weights_path, map_location="cpu", weights_only=True)
    assert torch.equal(m.body.net._conv_stem.weight, state["_conv_stem.weight"])  # the real weights, not an init
    # (x - 127) / 128: a grey-127 frame is all zeros after normalisation
    assert m.preprocess([np.full((8, 8, 3), 127, np.uint8)]).abs().max() == 0


def test_detector_backbone_pools_the_fpn_of_the_loaded_model(tmp_path, monkeypatch):
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    def load_detector_model(path):
        torch.manual_seed(0)
        return MaskRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=0), num_classes=3)

    monkeypatch.setattr(detectors, "detector_model", load_detector_model)
    ckpt = tmp_path / "det.pt"
    ckpt.write_bytes(b"checkpoint")
    spec = bb.resolve_backbone(f"detector:{ckpt}", input_size=64)
    assert spec.name == "detector" and spec.levels == ("fpn",)
    m = bb.build_backbone(spec)
    assert m.levels == ("0", "1", "2", "3") and m.channels == 4 * 256
    assert [tuple(t.shape) for t in m(torch.zeros(1, 3, 64, 64))] == [(1, 256, 16, 16), (1, 256, 8, 8), (1, 256, 4, 4), (1, 256, 2, 2)]
