"""The fused TopK encoder against torch.topk, in training and inference, and its fallback."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.kernels import KernelInputError, cpu, fused, fused_topk, kernel_status
from mechscope.dictionaries.sparse_codes import SparseCodes
from mechscope.dictionaries.variants import StepContext

HAS_TRITON = importlib.util.find_spec("triton") is not None


@pytest.fixture
def small_tiles(monkeypatch):
    """16-row, 64-latent tiles, so small test matrices span several blocks of both."""
    monkeypatch.setattr(fused, "TILE_BYTES", 1)
    monkeypatch.setattr(fused, "ROW_BLOCK", 16)
    monkeypatch.setattr(fused, "FUSED_FROM_BYTES", 0)


def kernel_setting(monkeypatch, variable: str, value: str):
    """The kernels' choice redone under an environment setting, and again after it."""
    monkeypatch.setenv(variable, value)
    fused.reset()
    yield
    monkeypatch.delenv(variable)
    fused.reset()


@pytest.fixture
def fallback(monkeypatch):
    """The plain PyTorch path, as MECHSCOPE_FUSED_TOPK=0 forces it."""
    yield from kernel_setting(monkeypatch, fused.DISABLE_VARIABLE, "0")


def problem(batch: int, d_in: int, d_sae: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x, W, b = torch.randn(batch, d_in, generator=g), torch.randn(d_in, d_sae, generator=g), torch.randn(d_sae, generator=g)
    return x.to(dtype), W.to(dtype), b.to(dtype)


def assert_same_topk(values, indices, pre, k):
    top = pre.topk(k, dim=-1)
    assert torch.equal(indices.sort(-1).values, top.indices.sort(-1).values)
    torch.testing.assert_close(values.sort(-1).values, top.values.sort(-1).values, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(values, pre.gather(-1, indices), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("batch,d_sae,k", [(1, 100, 1), (37, 1000, 32), (64, 777, 64), (5, 64, 64), (300, 130, 7)])
def test_fused_topk_selects_what_torch_topk_selects(small_tiles, batch, d_sae, k):
    x, W, b = problem(batch, 24, d_sae)
    values, indices = fused_topk(x, W, b, k)
    assert_same_topk(values, indices, torch.addmm(b, x, W), k)


def test_small_problems_take_the_dense_path_on_cpu(monkeypatch):
    """Below FUSED_FROM_BYTES: one dense product and a row top-k, not the blocked kernel."""
    calls = []
    monkeypatch.setattr(fused.cpu, "extension", lambda: type("Spy", (), {
        "fused_topk": lambda *a: calls.append(a) or a[:2],
        "row_topk": staticmethod(lambda pre, bias, k, rows=None: tuple((pre + bias).topk(k, dim=-1)))}))
    fused.reset()
    try:
        x, W, b = problem(8, 4, 16)
        assert_same_topk(*fused_topk(x, W, b, 3), torch.addmm(b, x, W), 3)
        monkeypatch.setattr(fused, "FUSED_FROM_BYTES", 8 * 16 * 4)
        fused_topk(x, W, b, 3)
        assert len(calls) == 1
    finally:
        monkeypatch.undo()
        fused.reset()


def test_the_mask_restricts_the_choice_to_dead_latents(small_tiles):
    x, W, b = problem(50, 16, 500, seed=1)
    mask = torch.rand(500, generator=torch.Generator().manual_seed(2)) < 0.3
    values, indices = fused_topk(x, W, b, 20, mask=mask)
    assert bool(mask[indices].all())
    assert_same_topk(values, indices, torch.addmm(b, x, W).masked_fill(~mask, float("-inf")), 20)


def test_bf16_inputs_select_the_top_values_of_the_bf16_product(small_tiles):
    x, W, b = problem(40, 32, 300, seed=3, dtype=torch.bfloat16)
    values, indices = fused_topk(x, W, b, 16)
    assert values.dtype == torch.bfloat16
    exact = torch.addmm(b.float(), x.float(), W.float())
    torch.testing.assert_close(values.float().sort(-1).values, exact.topk(16).values.sort(-1).values, rtol=0.02, atol=0.1)


def test_ties_give_the_same_values_multiset(small_tiles):
    b = torch.tensor([1.0, 0.5] * 100)  # x = 0: every row's pre-activations are b, a hundred-way tie
    values, indices = fused_topk(torch.zeros(3, 8), torch.randn(8, 200), b, 130)
    assert torch.equal(values.sort(-1).values, torch.tensor([0.5] * 30 + [1.0] * 100).expand(3, -1))
    assert torch.equal(b[indices], values) and all(len(set(row.tolist())) == 130 for row in indices)


def test_bad_shapes_dtypes_and_k_name_what_was_expected():
    x, W, b = problem(4, 8, 10)
    with pytest.raises(KernelInputError, match=r"k must be in 1..3 \(the latents the mask allows\), got 4"):
        fused_topk(x, W, b, 4, mask=torch.arange(10) < 3)
    with pytest.raises(KernelInputError, match="one dtype"):
        fused_topk(x, W.double(), b, 2)
    with pytest.raises(KernelInputError, match=r"W_enc \[d_in, d_sae\]"):
        fused_topk(x, W.T, b, 2)


def test_the_extension_is_built_and_used_here():
    assert kernel_status()["cpu"] == "c++ extension"
    assert Path(kernel_status()["cpu_library"]).exists()


def trained(arch: str, seed: int = 0) -> Dictionary:
    """One TopK training step (with AuxK on a third of the latents marked dead) from a fixed start."""
    torch.manual_seed(seed)
    d = Dictionary(DictionaryConfig(16, 300, arch, k=8, aux_k=12))
    d.reset_parameters(seed=seed)
    x = torch.randn(64, 16)
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-2)
    dead = torch.arange(300) % 3 == 0
    for _ in range(3):
        terms = d.variant.loss(d, x, StepContext(variance=1.0, dead_mask=dead))
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    return d


def test_a_training_step_with_the_fused_path_matches_the_fallback(small_tiles, monkeypatch):
    fused_params = [p.detach().clone() for p in trained("topk").parameters()]
    monkeypatch.setenv(fused.DISABLE_VARIABLE, "0")
    fused.reset()
    with pytest.warns(UserWarning, match="MECHSCOPE_FUSED_TOPK=0"):
        plain = trained("topk")
    fused.reset()
    for a, b in zip(fused_params, plain.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_topk_inference_encode_matches_the_dense_path(small_tiles, monkeypatch):
    d = trained("topk", seed=1)
    x = torch.randn(2, 9, 16, requires_grad=True)
    dense = d.variant.activate(d, x, d.pre_activations(x))  # the plain topk over [..., d_sae]
    with torch.no_grad():
        calls = []
        monkeypatch.setattr(fused, "_check", lambda *a: calls.append(a))
        torch.testing.assert_close(d.encode(x), dense)
        assert len(calls) == 1  # the fused path ran
    d.encode(x).sum().backward()  # with autograd recording, the dense path: gradients reach x
    torch.testing.assert_close(x.grad, torch.autograd.grad(dense.sum(), x)[0])


def test_forced_fallback_gives_the_same_codes_and_warns_once(fallback):
    x, W, b = problem(30, 12, 200, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = fused_topk(x, W, b, 9)
        second = fused_topk(x, W, b, 9)
    assert [str(w.message).count("MECHSCOPE_FUSED_TOPK=0") for w in caught] == [1]
    assert torch.equal(first[0], second[0])
    assert_same_topk(*first, torch.addmm(b, x, W), 9)
    assert kernel_status()["cpu"] == "fallback: MECHSCOPE_FUSED_TOPK=0"


def test_a_failed_build_falls_back_with_the_reason(monkeypatch):
    def broken():
        raise RuntimeError("Error building extension 'mechscope_fused_topk'\ng++: not found")

    x, W, b = problem(3, 4, 10)
    monkeypatch.setattr(cpu, "extension", broken)
    fused.reset()
    try:
        with pytest.warns(UserWarning, match="did not build or load.*Error building extension"):
            values, indices = fused_topk(x, W, b, 2)
        assert_same_topk(values, indices, torch.addmm(b, x, W), 2)
        assert kernel_status()["cpu"].startswith("fallback: the C++ extension did not build")
    finally:
        monkeypatch.undo()
        fused.reset()


TRITON_CHECK = """
import torch
from mechscope.dictionaries.kernels import triton_topk
for batch, d_in, d_sae, k in [(1, 16, 64, 1), (70, 32, 130, 64), (33, 48, 1000, 32)]:
    g = torch.Generator().manual_seed(d_sae)
    x, W, b = torch.randn(batch, d_in, generator=g), torch.randn(d_in, d_sae, generator=g), torch.randn(d_sae, generator=g)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    values, indices = triton_topk.topk(x.to(device), W.to(device), b.to(device), k)
    top = torch.addmm(b, x, W).topk(k)
    assert torch.equal(indices.cpu().sort(-1).values, top.indices.sort(-1).values), (batch, d_sae, k)
    torch.testing.assert_close(values.cpu().sort(-1).values, top.values.sort(-1).values, rtol=1e-4, atol=1e-4)
print("ok")
"""


@pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs CUDA and triton")
def test_the_triton_kernel_selects_what_torch_topk_selects_on_gpu():
    x, W, b = (t.cuda() for t in problem(100, 64, 3000))
    values, indices = fused_topk(x, W, b, 32)
    assert_same_topk(values.cpu(), indices.cpu(), torch.addmm(b, x, W).cpu(), 32)


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (its interpreter runs the kernel on CPU tensors)")
def test_the_triton_kernel_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]


@pytest.mark.parametrize("rows,n,k", [(3, 1, 1), (7, 100, 5), (16, 64, 64), (9, 1000, 32), (5, 6144, 48), (4, 33, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_row_topk_selects_what_torch_topk_selects(rows, n, k, dtype):
    pre = torch.randn(rows, n, generator=torch.Generator().manual_seed(n)).to(dtype)
    values, indices = cpu.extension().row_topk(pre, None, k)
    assert values.dtype == torch.float32
    assert torch.equal(values.sort(-1).values, pre.topk(k, dim=-1).values.float().sort(-1).values)  # bf16 ties
    assert torch.equal(pre.gather(-1, indices).float(), values) and all(len(set(row.tolist())) == k for row in indices)


def test_row_topk_adds_the_bias_in_float32():
    pre = torch.randn(6, 300, generator=torch.Generator().manual_seed(1)).bfloat16()
    bias = torch.randn(300, generator=torch.Generator().manual_seed(2))
    values, indices = cpu.extension().row_topk(pre, bias, 9)
    assert_same_topk(values, indices, pre.float() + bias, 9)


def test_row_topk_of_chosen_rows_reads_only_those():
    pre = torch.randn(10, 200, generator=torch.Generator().manual_seed(4))
    rows = torch.tensor([7, 2, 2])
    values, indices = cpu.extension().row_topk(pre, None, 5, rows)
    assert_same_topk(values, indices, pre[rows], 5)
    with pytest.raises(RuntimeError, match="row out of range"):
        cpu.extension().row_topk(pre, None, 5, torch.tensor([10]))


def test_row_topk_orders_nan_first_and_keeps_infinities_and_ties():
    pre = torch.tensor([[1.0, float("nan"), 3.0, float("-inf")] * 20,
                        [float("-inf")] * 80,
                        [2.0] * 80])
    values, indices = cpu.extension().row_topk(pre, None, 21)
    assert bool(values[0].isnan().sum() == 20) and bool((values[0][~values[0].isnan()] == 3.0).all())
    assert bool((values[1] == float("-inf")).all()) and bool((values[2] == 2.0).all())
    assert all(len(set(row.tolist())) == 21 for row in indices)


@pytest.fixture
def screening(monkeypatch):
    """The bf16 screen on, whatever this CPU's instructions."""
    yield from kernel_setting(monkeypatch, fused.SCREEN_VARIABLE, "1")


@pytest.mark.parametrize("batch,d_in,d_sae,k", [(64, 24, 1000, 8), (33, 100, 300, 8), (5, 7, 200, 1), (200, 64, 4000, 32)])
def test_the_bf16_screen_selects_what_float32_selects(screening, batch, d_in, d_sae, k):
    x, W, b = problem(batch, d_in, d_sae, seed=d_sae)
    assert kernel_status()["cpu_bf16_screen"]
    values, indices = fused_topk(x, W, b, k)
    assert values.dtype == torch.float32
    assert_same_topk(values, indices, torch.addmm(b, x, W), k)


def row_topk_spy():
    """(the dtypes row_topk was called on, an extension stand-in that records them)."""
    calls, real = [], cpu.extension()
    spy = type("Spy", (), {"row_topk": lambda self, pre, bias, k, rows=None: calls.append(pre.dtype) or
                           real.row_topk(pre, bias, k, rows), "pair_dots": staticmethod(real.pair_dots)})()
    return calls, spy


def test_the_screen_recomputes_rows_it_cannot_certify(screening, monkeypatch):
    """Latents closer together than bf16 can tell apart: the rounding bound flags those rows and float32 decides."""
    x, W, b = problem(40, 16, 400, seed=5)
    W, b = W[:, :1] + 1e-4 * W, 1e-4 * b  # every latent nearly the same: bf16 ties them, float32 does not
    calls, spy = row_topk_spy()
    values, indices = fused.screened_topk(spy, x, W, b, 10)
    assert calls == [torch.bfloat16, torch.bfloat16, torch.float32]  # 15 candidates, 60, then float32
    assert_same_topk(values, indices, torch.addmm(b, x, W), 10)


def test_the_screen_certifies_well_separated_rows_without_float32(screening):
    x, W, b = problem(64, 32, 512, seed=7)
    b = torch.randperm(512, generator=torch.Generator().manual_seed(8)).float()  # latents 1 apart, x @ W ~ 0.1
    calls, spy = row_topk_spy()
    values, indices = fused.screened_topk(spy, 0.02 * x, W, b, 8)
    assert calls == [torch.bfloat16]
    assert_same_topk(values, indices, torch.addmm(b, 0.02 * x, W), 8)


def test_csr_dense_equals_the_sparse_product_and_checks_its_input():
    g = torch.Generator().manual_seed(9)
    codes = SparseCodes.from_topk(torch.rand(12, 50, generator=g).argsort(1)[:, :4], 50)  # distinct per row
    values, dense, rows = torch.randn(48, generator=g), torch.randn(50, 7, generator=g), torch.randn(12, 7, generator=g)
    torch.testing.assert_close(codes.times(values, dense), codes.dense(values) @ dense)
    torch.testing.assert_close(codes.transposed_times(values, rows), codes.dense(values).T @ rows)
    with pytest.raises(RuntimeError, match="column out of range"):
        cpu.extension().csr_dense(codes.crow, codes.cols + 50, values, dense)


def test_pair_dots_equals_the_sampled_product_and_checks_its_input():
    g = torch.Generator().manual_seed(10)
    A, B = torch.randn(9, 37, generator=g), torch.randn(40, 37, generator=g)
    rows, cols = torch.randint(0, 9, (200,), generator=g), torch.randint(0, 40, (200,), generator=g)
    torch.testing.assert_close(cpu.extension().pair_dots(A, B, rows, cols), (A[rows] * B[cols]).sum(1))
    strided = torch.randn(37, 40, generator=g)  # a column-major B is copied, not misread
    torch.testing.assert_close(cpu.extension().pair_dots(A, strided.T, rows, cols), (A[rows] * strided.T[cols]).sum(1))
    with pytest.raises(RuntimeError, match="pair out of range"):
        cpu.extension().pair_dots(A, B, rows, cols + 40)
