"""img2img in the presets: which models start from an image, the refusals a member reads, and the inputs built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.presets import (
    COMFYUI_SOURCE_IMAGE_NAME,
    ImageRequest,
    InvalidRequestError,
    ModelCatalog,
    ModelEntry,
    ModelsFileError,
    RequestOptions,
    Size,
    SourceImage,
    SourceImageNotPreparedError,
    build_model,
    load_catalog,
)

SOURCE = "https://cdn.discordapp.com/attachments/1/2/fox.png?ex=1&is=2&hm=3"
IMG2IMG_WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "denoise": "{{strength}}"}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
}
TXT2IMG_WORKFLOW = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}}}


def catalog_of(tmp_path: Path, *tables: str) -> ModelCatalog:
    (tmp_path / "img2img.json").write_text(json.dumps(IMG2IMG_WORKFLOW))
    (tmp_path / "txt2img.json").write_text(json.dumps(TXT2IMG_WORKFLOW))
    path = tmp_path / "models.toml"
    path.write_text("\n".join(tables))
    return load_catalog(path, "unused")


def model_table(name: str, preset: str, workflow: str | None = None) -> str:
    workflow_line = f'workflow_file = "{workflow}"' if workflow else ""
    return f'[[models]]\nname = "{name}"\nendpoint_id = "ep-{name}"\npreset = "{preset}"\n{workflow_line}\n'


@pytest.fixture
def catalog(tmp_path: Path) -> ModelCatalog:
    return catalog_of(
        tmp_path,
        model_table("xl", "sdxl"),
        model_table("sd", "sd15"),
        model_table("fluxdev", "flux"),
        model_table("turbo", "sdxl-turbo"),
        model_table("auto", "a1111"),
        model_table("comfy-txt", "comfyui", "txt2img.json"),
        model_table("comfy-img", "comfyui", "img2img.json"),
    )


def img2img(**changes: object) -> RequestOptions:
    return RequestOptions.model_validate({"prompt": "a fox", "source_image_url": SOURCE, **changes})


def test_catalog_names_the_models_that_start_from_an_image(catalog: ModelCatalog) -> None:
    """worker-sdxl, SD 1.5 and a ComfyUI workflow with {{image}} take an image; Flux, turbo, A1111 do not."""
    assert catalog.image_models == ["xl", "sd", "comfy-img"]


@pytest.mark.parametrize("model", ["fluxdev", "turbo", "auto", "comfy-txt"])
def test_a_model_without_image_input_refuses_naming_the_models_that_can(catalog: ModelCatalog, model: str) -> None:
    """Asking a text-only model to start from an image names that model and the ones that can."""
    with pytest.raises(InvalidRequestError) as caught:
        catalog.get(model).resolve(img2img())
    assert str(caught.value) == (
        f"`image` cannot be used: {model} does not start from an image. Allowed: xl, sd, comfy-img."
    )


@pytest.mark.parametrize(("model", "strength"), [("xl", 1.01), ("xl", -0.1), ("sd", 1.5), ("comfy-img", 2.0)])
def test_strength_out_of_range_is_refused_with_the_range(catalog: ModelCatalog, model: str, strength: float) -> None:
    """A strength past the worker's 0–1 is refused naming the allowed range."""
    with pytest.raises(InvalidRequestError) as caught:
        catalog.get(model).resolve(img2img(strength=strength))
    assert caught.value.option == "strength"
    assert str(caught.value).endswith("Allowed: 0–1.")


def test_strength_that_leaves_no_diffusers_step_is_refused(catalog: ModelCatalog) -> None:
    """diffusers runs int(steps * strength) steps: 0.02 at 25 steps would run none, so it is refused."""
    with pytest.raises(InvalidRequestError) as caught:
        catalog.get("xl").resolve(img2img(strength=0.02, steps=25))
    assert str(caught.value) == ("`strength` 0.02 leaves no step to run at 25 steps. Allowed: 0.04–1 at 25 steps.")


def test_strength_without_an_image_is_refused(catalog: ModelCatalog) -> None:
    """A strength with nothing to start from is refused rather than silently ignored."""
    with pytest.raises(InvalidRequestError, match="`strength` applies only when starting from an image"):
        catalog.get("xl").resolve(RequestOptions(prompt="a fox", strength=0.5))


def test_an_image_workflow_refuses_a_request_without_an_image(catalog: ModelCatalog) -> None:
    """A ComfyUI workflow built around {{image}} needs one, and says so."""
    with pytest.raises(InvalidRequestError) as caught:
        catalog.get("comfy-img").resolve(RequestOptions(prompt="a fox"))
    assert str(caught.value) == "`image` is missing. Allowed: comfy-img starts from an image: attach one."


def test_a_source_that_is_not_a_web_link_is_refused(catalog: ModelCatalog) -> None:
    """Only http(s) links are fetched: a file path or data URI is refused before anything is fetched."""
    with pytest.raises(InvalidRequestError, match="`image` is not an http"):
        catalog.get("xl").resolve(img2img(source_image_url="file:///etc/passwd"))


def test_sdxl_refuses_two_images_from_a_source(catalog: ModelCatalog) -> None:
    """worker-sdxl's refiner draws one image from a source, so two are refused rather than silently dropped."""
    with pytest.raises(InvalidRequestError) as caught:
        catalog.get("xl").resolve(img2img(count=2))
    assert str(caught.value) == "`count` 2 is more than worker-sdxl draws from an image. Allowed: 1 with an image."


def test_defaults_are_the_workers_own_strengths(catalog: ModelCatalog) -> None:
    """Unset, the strength is worker-sdxl's 0.3, SD 1.5's 0.8 and the bot's 0.75 for ComfyUI."""
    strengths = [catalog.get(name).resolve(img2img()).strength for name in ("xl", "sd", "comfy-img")]
    assert strengths == [0.3, 0.8, 0.75]


def prepared(request: ImageRequest, encoded: str) -> ImageRequest:
    assert request.source is not None
    return ImageRequest(**{**request.__dict__, "source": SourceImage(request.source.url, encoded)})


def test_sdxl_input_takes_the_url_strength_and_refiner_steps(catalog: ModelCatalog) -> None:
    """worker-sdxl gets image_url (a URL), strength, and the steps as refiner_inference_steps (its img2img path)."""
    model = catalog.get("xl")
    payload = model.build_input(prepared(model.resolve(img2img(strength=0.6, steps=30)), SOURCE))
    assert (payload["image_url"], payload["strength"], payload["refiner_inference_steps"]) == (SOURCE, 0.6, 30)


def test_sd15_input_takes_init_image_and_prompt_strength(catalog: ModelCatalog) -> None:
    """worker-stable_diffusion_v1 gets init_image (a URL it downloads) and prompt_strength."""
    model = catalog.get("sd")
    payload = model.build_input(prepared(model.resolve(img2img(strength=0.5)), SOURCE))
    assert (payload["init_image"], payload["prompt_strength"]) == (SOURCE, 0.5)


def test_comfyui_input_uploads_the_image_under_the_name_the_workflow_loads(catalog: ModelCatalog) -> None:
    """worker-comfyui gets images [{name, image}] and the workflow's LoadImage and denoise are filled in."""
    model = catalog.get("comfy-img")
    payload = model.build_input(prepared(model.resolve(img2img(strength=0.4)), "data:image/png;base64,AAAA"))
    assert payload["images"] == [{"name": COMFYUI_SOURCE_IMAGE_NAME, "image": "data:image/png;base64,AAAA"}]
    assert payload["workflow"]["10"]["inputs"]["image"] == COMFYUI_SOURCE_IMAGE_NAME
    assert payload["workflow"]["3"]["inputs"]["denoise"] == 0.4


def test_comfyui_input_cannot_be_built_before_the_image_is_fetched(catalog: ModelCatalog) -> None:
    """The bytes a ComfyUI worker needs exist only after the fetch; building without them is the caller's mistake."""
    model = catalog.get("comfy-img")
    with pytest.raises(SourceImageNotPreparedError, match="prepare_source_image"):
        model.build_input(model.resolve(img2img()))


def test_a_stored_img2img_request_keeps_its_source_link_and_strength_but_not_the_image() -> None:
    """The job record keeps the image's link and strength (a re-roll refetches it), never the encoded image."""
    request = ImageRequest(
        "a fox",
        "",
        Size(512, 512),
        30,
        7.0,
        5,
        1,
        source=SourceImage(SOURCE, "data:image/png;base64," + "A" * 1000),
        strength=0.6,
    )
    stored = json.loads(json.dumps(request.as_dict()))
    assert stored["source_image_url"] == SOURCE
    assert stored["strength"] == 0.6
    assert "AAAA" not in json.dumps(stored)
    options = ImageRequest.from_dict(stored).as_options(keep_seed=False)
    assert (options.source_image_url, options.strength, options.seed) == (SOURCE, 0.6, None)


def test_the_encoded_image_stays_out_of_the_requests_repr() -> None:
    """A repr (what logs show) names the source's link, not megabytes of base64."""
    source = SourceImage(SOURCE, "data:image/png;base64," + "A" * 1000)
    assert "AAAA" not in repr(source)


def test_a_workflow_with_strength_but_no_image_stops_start_up(tmp_path: Path) -> None:
    """{{strength}} without {{image}} has nothing to apply to: models.toml is refused, naming the placeholder."""
    (tmp_path / "w.json").write_text(json.dumps({"3": {"inputs": {"denoise": "{{strength}}"}}}))
    entry = ModelEntry(name="c", endpoint_id="ep", preset="comfyui", workflow_file="w.json")
    with pytest.raises(ModelsFileError, match=r"has \{\{strength\}\} but no \{\{image\}\}"):
        build_model(entry, tmp_path)
