"""Control vector files: GGUF round-trips, llama.cpp's layer rules, and repeng reading our files (when installed)."""

from __future__ import annotations

import importlib.util

import gguf
import numpy as np
import pytest
import torch

from mechscope.models.gguf import smollm2_gguf
from mechscope.steering.exchange import (ControlVectorFile, VectorFileError, from_repeng, read_control_vector,
                                         to_repeng, write_control_vector)


def _directions(d_model: int = 16, layers=(1, 3, 5)) -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {layer: torch.randn(d_model, generator=g) for layer in layers}


def test_a_vector_written_as_gguf_reads_back_identically(tmp_path):
    directions = _directions()
    metadata = {"method": "diff_in_means", "norms": {"1": 2.5}}
    path = write_control_vector(tmp_path / "refusal.gguf", directions, "llama", metadata)
    loaded = read_control_vector(path)
    assert list(loaded.directions) == [1, 3, 5]
    assert all(torch.equal(loaded.directions[k], v) for k, v in directions.items())
    assert (loaded.model_hint, loaded.metadata) == ("llama", metadata)
    assert loaded.hook_names()[3] == "blocks.3.hook_resid_post"


def test_the_file_has_the_fields_llama_cpp_reads(tmp_path):
    path = write_control_vector(tmp_path / "v.gguf", _directions(8, (2, 4)), "llama")
    reader = gguf.GGUFReader(path)
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.layer_count").contents() == 2
    assert [(t.name, t.tensor_type) for t in reader.tensors] == [("direction.2", gguf.GGMLQuantizationType.F32),
                                                                 ("direction.4", gguf.GGMLQuantizationType.F32)]


def test_layer_zero_and_ragged_directions_are_refused(tmp_path):
    with pytest.raises(VectorFileError, match="direction.0"):
        write_control_vector(tmp_path / "v.gguf", {0: torch.ones(4)}, "llama")
    with pytest.raises(VectorFileError, match="one d_model"):
        write_control_vector(tmp_path / "v.gguf", {1: torch.ones(4), 2: torch.ones(5)}, "llama")
    assert not (tmp_path / "v.gguf").exists()


def test_a_model_gguf_or_another_file_is_not_read_as_a_control_vector(tmp_path):
    with pytest.raises(VectorFileError, match="expected general.architecture 'controlvector', got 'llama'"):
        read_control_vector(smollm2_gguf())
    (tmp_path / "notes.gguf").write_text("not a gguf file")
    with pytest.raises(VectorFileError, match="not a readable GGUF"):
        read_control_vector(tmp_path / "notes.gguf")


class _RepengLike:
    """What repeng's ControlVector holds (model_type and numpy directions by layer)."""

    def __init__(self, model_type, directions):
        self.model_type, self.directions = model_type, directions


def test_repeng_directions_keep_their_layer_numbers():
    vector = from_repeng(_RepengLike("llama", {7: np.arange(3, dtype=np.float32), 2: np.ones(3)}))
    assert list(vector.directions) == [2, 7]
    assert torch.equal(vector.directions[7], torch.tensor([0.0, 1.0, 2.0]))


@pytest.mark.skipif(importlib.util.find_spec("repeng") is None, reason="repeng is not installed")
def test_repeng_reads_our_file_and_we_read_its_file(tmp_path):
    from repeng import ControlVector

    ours = ControlVectorFile(_directions(), "llama")
    write_control_vector(tmp_path / "ours.gguf", ours.directions, ours.model_hint)
    theirs = ControlVector.import_gguf(str(tmp_path / "ours.gguf"))
    assert theirs.model_type == "llama"
    assert all(np.array_equal(theirs.directions[k], v.numpy()) for k, v in ours.directions.items())
    to_repeng(ours).export_gguf(str(tmp_path / "theirs.gguf"))
    back = read_control_vector(tmp_path / "theirs.gguf")
    assert all(torch.equal(back.directions[k], v) for k, v in ours.directions.items())
