"""Model specs (`--model NAME=KIND:WEIGHTS[,KEY=VALUE...]`, --models-file) and the kind registry."""

from __future__ import annotations

import pytest

from labelgate.models import kinds
from labelgate.models.backend import PromptSegmentationBackend
from labelgate.models.kinds import DETECT, PROMPT_SEGMENT, ModelKind
from labelgate.models.spec import ModelSpec, check_unique, read_models_file


def test_parse_name_kind_weights_and_options():
    spec = ModelSpec.parse("large=sam2:weights/sam2.1_hiera_large.pt,config=configs/sam2.1/sam2.1_hiera_l.yaml,cache_share=0.5")
    assert (spec.name, spec.kind, spec.weights) == ("large", "sam2", "weights/sam2.1_hiera_large.pt")
    assert spec.options == {"config": "configs/sam2.1/sam2.1_hiera_l.yaml", "cache_share": "0.5"}


def test_option_values_may_hold_commas():
    spec = ModelSpec.parse("t=sam2:w.pt,overrides=++model.image_encoder.trunk.stages=[1,1,1,1];++model.image_size=256,config=c.yaml")
    assert spec.options["overrides"] == "++model.image_encoder.trunk.stages=[1,1,1,1];++model.image_size=256"
    assert spec.options["config"] == "c.yaml"


@pytest.mark.parametrize("text, words", [
    ("sam2:weights.pt", "NAME=KIND:WEIGHTS"),
    ("tiny=sam2", "NAME=KIND:WEIGHTS"),
    ("bad name=sam2:w.pt", "letters, digits"),
    ("x" * 65 + "=sam2:w.pt", "1-64"),
    ("t=sam2:w.pt,cache_share=2", "cache_share"),
    ("t=sam2:w.pt,cache_share=nan", "cache_share"),
])
def test_bad_specs_say_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=words):
        ModelSpec.parse(text)


def test_models_file(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: a, kind: sam2, weights: a.pt, config: c.yaml}\n  - {name: g, kind: grounding_dino, weights: gd}\n")
    specs = read_models_file(path)
    assert [(s.name, s.kind, s.weights, dict(s.options)) for s in specs] == [
        ("a", "sam2", "a.pt", {"config": "c.yaml"}), ("g", "grounding_dino", "gd", {})
    ]
    path.write_text("- a\n")
    with pytest.raises(ValueError, match="models:"):
        read_models_file(path)


def test_names_are_unique():
    with pytest.raises(ValueError, match="twice"):
        check_unique([ModelSpec("a", "sam2", "x"), ModelSpec("a", "grounding_dino", "y")])


def test_built_in_kinds_declare_capabilities_and_cpu_batching():
    sam2, gdino = kinds.get("sam2"), kinds.get("grounding_dino")
    assert sam2.capabilities == {PROMPT_SEGMENT, kinds.TRACK} and gdino.capabilities == {DETECT}
    assert sam2.max_batch_size("cpu", 8) == 1 and sam2.max_batch_size("cuda:0", 8) == 8
    assert gdino.max_batch_size("cpu", 8) == 8
    assert {"sam2", "grounding_dino"} <= set(kinds.names())


def test_unknown_kind_and_unknown_option():
    with pytest.raises(ValueError, match="unknown model kind 'nope'.*sam2"):
        kinds.get("nope")
    with pytest.raises(ValueError, match="unknown option.*colour.*config"):
        kinds.get("sam2").check(ModelSpec("t", "sam2", "w.pt", {"colour": "red"}))
    kinds.get("sam2").check(ModelSpec("t", "sam2", "w.pt", {"config": "c", "cache_share": "0.5"}))


def test_a_kind_needs_known_capabilities_and_a_unique_name():
    with pytest.raises(ValueError, match="capabilities"):
        ModelKind("odd", "", frozenset({"teleport"}), load=lambda spec, context: None)
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(ModelKind("sam2", "another", frozenset({PROMPT_SEGMENT}), load=lambda spec, context: None))


def test_a_backend_must_implement_its_capability():
    class Half(PromptSegmentationBackend):
        def encode(self, images):
            return []

    with pytest.raises(TypeError, match="decode"):
        Half()


def test_plugin_module_that_cannot_be_imported():
    with pytest.raises(ValueError, match="--plugin no_such_module_here"):
        kinds.load_plugins(["no_such_module_here"])


def test_plugin_from_a_file_registers_its_kind(tmp_path):
    plugin = tmp_path / "echo_kind.py"
    plugin.write_text(
        "from labelgate.models.kinds import DETECT, ModelKind, register\n"
        "register(ModelKind('echo_test_kind', 'test', frozenset({DETECT}), load=lambda spec, context: None))\n"
    )
    kinds.load_plugins([str(plugin)])
    assert kinds.get("echo_test_kind").capabilities == {DETECT}
    with pytest.raises(ValueError, match="cannot import"):
        kinds.load_plugins([str(tmp_path / "missing.py")])


def test_transformers_kinds_load_one_at_a_time():
    """Two transformers from_pretrained calls at once fail on meta tensors (seen serving EdgeTAM next to
    Grounding DINO): those kinds share a load group, which loads one model at a time."""
    assert kinds.get("grounding_dino").load_group == kinds.get("edgetam").load_group == "transformers"
