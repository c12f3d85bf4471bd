"""The registry of public dictionary releases: per release the model it reads, its Hugging Face repository, how an
id's path names one dictionary (layer, width, L0), the files each holds, their format and the hook they read.

Ids are `RELEASE/PATH` as the release lays out its repository (SAELens's release names and sae ids where SAELens
lists the release): `gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82`, `gpt2-small-res-jb/
blocks.8.hook_resid_pre`, `gemma-scope-2-1b-pt/resid_post_all/layer_12_width_16k_l0_medium`; a transcoder set
is named by its release alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mechscope.errors import MechscopeError


class ReleaseError(MechscopeError):
    """An id that names no registered release or does not follow its release's layout."""


@dataclass(frozen=True)
class Release:
    """One public release: `path` (a regex with named groups layer, width, ...) matches the part of an id after
    the release name; `folder` (formatted with those groups and `path`) is where its files lie in `repo`."""

    name: str
    model: str  # HF id of the model it was trained on
    repo: str  # HF repository
    format: str  # converter in dictionaries.formats ("circuit_tracer": a transcoder set, read by load_transcoders)
    path: str  # regex over the id's path; "" for a release loaded whole
    folder: str  # path in the repo of one dictionary's folder (or file)
    files: tuple[str, ...]  # files in that folder ("" : the folder is the file)
    hook: str  # mechscope hook, formatted with the path's groups; "" where each folder's config names it
    widths: tuple[str, ...]
    kind: str = "sae"  # sae | transcoder | transcoder_set | clt | crosscoder
    example: str = ""  # an id's path in this release (a layout example)
    notes: str = ""
    sites: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (site group value, kind, files) overriding the two

    def layout(self, groups: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        """(kind, files) of the dictionary an id's groups name: a site of `sites`, else the release's own."""
        for site, kind, files in self.sites:
            if groups.get("site") == site:
                return kind, files
        return self.kind, self.files

    def match(self, path: str) -> dict[str, str]:
        """The path's named groups; ReleaseError when it does not follow the layout."""
        found = re.fullmatch(self.path, path)
        if found is None:
            raise ReleaseError(f"{self.name}: {path!r} does not follow this release's layout {self.path!r} "
                               f"(e.g. {self.name}/{self.example})")
        return found.groupdict()


def width_count(width: str) -> int:
    """A release's width name as a latent count: "16k" -> 16384, "131k" -> 131072, "1m" -> 1048576 (the power of
    two nearest to the rounded figure, as the releases name them), "24576" -> 24576."""
    number, unit = re.fullmatch(r"(\d+)([km]?)", width).groups()
    if not unit:
        return int(number)
    return 2 ** round(math.log2(int(number) * {"k": 1000, "m": 1000 ** 2}[unit]))


_GEMMA_SCOPE = r"layer_(?P<layer>\d+)/width_(?P<width>\d+[km])/average_l0_(?P<l0>\d+)"
_GEMMA_SCOPE_2 = (r"(?P<site>[a-z_]+)/(?:layer_(?P<layer>\d+(?:_\d+)*)_)?width_(?P<width>\d+[km])_l0_"
                  r"(?P<l0>[a-z]+|\d+)(?P<affine>_affine)?")
_LLAMA_SCOPE = ("lm_saes's layout, trained on dataset-normalised activations; read in lm_saes's own inference form "
                "(see dictionaries.formats.llama_scope)")


def _gemma_scope(site: str, hook: str, widths: tuple[str, ...], size: str = "2b") -> Release:
    return Release(f"gemma-scope-{size}-pt-{site}", f"google/gemma-2-{size}", f"google/gemma-scope-{size}-pt-{site}",
                   "gemmascope", _GEMMA_SCOPE, "{path}", ("params.npz",), hook, widths,
                   example="layer_12/width_16k/average_l0_82" if site == "res" and size == "2b" else
                   "layer_{L}/width_16k/average_l0_{N}")


def _gemma_scope_2(size: str, variant: str) -> Release:
    return Release(f"gemma-scope-2-{size}-{variant}", f"google/gemma-3-{size}-{variant}",
                   f"google/gemma-scope-2-{size}-{variant}", "gemmascope2", _GEMMA_SCOPE_2, "{path}",
                   ("config.json", "params.safetensors"), "", ("16k", "65k", "262k", "1m"),
                   example="resid_post_all/layer_12_width_16k_l0_medium",
                   sites=(("clt", "clt", ("params_layer_0.safetensors",)),
                          ("crosscoder", "crosscoder", ("params_layer_0.safetensors",))),
                   notes="hooks from each folder's config.json (hf_hook_point_in/out): model.layers.L.output -> "
                         "blocks.L.hook_resid_post, post_feedforward_layernorm -> hook_mlp_out, "
                         "post_attention_layernorm -> hook_attn_out, self_attn.o_proj.input -> attn.hook_z; "
                         "transcoders with _affine read with their skip matrix; clt/width_W_l0_L[_affine] as a "
                         "cross-layer transcoder (load_transcoders); crosscoder/layer_A_B_..._width_W_l0_L as one "
                         "crosscoder over those layers' residual streams")


def _llama_scope(site: str, hook: str, expansion: int) -> Release:
    return Release(f"llama-scope-lx{site.lower()}-{expansion}x", "meta-llama/Llama-3.1-8B",
                   f"fnlp/Llama3_1-8B-Base-LX{site}-{expansion}x", "llama_scope", r"L(?P<layer>\d+)" + site,
                   f"Llama3_1-8B-Base-L{{layer}}{site}-{expansion}x",
                   ("hyperparams.json", "checkpoints/final.safetensors"), hook, (f"{4 * expansion}k",),
                   example=f"L15{site}", notes=_LLAMA_SCOPE)


def _sparsify(name: str, model: str, width: str) -> Release:
    return Release(name, model, f"EleutherAI/{name}", "sparsify", r"layers\.(?P<layer>\d+)", "layers.{layer}",
                   ("cfg.json", "sae.safetensors"), "blocks.{layer}.hook_resid_post", (width,), example="layers.16",
                   notes="EleutherAI sparsify TopK SAEs on the residual stream after each layer")


RELEASES: tuple[Release, ...] = (
    _gemma_scope("res", "blocks.{layer}.hook_resid_post", ("16k", "32k", "65k", "131k", "262k", "524k", "1m")),
    _gemma_scope("mlp", "blocks.{layer}.hook_mlp_out", ("16k", "65k")),
    _gemma_scope("att", "blocks.{layer}.attn.hook_z", ("16k", "65k")),
    _gemma_scope("res", "blocks.{layer}.hook_resid_post", ("16k", "131k"), size="9b"),
    Release("gemma-scope-2b-pt-transcoders", "google/gemma-2-2b", "google/gemma-scope-2b-pt-transcoders",
            "gemmascope", _GEMMA_SCOPE, "{path}", ("params.npz",), "blocks.{layer}.ln2.hook_out", ("16k",),
            kind="transcoder", example="layer_{L}/width_16k/average_l0_{N}",
            notes="reads what the MLP reads, the pre-MLP RMSNorm's output with its (1 + w) weight (circuit-tracer's "
                  "mlp.hook_in, mechscope's ln2.hook_out), and writes hook_mlp_out"),
    *(_gemma_scope_2(size, variant) for size in ("270m", "1b", "4b", "12b", "27b") for variant in ("pt", "it")),
    _llama_scope("R", "blocks.{layer}.hook_resid_post", 8),
    _llama_scope("R", "blocks.{layer}.hook_resid_post", 32),
    _llama_scope("A", "blocks.{layer}.hook_attn_out", 8),
    _llama_scope("M", "blocks.{layer}.hook_mlp_out", 8),
    _sparsify("sae-llama-3-8b-32x", "meta-llama/Meta-Llama-3-8B", "131k"),
    _sparsify("sae-llama-3-8b-32x-v2", "meta-llama/Meta-Llama-3-8B", "131k"),
    Release("gpt2-small-resid-post-v5-32k", "openai-community/gpt2", "jbloom/GPT2-Small-OAI-v5-32k-resid-post-SAEs",
            "openai", r"blocks\.(?P<layer>\d+)\.hook_resid_post", "v5_32k_layer_{layer}.pt", ("",),
            "blocks.{layer}.hook_resid_post", ("32k",), example="blocks.8.hook_resid_post",
            notes="OpenAI's GPT-2 small TopK SAEs (Gao et al. 2024), as SAELens rehosts them"),
    Release("gpt2-small-res-jb", "openai-community/gpt2", "jbloom/GPT2-Small-SAEs-Reformatted", "saelens",
            r"blocks\.(?P<layer>\d+)\.hook_resid_pre", "{path}", ("cfg.json", "sae_weights.safetensors"),
            "blocks.{layer}.hook_resid_pre", ("24576",), example="blocks.8.hook_resid_pre",
            notes="SAELens's first pretrained release (Bloom 2024); any SAELens-layout repository fits this shape"),
    Release("circuit-tracer-gemma-2-2b", "google/gemma-2-2b", "mntss/gemma-scope-transcoders", "circuit_tracer", "",
            "", ("config.yaml",), "", ("16k",), kind="transcoder_set",
            notes="circuit-tracer's `gemma` transcoder set; load with mechscope.load_transcoders"),
    Release("circuit-tracer-llama-3.2-1b", "meta-llama/Llama-3.2-1B", "mntss/transcoder-Llama-3.2-1B",
            "circuit_tracer", "", "", ("config.yaml",), "", ("131k",), kind="transcoder_set",
            notes="circuit-tracer's `llama` transcoder set; load with mechscope.load_transcoders"),
)
BY_NAME = {release.name: release for release in RELEASES}


def find_release(release_id: str) -> tuple[Release, str]:
    """(release, the id's path after the release name) for `release_id`; ReleaseError when none is registered."""
    name, _, path = release_id.partition("/")
    if name not in BY_NAME:
        raise ReleaseError(f"no public release named {name!r}; `mechscope dictionaries list` shows the "
                           f"{len(BY_NAME)} registered (e.g. {', '.join(list(BY_NAME)[:3])})")
    return BY_NAME[name], path


def is_release_id(text: str) -> bool:
    """Whether `text` starts with a registered release name."""
    return text.partition("/")[0] in BY_NAME
