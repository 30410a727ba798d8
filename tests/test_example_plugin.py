"""The third-party example plugin (docs/examples/medzoo-example-plugin): pip-installed into a temporary target,
discovered through its entry point, run through a recipe that only renames components, and held to the same
parametrised tests as the built-in components. Its own behaviour is checked in-process from the source tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.core.errors import PluginError, RecipeError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "medzoo-example-plugin"
RECIPE = "medzoo_example/recipes/tiny-conv-vit-resampler.yaml"


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    """``pip install --no-deps --no-build-isolation`` of a copy of the example (the build leaves the repo clean)."""
    source = tmp_path_factory.mktemp("source") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    installed = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run(
        [*command, "--quiet", "--target", str(installed), str(source)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_HANG_S,
    )
    assert result.returncode == 0, result.stderr
    return installed


def run_python(code: str, site: Path, **env: str) -> subprocess.CompletedProcess:
    variables = {k: v for k, v in os.environ.items() if k != "MEDZOO_PLUGINS"}
    variables.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_HANG_S,
        cwd=REPO,
        env=variables,
    )


def test_install_leaves_no_build_output_in_the_repo(target):
    assert (target / "medzoo_example" / "plugin.py").is_file()
    assert (target / RECIPE).is_file()
    leftovers = [p.name for p in EXAMPLE.iterdir() if p.name == "build" or p.name.endswith(".egg-info")]
    assert leftovers == []


SCRIPT = """
    import json
    import torch
    from click.testing import CliRunner
    from PIL import Image
    from omegaconf import OmegaConf
    from medzoo.core.model.build import build_model
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.inference import ChatRequest, InferenceEngine, SamplingSettings, processor_for
    from medzoo.app.cli.main import cli
    from medzoo.core.plugin_system.manager import reset_plugins
    from medzoo.core.model.processor import collate
    from medzoo.core.recipes.loading import load_recipe

    def listed(**env):
        # medzoo plugins --json, for a fresh plugin system under env
        reset_plugins()
        result = CliRunner().invoke(cli, ["plugins", "--json"], env=env)
        assert result.exit_code == 0, result.output
        listing = json.loads(result.stdout)
        names = ("conv-vit", "perceiver-resampler", "laterality", "clip")
        found = {row["name"]: row["provider"] for row in listing["components"] if row["name"] in names}
        return found, [failure["plugin"] for failure in listing["failures"]]

    (found, failures), (restricted, _) = listed(), listed(MEDZOO_PLUGINS="")
    reset_plugins()

    recipe, tiny = load_recipe(RECIPE).config, load_recipe("tiny").config
    torch.manual_seed(0)
    model = build_model(recipe.model).eval()
    image = Image.new("RGB", (48, 40), (180, 60, 90))
    messages = [Message("user", "<image>\\nWhat organ is shown?"), Message("assistant", "The liver.")]
    batch = collate([processor_for(model).encode(messages, [image])], model.tokenizer.pad_token_id)
    with torch.no_grad():
        output = model(**batch)
    answers = InferenceEngine(model).answer([ChatRequest(messages[:1], image)], SamplingSettings(max_new_tokens=3))
    answer = [c.text for c in answers]
    print(json.dumps({
        "found": found, "failures": failures, "restricted": restricted,
        "recipe": OmegaConf.to_container(recipe), "tiny": OmegaConf.to_container(tiny),
        "vision": type(model.vision).__name__, "connector": type(model.connector).__name__,
        "vision_tokens": model.vision.num_tokens, "image_tokens": model.num_image_tokens,
        "logits": list(output.logits.shape), "loss": float(output.loss), "answer": answer,
    }))
"""


@pytest.fixture(scope="module")
def run(target) -> dict:
    """Discovery (``medzoo plugins --json``, then under ``MEDZOO_PLUGINS=``) and one build/forward/generate
    of the example recipe, in a fresh interpreter that has the plugin on its path."""
    result = run_python(SCRIPT.replace("RECIPE", repr(str(target / RECIPE)), 1), target)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_entry_point_discovery(run):
    assert run["found"] == {
        "conv-vit": "example (medzoo-example-plugin)",
        "perceiver-resampler": "example (medzoo-example-plugin)",
        "laterality": "example (medzoo-example-plugin)",
        "clip": "medzoo.vision",
    }
    assert run["failures"] == []
    assert run["restricted"] == {"clip": "medzoo.vision"}


def test_recipe_changes_only_the_component_names(run):
    recipe, tiny = run["recipe"], run["tiny"]
    assert (recipe["model"]["vision"]["name"], recipe["model"]["connector"]["name"]) == (
        "conv-vit",
        "perceiver-resampler",
    )
    for section in (recipe, tiny):  # besides its own name and description
        section["model"]["vision"].pop("name"), section["model"]["connector"].pop("name")
        section.pop("name"), section.pop("description")
    assert recipe == tiny


def test_recipe_builds_and_runs_with_the_plugin_components(run):
    assert (run["vision"], run["connector"]) == ("ConvViTEncoder", "PerceiverResampler")
    assert (run["vision_tokens"], run["image_tokens"]) == (16, 8)
    assert run["logits"][0] == 1 and torch.isfinite(torch.tensor(run["loss"]))
    assert len(run["answer"]) == 1 and isinstance(run["answer"][0], str)


def test_the_builtin_parametrised_tests_cover_the_plugin(target):
    """The suites parametrised over every registered component pick the installed plugin up unchanged."""
    files = ["tests/test_vision_encoders.py", "tests/test_connectors.py", "tests/test_model_composition.py",
             "tests/test_rewards.py"]
    command = f"import sys, pytest; sys.exit(pytest.main({files!r} + ['-p', 'no:cacheprovider', '-k', "
    command += "'conv-vit or perceiver-resampler or laterality']))"
    result = run_python(command, target)
    assert result.returncode == 0, result.stdout[-3000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    # today: 6 encoder, 3 connector, 18 composition and 2 reward tests
    assert passed and int(passed.group(1)) >= 29


# --- the components themselves, imported from the source tree ---------------------------------------------------


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from medzoo_example.encoder import ConvViTEncoder
    from medzoo_example.resampler import PerceiverResampler

    yield ConvViTEncoder, PerceiverResampler
    for name in [name for name in sys.modules if name.startswith("medzoo_example")]:
        del sys.modules[name]


def pixels(size: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_conv_vit_stem_halves_the_image_per_convolution(example):
    encoder_class, _ = example
    encoder = encoder_class.from_config({**encoder_class.tiny_config(), "patch_size": 4})
    convolutions = [m for m in encoder.model.stem.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convolutions] == [(2, 2), (2, 2), (1, 1)]
    assert encoder.num_tokens == (32 // 4) ** 2
    assert encoder(pixels(32)).shape == (2, 64, 32)


def test_conv_vit_round_trips_through_a_local_directory(example, tmp_path):
    encoder_class, _ = example
    torch.manual_seed(0)
    encoder = encoder_class.from_config(encoder_class.tiny_config()).eval()
    encoder.save_pretrained(tmp_path)
    loaded = encoder_class.from_pretrained(str(tmp_path), feature_select="cls_patch")
    assert loaded.architecture_config() == encoder.architecture_config()
    half = encoder_class.from_pretrained(str(tmp_path), dtype="bfloat16")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        reference = encoder(pixels(32))
        assert torch.allclose(loaded(pixels(32))[:, 1:], reference, atol=1e-6)
        assert torch.allclose(half(pixels(32)).float(), reference, atol=0.1, rtol=0.05)


def test_conv_vit_loading_errors_are_one_line_plugin_errors(example, tmp_path):
    encoder_class, _ = example
    with pytest.raises(PluginError, match="not a directory holding config.json and model.safetensors"):
        encoder_class.from_pretrained(str(tmp_path / "missing"))
    encoder_class.from_config(encoder_class.tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(PluginError, match=r"do not fit the config \(missing \['blocks.2") as caught:
        encoder_class.from_pretrained(str(tmp_path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hiden_size": 32}, "unknown config key 'hiden_size' \\(did you mean \"hidden_size\"\\?\\)"),
        ({"patch_size": 6}, "patch_size must be a power of two"),
        ({"image_size": 36}, "image_size 36 is not a multiple of patch_size 8"),
        ({"num_attention_heads": 5}, "not divisible by num_attention_heads 5"),
    ],
)
def test_conv_vit_rejects_bad_configs(example, change, message):
    encoder_class, _ = example
    with pytest.raises(RecipeError, match=message):
        encoder_class.from_config({**encoder_class.tiny_config(), **change})


def test_resampler_output_length_is_num_latents_and_every_input_counts(example):
    _, resampler_class = example
    torch.manual_seed(0)
    for tokens in (16, 100):
        connector = resampler_class(24, 32, tokens, num_latents=5, num_heads=4)
        features = torch.randn(2, tokens, 24, requires_grad=True)
        output = connector(features)
        assert output.shape == (2, 5, 32) and connector.num_output_tokens == 5
        # a fixed random read-out: the plain sum of a LayerNorm's outputs is constant, its gradient only rounding
        readout = torch.randn(output[0].shape, generator=torch.Generator().manual_seed(1))
        (output[0] * readout).sum().backward()
        assert (features.grad[0].abs().sum(dim=-1) > 1e-6).all()  # each latent reads every image token
        assert features.grad[1].abs().sum() == 0  # and never another image's


def test_resampler_rejects_bad_options(example):
    _, resampler_class = example
    with pytest.raises(RecipeError, match="num_heads 5 does not divide the language width 32"):
        resampler_class(24, 32, 16, num_heads=5)
    with pytest.raises(RecipeError, match="num_latents must be a positive integer"):
        resampler_class(24, 32, 16, num_latents=0)
    with pytest.raises(ValueError, match="built for 16 tokens, got 9"):
        resampler_class(24, 32, 16)(torch.randn(1, 9, 24))


def test_laterality_reward_pays_for_the_side_alone(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from medzoo_example.laterality import LateralityReward

    from medzoo import RewardContext

    try:
        left, both = RewardContext("r1", "Left lower lobe."), RewardContext("r2", "Bilateral effusions")
        reward = LateralityReward(partial=0.25)
        assert [reward.score(text, left) for text in ("LEFT base", "right base", "left or right", "", "leftward")] == [
            1.0, 0.0, 0.25, 0.0, 0.0]
        assert reward.score("both lungs", both) == reward.score("left and right", both) == 1.0
        assert reward.score("left", both) == 0.0
        with pytest.raises(ValueError, match=r"^record r3: reference 'A nodule\.' names no side; laterality expected"):
            reward.score("left", RewardContext("r3", "A nodule."))
        with pytest.raises(ValueError, match=r"^partial: 2 is not allowed; expected a number in \[0, 1\]$"):
            LateralityReward(partial=2)
    finally:
        for name in [name for name in sys.modules if name.startswith("medzoo_example")]:
            del sys.modules[name]
