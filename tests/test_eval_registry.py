"""A model's preprocessing read without building it (what the crop-cache
grouping and the finished-result check use), against the built model's."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from conftest import require_module

from evaluators import registry
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import create_model, model_preprocess


def _built(model_id, **kw):
    return create_model(model_id, weights="random", **kw).preprocess


@pytest.mark.parametrize("model_id", ["efficientnet_lite0", "efficientnet_lite2", "resnet50", "resnet50.IMAGENET1K_V1",
                                      "vit_b_16", "mobilenet_v3_small"])
def test_preprocessing_without_building_equals_the_built_models(model_id, monkeypatch):
    built = _built(model_id)
    assert model_preprocess(model_id, preprocess={"crop_size": 64}) == built.replace(crop_size=64)

    def no_build(*a, **k):
        raise AssertionError("built")

    monkeypatch.setattr(torchvision.models, "get_model", no_build)
    for lite in ("efficientnet_lite0", "efficientnet_lite2"):
        monkeypatch.setitem(registry._REGISTRY, lite, no_build)
    assert model_preprocess(model_id) == built


def test_timm_preprocessing_without_building(monkeypatch):
    timm = require_module("timm")
    built = {m: _built(m) for m in ("timm/resnet18.a1_in1k", "timm/convnext_tiny", "timm/deit_tiny_patch16_224")}
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    assert {m: model_preprocess(m) for m in built} == built
    assert built["timm/resnet18.a1_in1k"].interpolation == "bicubic"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_preprocessing_read_from_the_file(tmp_path, monkeypatch):
    net = create_model("resnet18", weights="random").module
    cfg = PreprocessCfg(crop_size=64, resize_size=72, interpolation="bicubic")
    with_cfg, plain = tmp_path / "a.pt", tmp_path / "b.pt"
    trace = torch.jit.trace(net, torch.randn(1, 3, 32, 32))
    torch.jit.save(trace, str(with_cfg), _extra_files={"preprocess.json": json.dumps(cfg.to_dict())})
    torch.jit.save(trace, str(plain))
    built = {p: create_model(f"torchscript:{p}").preprocess for p in (with_cfg, plain)}
    assert built == {with_cfg: cfg, plain: PreprocessCfg()}
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    assert {p: model_preprocess(f"torchscript:{p}") for p in built} == built


def test_a_registered_factory_without_a_declared_preprocessing_is_built_once(monkeypatch):
    calls = []

    def factory(weights=None, download=False):
        calls.append(weights)
        return registry.LoadedModel("mine", torch.nn.Identity(), PreprocessCfg(crop_size=99, resize_size=100))

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model(factory, name="mine")
    assert model_preprocess("mine").crop_size == 99 and calls == [registry.RANDOM]
