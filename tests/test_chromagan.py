"""The ChromaGAN family (models/chromagan.py, models/chromagan_nets.py) and its class teachers (models/teachers.py):
registry entries, shapes and ranges, the VGG-16 trunk layout, and valid class distributions from every teacher."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import vgg16
from torchvision.models.vgg import cfgs, make_layers

from colorbench.core.errors import BenchError
from colorbench.data.color import luma_bt601, rgb_to_lab
from colorbench.data.loader import Batch
from colorbench.data.sources import open_source
from colorbench.models.chromagan import PROFILES, VARIANTS, ChromaGAN, build
from colorbench.models.chromagan_nets import Critic, Generator, Upsample2x, vgg16_trunk
from colorbench.models.registry import get_model_spec
from colorbench.models.teachers import (
    COCO_CLASSES,
    VGG16_FILE,
    CocoLabelTeacher,
    build_teacher,
    resolve_teacher,
    teacher_classes,
)
from colorbench.models.trainable import profile_settings

TINY = {"profile": "smoke", "image_size": 32, "width": 0.0625, "trunk_init": "xavier"}


def make_batch(rgb: torch.Tensor, image_ids: list[str] | None = None) -> Batch:
    lab = rgb_to_lab(rgb)
    ids = image_ids or [str(i) for i in range(len(rgb))]
    return Batch(ids, [""] * len(rgb), (rgb * 255).round().byte(), rgb, lab[:, :1], lab[:, 1:], luma_bt601(rgb))


@pytest.fixture(scope="module")
def photo_batch() -> Batch:
    import skimage.data

    photos = [torch.from_numpy(skimage.data.chelsea()[:256, :256].copy()),
              torch.from_numpy(skimage.data.coffee()[:256, :256].copy())]
    return make_batch(torch.stack(photos).permute(0, 3, 1, 2).float() / 255)


def assert_distributions(probs: torch.Tensor, classes: int) -> None:
    assert probs.shape[1] == classes
    assert float(probs.min()) >= 0
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(probs)), atol=1e-5)


def test_registry_entries_are_trained_grey_input_models():
    for name in VARIANTS:
        spec = get_model_spec(name)
        assert spec.training == "train" and spec.inputs == ("L",) and not spec.reference
    assert VARIANTS["model-a"].beta1 == 0.9 and VARIANTS["chromagan"].beta1 == 0.5
    assert VARIANTS["model-a2"].adversarial == "bce" and not VARIANTS["chromagan-noclass"].class_head


@pytest.mark.parametrize("name", list(VARIANTS))
def test_colorize_keeps_the_input_size_and_range(name):
    model = build(name, **TINY, teacher="efficientnet-lite0").eval()
    L = torch.rand(2, 1, 40, 52) * 100
    with torch.no_grad():
        rgb = model.colorize(make_batch(torch.rand(2, 3, 40, 52)).inputs_for(("L",)))
        ab01, logits = model.generator(model.network_input(L))
    assert rgb.shape == (2, 3, 40, 52) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    assert ab01.shape == (2, 2, 32, 32) and float(ab01.min()) >= 0 and float(ab01.max()) <= 1
    assert (logits is None) == (name == "chromagan-noclass")
    if logits is not None:
        assert logits.shape == (2, 1000)


def test_paper_geometry_and_variant_settings():
    """At 224 the trunk ends at 28x28, the global branch at 7x7 and the critic gives a 28x28 patch map."""
    generator = Generator(224, 0.0625, 1000)
    assert generator.global_dense[1].in_features == round(512 * 0.0625) * 7 * 7
    assert Critic(0.0625)(torch.rand(1, 1, 224, 224), torch.rand(1, 2, 224, 224)).shape == (1, 1, 28, 28)
    paper = {name: build(name, profile="paper", width=0.0625, trunk_init="xavier").settings for name in VARIANTS}
    assert paper["chromagan"].loop.batch_size == 10 and paper["model-a"].loop.batch_size == 256
    assert paper["model-a"].betas == (0.9, 0.999) and paper["chromagan"].lr == 2e-5
    assert paper["chromagan-noclass"].class_weight == 0 and paper["chromagan"].class_weight == 0.003
    assert paper["chromagan"].loop.image_size == 224 and paper["chromagan"].loop.epochs == 5


def test_width_one_trunk_matches_torchvision_vgg16_features():
    theirs = {k: v.shape for k, v in make_layers(cfgs["D"]).state_dict().items() if int(k.split(".")[0]) <= 21}
    ours = {k: v.shape for k, v in vgg16_trunk(1.0).state_dict().items()}
    assert ours == theirs


def test_initialization_is_seeded_and_recorded():
    a, b = build("chromagan-noclass", **TINY), build("chromagan-noclass", **TINY)
    assert a.weights_sha256() == b.weights_sha256() != build("chromagan-noclass", **TINY, seed=1).weights_sha256()
    assert a.options()["trunk_init"] == "xavier" and a.options()["teacher"] is None
    with pytest.raises(BenchError, match=r"width 1\.0"):
        build("chromagan", **{**TINY, "trunk_init": "imagenet"})


def test_vgg16_file_initializes_the_trunk_and_becomes_the_teacher(tmp_path, monkeypatch, photo_batch):
    """Plumbing test with a randomly initialized state dict shaped like torchvision's VGG-16 (no real ImageNet
    weights exist on the development machines): the file is found, loads into the width-1.0 trunk and serves as
    the auto teacher, giving valid distributions."""
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg16().state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) * 0.01 for k, shape in shapes.items()}
    torch.save(state, folder / VGG16_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_teacher("auto") == "vgg16"
    model = ChromaGAN(profile_settings(PROFILES, "smoke", width=1.0, image_size=32), "auto")
    assert model.trunk_init == "imagenet" and model.options()["trunk_weights"] == VGG16_FILE
    assert torch.equal(model.generator.trunk[21].weight, state["features.21.weight"])
    targets = build_teacher("vgg16")(photo_batch)
    assert_distributions(targets.probs, 1000)


def test_without_the_vgg16_file_the_teacher_is_efficientnet(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_teacher("auto") == "efficientnet-lite0"
    assert ChromaGAN(profile_settings(PROFILES, "smoke", width=1.0, image_size=32)).trunk_init == "xavier"
    with pytest.raises(BenchError, match=VGG16_FILE):
        build_teacher("vgg16")


def test_efficientnet_teacher_sees_only_the_grey_input(photo_batch):
    teacher = build_teacher("efficientnet-lite0")
    targets = teacher(photo_batch)
    assert_distributions(targets.probs, 1000)
    assert bool(targets.labelled.all())
    assert int(targets.probs[0].argmax()) in range(281, 286)  # chelsea: a cat class (tabby 281 ... Egyptian 285)
    recoloured = make_batch(photo_batch.rgb[:, [2, 0, 1]])  # other colours, other L: changes the input
    same_l = Batch(recoloured.image_ids, recoloured.captions, recoloured.rgb_u8, recoloured.rgb, photo_batch.L,
                   recoloured.ab, recoloured.luma)
    assert torch.equal(teacher(same_l).probs, targets.probs)


def test_coco_labels_are_area_weighted_categories(coco_mini):
    coco = open_source(f"coco:{coco_mini}:train2017").instances()
    teacher = build_teacher("coco-labels", coco)
    ids = [str(i) for i in sorted(coco.getImgIds())[:3]]
    targets = teacher(make_batch(torch.rand(3, 3, 8, 8), ids))
    assert_distributions(targets.probs, COCO_CLASSES)
    assert teacher_classes("coco-labels") == COCO_CLASSES and bool(targets.labelled.all())
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[int(ids[0])]))
    dominant = max({a["category_id"] for a in anns},
                   key=lambda c: sum(a["area"] for a in anns if a["category_id"] == c))
    assert int(targets.probs[0].argmax()) == sorted(coco.getCatIds()).index(dominant)


def test_coco_labels_without_instances_are_uniform_and_unlabelled(tmp_path):
    from pycocotools.coco import COCO

    data = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": c, "name": str(c)} for c in range(1, 81)],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "area": 30.0},
                            {"id": 2, "image_id": 1, "category_id": 5, "area": 10.0}]}
    (tmp_path / "instances.json").write_text(json.dumps(data))
    targets = CocoLabelTeacher(COCO(str(tmp_path / "instances.json")))(make_batch(torch.rand(2, 3, 4, 4), ["1", "2"]))
    assert_distributions(targets.probs, COCO_CLASSES)
    assert targets.labelled.tolist() == [True, False]
    assert targets.probs[0, 2] == pytest.approx(0.75) and targets.probs[0, 4] == pytest.approx(0.25)
    assert torch.allclose(targets.probs[1], torch.full((COCO_CLASSES,), 1 / COCO_CLASSES))
    with pytest.raises(BenchError, match="instances"):
        build_teacher("coco-labels", None)


def test_c4_arms_share_initial_weights_in_every_common_layer():
    """Claim C4 compares chromagan with chromagan-noclass: at the same seed they start equal in every layer they
    have in common (all but the class head) and in the critic; another seed changes every weight tensor."""
    with_head = build("chromagan", **TINY, teacher="efficientnet-lite0", seed=3)
    without = build("chromagan-noclass", **TINY, seed=3)
    ours, theirs = with_head.generator.state_dict(), without.generator.state_dict()
    assert set(theirs) < set(ours) and {k.split(".")[0] for k in set(ours) - set(theirs)} == {"class_head"}
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    for key, value in with_head.make_critic().state_dict().items():
        assert torch.equal(without.make_critic().state_dict()[key], value), key
    reseeded = build("chromagan-noclass", **TINY, seed=4).generator.state_dict()
    weights = [k for k in theirs if k.endswith("weight") and theirs[k].dim() > 1]
    assert len(weights) == 25  # 10 trunk + 4 global + 3 dense + 2 mid-level + 6 decoder layers
    assert not any(torch.equal(theirs[k], reseeded[k]) for k in weights)
    assert with_head.options()["init"] == without.options()["init"]


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_generator_parameter_count_is_pinned_at_width_one():
    """ChromaGAN at 224 x 224, width 1, 1000 classes (about 171.2M); each count was checked by hand from the layer
    shapes (e.g. the class head 25088*4096 + 4096 + 4096*4096 + 4096 + 4096*1000 + 1000 = 123,642,856)."""
    with torch.device("meta"):
        generator, headless, critic = Generator(224, 1.0, 1000), Generator(224, 1.0, None), Critic(1.0)
    assert parameter_count(generator) == 171_166_090
    assert parameter_count(headless) == 47_523_234
    assert parameter_count(critic) == 2_764_737
    assert {name: parameter_count(child) for name, child in generator.named_children()} == {
        "trunk": 7_635_264, "global_convs": 9_443_328, "global_dense": 26_347_264, "class_head": 123_642_856,
        "mid": 3_541_248, "decoder": 556_130}


def test_decoder_layer_list_is_pinned():
    """Decoder of reference.md sec. 2: 1x1 conv 256, conv 128, up, conv 64, conv 64, up, conv 32, conv 2, sigmoid,
    up; names and shapes at width 1."""
    with torch.device("meta"):
        generator = Generator(224, 1.0, None)
    assert [(name, tuple(p.shape)) for name, p in generator.decoder.named_parameters()] == [
        ("0.0.weight", (256, 512, 1, 1)), ("0.0.bias", (256,)), ("1.0.weight", (128, 256, 3, 3)), ("1.0.bias", (128,)),
        ("3.0.weight", (64, 128, 3, 3)), ("3.0.bias", (64,)), ("4.0.weight", (64, 64, 3, 3)), ("4.0.bias", (64,)),
        ("6.0.weight", (32, 64, 3, 3)), ("6.0.bias", (32,)), ("7.weight", (2, 32, 3, 3)), ("7.bias", (2,))]
    kinds = [type(layer).__name__ for layer in generator.decoder]
    assert kinds == ["Sequential", "Sequential", "Upsample2x", "Sequential", "Sequential", "Upsample2x", "Sequential",
                     "Conv2d", "Sigmoid", "Upsample2x"]
    assert generator.forward.__func__ is Generator.forward  # type: ignore[attr-defined]
    with torch.device("meta"):
        ab, logits = generator(torch.empty(2, 3, 224, 224))
    assert ab.shape == (2, 2, 224, 224) and logits is None


def test_upsample2x_equals_nearest_upsampling_and_its_gradient():
    x = torch.randn(2, 3, 5, 7, requires_grad=True)
    reference = x.detach().clone().requires_grad_(True)
    weights = torch.randn(2, 3, 10, 14)
    (Upsample2x()(x) * weights).sum().backward()
    (torch.nn.Upsample(scale_factor=2)(reference) * weights).sum().backward()
    assert torch.equal(Upsample2x()(x), torch.nn.Upsample(scale_factor=2)(x))
    assert torch.allclose(x.grad, reference.grad, atol=1e-6)


def test_registry_marks_the_chromagan_family_adversarial():
    assert all(get_model_spec(name).adversarial for name in VARIANTS)
    assert not any(get_model_spec(name).adversarial for name in ("gray", "baseline0", "groundtruth"))
