"""Model sources open_clip/<arch>:<tag> and hf/<repo or folder>, offline: small
architectures with random weights; the zero-shot head and the preprocessing
checked against the libraries' own reference functions."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import one_error, require_module
from eval_fixtures import photo, shift_files, v2_files, write_tree
from PIL import Image

from replication.classes import imagenet_classes
from evaluators.decode import load_crop
from evaluators.engine import ModelRunner
from evaluators.manifests import load_manifest
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import create_model
from replication.errors import InputError

open_clip = require_module("open_clip")
transformers = require_module("transformers")
from evaluators import zero_shot  # noqa: E402
from evaluators.hf_models import check_images, label_map, max_difference, preprocess_from_processor  # noqa: E402

TINY = "tiny-test-clip"
NAMES = imagenet_classes().full_names
# images of odd sizes: crops at odd offsets, both orientations
IMAGES = [Image.fromarray(photo(s, size)) for s, size in enumerate([(53, 40), (40, 61), (45, 45), (39, 32)])]


@pytest.fixture(scope="module", autouse=True)
def tiny_clip_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("clipcfg") / f"{TINY}.json"
    path.write_text(json.dumps({"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                                 "patch_size": 16, "head_width": 16},
                                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                                             "layers": 1}}))
    open_clip.add_model_config(path)


@pytest.fixture
def head_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(zero_shot.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tiny_clip(**force):
    torch.manual_seed(0)
    return open_clip.create_model(TINY, pretrained=None, pretrained_text=False, force_preprocess_cfg=force).eval()


def _normalized(data: bytes, cfg: PreprocessCfg) -> torch.Tensor:
    """Our path: decode + resize + crop (load_crop), normalization as the engine does it."""
    runner = ModelRunner(torch.nn.Identity(), cfg, torch.device("cpu"), channels_last=False)
    return runner.normalize(load_crop(data, cfg)[None])[0]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ open_clip
def test_prompts_are_clips_names_and_80_templates():
    names, templates = zero_shot.imagenet_prompts()
    assert len(names) == 1000 and len(templates) == 80 and len(set(templates)) == 80
    assert names[:2] == ("tench", "goldfish") and templates[0] == "a bad photo of a {}."
    assert "itap of a {}." in templates and all(t.count("{}") == 1 for t in templates)


def test_zero_shot_head_equals_open_clips_builder():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    model, tokenizer = _tiny_clip(), open_clip.get_tokenizer(TINY)
    names, templates = zero_shot.imagenet_prompts()
    ours = zero_shot.text_head(model, tokenizer, names[:12], templates, batch_size=300, progress=False)
    theirs = open_clip.build_zero_shot_classifier(model, tokenizer, IMAGENET_CLASSNAMES[:12],
                                                  OPENAI_IMAGENET_TEMPLATES, num_classes_per_batch=5)
    assert ours.shape == (16, 12)
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-5)


def test_classifier_is_clips_image_side():
    model = _tiny_clip()
    head = torch.nn.functional.normalize(torch.randn(16, 1000), dim=0)
    clf = zero_shot.ZeroShotClassifier(model.visual, head, float(model.logit_scale.detach().exp()))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model.logit_scale.exp() * model.encode_image(x, normalize=True) @ head
        torch.testing.assert_close(clf(x), want, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):       # the head product stays float32
            assert clf(x).dtype == torch.float32


@pytest.mark.parametrize("force", [{}, {"resize_mode": "squash", "interpolation": "bilinear",
                                        "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}])
def test_preprocessing_equals_open_clips_transform(force):
    model = _tiny_clip(**force)
    cfg = zero_shot.preprocess_from_open_clip(model.visual.preprocess_cfg, "tiny")
    from open_clip.transform import PreprocessCfg as ClipCfg, image_transform_v2

    transform = image_transform_v2(ClipCfg(**model.visual.preprocess_cfg), is_train=False)
    for img in IMAGES:
        torch.testing.assert_close(_normalized(_png(img), cfg), transform(img), atol=2e-6, rtol=0)


def test_pad_to_square_is_refused():
    with pytest.raises(InputError, match="resize_mode 'longest'"):
        zero_shot.preprocess_from_open_clip({"size": 224, "mean": (0,) * 3, "std": (1,) * 3, "resize_mode": "longest"}, "m")


def test_missing_weights_name_the_file_and_the_place(head_cache):
    with pytest.raises(InputError, match=r"open_clip/RN50:openai: weights not in the local cache: put .*"
                                         r"hf.co/timm/resnet50_clip.openai.*/RN50.pt at .*\.cache/clip/RN50.pt"):
        create_model("open_clip/RN50:openai")
    with pytest.raises(InputError, match="unknown pretrained tag 'nope'"):
        create_model("open_clip/RN50:nope")
    with pytest.raises(InputError, match="no such.pt: weights file not found"):
        create_model("open_clip/RN50:openai", weights="no such.pt")


def test_head_is_cached_by_model_templates_and_names(head_cache, monkeypatch):
    names, _ = zero_shot.imagenet_prompts()
    monkeypatch.setattr(zero_shot, "imagenet_prompts", lambda: (names, ("a photo of a {}.",)))
    first = create_model(f"open_clip/{TINY}", weights="random")
    again = create_model(f"open_clip/{TINY}", weights="random")
    assert not first.provenance["head_from_cache"] and again.provenance["head_from_cache"]
    torch.testing.assert_close(first.module.head, again.module.head)
    monkeypatch.setattr(zero_shot, "imagenet_prompts", lambda: (names, ("a sketch of a {}.",)))
    other = create_model(f"open_clip/{TINY}", weights="random")
    assert not other.provenance["head_from_cache"] and other.provenance["head_cache"] != first.provenance["head_cache"]
    assert len(list(head_cache.glob("zero_shot_heads/*.pt"))) == 2


def test_open_clip_model_through_evaluate_on_a_class_subset(head_cache, monkeypatch, tmp_path, run):
    names, _ = zero_shot.imagenet_prompts()
    monkeypatch.setattr(zero_shot, "imagenet_prompts", lambda: (names, ("a photo of a {}.",)))
    r = load_manifest("imagenet-r")["classes"]
    root = write_tree(tmp_path / "imagenet-r", shift_files(r[:3], per_class=2))
    code, out, err = run("evaluate", "--model", f"open_clip/{TINY}", "--weights", "random", "--dataset",
                         "imagenet-r", "--root", root, "--out", tmp_path / "out", "--allow-partial", "--workers", "0")
    assert code == 0, err
    name = f"open_clip_{TINY}"
    table = pd.read_parquet(tmp_path / "out" / "imagenet-r" / f"{name}.parquet")
    assert len(table) == 6 and table[[f"pred{k}" for k in range(1, 6)]].isin(r).all().all()
    side = json.loads((tmp_path / "out" / "imagenet-r" / f"{name}.json").read_text())
    assert side["scoring"]["class_subset"] == r and side["preprocess"]["crop_size"] == 32
    assert side["provenance"]["templates"].endswith("(1)") and side["provenance"]["weights"] == "random"


# ------------------------------------------------------------------ Hugging Face
def test_label_maps_by_position_name_and_wnid():
    assert (label_map({i: n for i, n in enumerate(NAMES)}, "m") == np.arange(1000)).all()
    wn = imagenet_classes().wnids
    got = label_map({0: "background", 1: NAMES[7], 2: wn[3], 3: "goldfish"}, "m")
    assert got.tolist() == [-1, 7, 3, 1]
    with pytest.raises(InputError, match="output 1 is labelled 'LABEL_1', which is not an ImageNet class"):
        label_map({0: NAMES[0], 1: "LABEL_1"}, "m")
    with pytest.raises(InputError, match="'crane', which names several ImageNet classes"):
        label_map({0: "crane"}, "m")


def _processors():
    from transformers import BitImageProcessor, ConvNextImageProcessor, DeiTImageProcessor, ViTImageProcessor

    return [ViTImageProcessor(size={"height": 32, "width": 32}),
            DeiTImageProcessor(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32}),
            ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875),
            BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                              rescale_factor=1 / 127.5, image_mean=[1.0, 1.0, 1.0], image_std=[1.0, 1.0, 1.0])]


@pytest.mark.parametrize("index", range(4))
def test_preprocessing_equals_the_image_processors_output(index, tmp_path):
    from transformers import AutoImageProcessor

    _processors()[index].save_pretrained(tmp_path)
    pil = AutoImageProcessor.from_pretrained(tmp_path, local_files_only=True, backend="pil")
    default = AutoImageProcessor.from_pretrained(tmp_path, local_files_only=True)
    cfg = preprocess_from_processor(pil, "m")
    images = IMAGES + check_images(cfg)
    for img in images:
        ours = _normalized(_png(img), cfg)
        theirs = torch.as_tensor(np.asarray(pil(images=[img], return_tensors="pt")["pixel_values"]))[0]
        torch.testing.assert_close(ours, theirs.float(), atol=2e-6, rtol=0)
        fast = default(images=[img], return_tensors="pt")["pixel_values"][0]
        level = 1 / (255 * min(cfg.std))         # the torchvision backend's resize rounds differently
        assert float((fast - ours).abs().max()) <= 2.01 * level
    if cfg.resize_mode == "shorter":  # torchvision's crop offset (round half to even) differs from Hugging Face's
        assert max_difference(pil, images, cfg.replace(crop_rounding="round")) > 0.1


def _tiny_vit(folder, labels: dict[int, str], processor=None):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, num_labels=len(labels), id2label=labels,
                       label2id={v: k for k, v in labels.items()})
    ViTForImageClassification(config).save_pretrained(folder)
    (processor or ViTImageProcessor(size={"height": 32, "width": 32})).save_pretrained(folder)
    return folder


def test_hf_folder_model_scores_imagenet_classes(tmp_path):
    folder = _tiny_vit(tmp_path / "vit", {0: "background", **{i + 1: n for i, n in enumerate(NAMES)}})
    lm = create_model(f"hf/{folder}")
    assert lm.name == "hf_vit" and lm.classes is None and lm.provenance["max_diff_pil_backend"] == 0.0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        raw = lm.module.model(pixel_values=x).logits
        torch.testing.assert_close(lm.module(x), raw[:, 1:])        # background output dropped
    with pytest.raises(InputError, match="cannot be expressed exactly"):
        from transformers import MobileViTImageProcessor    # flips RGB to BGR: refused at load

        _tiny_vit(tmp_path / "bgr", {0: NAMES[0]}, MobileViTImageProcessor(
            size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}))
        create_model(f"hf/{tmp_path / 'bgr'}")


def test_hf_repo_not_in_the_cache_is_refused_offline():
    with pytest.raises(InputError, match="hf/nobody/no-such-model: no image processor found"):
        create_model("hf/nobody/no-such-model")


def test_model_without_the_subset_classes_is_refused(tmp_path, run):
    """A model that scores 3 ImageNet classes cannot be scored on ImageNet-R's 200."""
    r = load_manifest("imagenet-r")["classes"]
    folder = _tiny_vit(tmp_path / "vit3", {0: NAMES[r[0]], 1: NAMES[r[1]], 2: NAMES[0]})
    root = write_tree(tmp_path / "imagenet-r", shift_files(r[:2], per_class=1))
    code, _, err = run("evaluate", "--model", f"hf/{folder}", "--dataset", "imagenet-r", "--root", root,
                       "--out", tmp_path / "out", "--allow-partial", "--workers", "0")
    assert code == 1
    assert "model hf_vit3 scores 3 ImageNet classes and lacks 198 of the 200 classes imagenet-r is scored on" in one_error(err)
    # nor on a 1000-class dataset, even one holding only images of its classes
    v2 = write_tree(tmp_path / "v2", v2_files(classes=(r[0], r[1]), per_class=1))
    code, _, err = run("evaluate", "--model", f"hf/{folder}", "--dataset", "imagenetv2-matched-frequency",
                       "--root", v2, "--out", tmp_path / "out", "--allow-partial", "--workers", "0")
    assert code == 1 and "lacks 997 of the 1000 ImageNet classes" in one_error(err)


def test_preprocessing_without_weights_or_head():
    """The grid planner reads a model's crop from its configs: CLIP ViT-B/32's is
    bicubic 224 with OpenAI's mean and std (Radford et al. 2021)."""
    from evaluators.registry import model_preprocess

    cfg = model_preprocess("open_clip/ViT-B-32:openai")
    assert (cfg.crop_size, cfg.resize_size, cfg.interpolation, cfg.resize_mode) == (224, 224, "bicubic", "shorter")
    assert cfg.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
