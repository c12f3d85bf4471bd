"""Each variant's math against hand-computed values, and the sparse kernels against plain autograd."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.variants import StepContext
from mechscope.dictionaries.variants.jumprelu import jumprelu, step

X = torch.tensor([[2.0, 3.0]])  # pre-activations below: [2, 3, 4]


def toy(arch: str, **kw) -> Dictionary:
    """d_in 2, d_sae 3: W_enc columns e1, e2, e1+e2; b_enc [0, 0, -1]; decoder rows e1, e2, (0.6, 0.8)."""
    d = Dictionary(DictionaryConfig(2, 3, arch, k=kw.pop("k", 1), relu_form=kw.pop("relu_form", "classic"), **kw))
    with torch.no_grad():
        d.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
        d.b_enc.copy_(torch.tensor([0.0, 0.0, -1.0]))
        d.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
        d.b_dec.zero_()
    return d


def test_topk_keeps_the_k_largest_and_decodes_them():
    assert torch.equal(toy("topk").encode(X), torch.tensor([[0.0, 0.0, 4.0]]))
    d = toy("topk", k=2)
    assert torch.equal(d.encode(X), torch.tensor([[0.0, 3.0, 4.0]]))
    torch.testing.assert_close(d(X), torch.tensor([[2.4, 6.2]]))


def test_topk_loss_and_auxk_on_dead_latents():
    d = toy("topk", aux_k=1)
    dead = torch.tensor([True, False, False])
    terms = d.variant.loss(d, X, StepContext(variance=1.0, dead_mask=dead))
    # x_hat = 4 * (0.6, 0.8) = (2.4, 3.2): error (0.4, 0.2) -> 0.2
    assert terms["recon"].item() == pytest.approx(0.2)
    # residual e = (-0.4, -0.2); the dead latent 0 (pre 2) predicts 2 * e1: ||e - e_hat||^2 = 5.8
    assert terms["aux"].item() == pytest.approx(5.8)
    assert terms["total"].item() == pytest.approx(0.2 + 5.8 / 32)


def test_relu_anthropic_l1_is_weighted_by_decoder_norms():
    d = toy("relu", relu_form="anthropic")
    with torch.no_grad():
        d.W_dec[2] *= 2.0  # row norm 2
    assert d.cfg.apply_b_dec_to_input is False
    codes = d.encode(X)
    assert torch.equal(codes, torch.tensor([[2.0, 3.0, 4.0]]))
    terms = d.variant.loss(d, X, StepContext(variance=1.0))
    assert terms["sparsity"].item() == pytest.approx(5.0 * (2 + 3 + 4 * 2))
    classic = toy("relu", relu_form="classic")
    assert classic.variant.loss(classic, X, StepContext(variance=1.0))["sparsity"].item() == pytest.approx(5.0 * 9)


def test_jumprelu_zeroes_below_threshold_and_counts_l0():
    d = toy("jumprelu")
    with torch.no_grad():
        d.log_threshold.fill_(math.log(2.5))
    d.variant.after_step(d, {})
    assert torch.equal(d.encode(X), torch.tensor([[0.0, 3.0, 4.0]]))
    terms = d.variant.loss(d, X, StepContext(variance=1.0))
    assert terms["l0"].item() == 2 and terms["sparsity"].item() == pytest.approx(d.cfg.l0_coefficient * 2)


def test_jumprelu_rectangle_straight_through_gradients():
    z = torch.tensor([[3.0, 1.0]])
    theta = torch.tensor([2.9, 2.9], requires_grad=True)
    step(z, theta, 0.5).sum().backward()  # d/dtheta H(z - theta) = -(1/eps) K((z - theta)/eps)
    assert theta.grad.tolist() == pytest.approx([-2.0, 0.0])
    theta.grad = None
    z2 = z.clone().requires_grad_()
    jumprelu(z2, theta, 0.5).sum().backward()  # d/dtheta = -(theta/eps) K(.), d/dz = H(z - theta)
    assert theta.grad.tolist() == pytest.approx([-2.9 / 0.5, 0.0])
    assert z2.grad.tolist() == [[1.0, 0.0]]


def test_gated_gate_and_magnitude_paths():
    d = toy("gated")
    with torch.no_grad():
        d.r_mag.copy_(torch.tensor([0.0, math.log(2.0), 0.0]))
        d.b_mag.copy_(torch.tensor([0.0, 0.0, -5.0]))
    # pi_gate = (2, 3, 4) all open; pi_mag = (2, 6, -1) -> f = (2, 6, 0)
    torch.testing.assert_close(d.encode(X), torch.tensor([[2.0, 6.0, 0.0]]))
    terms = d.variant.loss(d, X, StepContext(variance=1.0))
    assert terms["sparsity"].item() == pytest.approx(5.0 * 9)  # L1 of ReLU(pi_gate)
    # frozen-decoder aux: ReLU(pi_gate) decodes to (4.4, 6.2): error (2.4, 3.2) -> 16
    assert terms["aux"].item() == pytest.approx(16.0)


def test_batchtopk_shares_k_times_batch_across_tokens_and_thresholds_at_inference():
    d = toy("batchtopk")
    x = torch.cat([X, torch.zeros(1, 2)])  # token 2 has pre (0, 0, -1): nothing to select
    codes, _ = d.variant.select(d, d.pre_activations(x))
    assert codes.rows.tolist() == [0, 0] and sorted(codes.cols.tolist()) == [1, 2]
    with torch.no_grad():
        d.threshold.fill_(3.5)
    assert torch.equal(d.encode(X), torch.tensor([[0.0, 0.0, 4.0]]))


def test_matryoshka_sums_the_errors_of_each_prefix():
    d = toy("matryoshka", k=2, matryoshka_widths=[2, 3])
    terms = d.variant.loss(d, X, StepContext(variance=1.0))
    # selected: latent 2 (4) and latent 1 (3); prefix {0,1} decodes (0, 3): error 4 + 0 = 4;
    # the full dictionary decodes (2.4, 6.2): error 0.16 + 10.24 = 10.4
    assert terms["recon"].item() == pytest.approx(4.0 + 10.4)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka"])
def test_sparse_kernels_match_plain_autograd(arch):
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    grads = []
    for sparse in (True, False):
        d = Dictionary(DictionaryConfig(16, 96, arch, k=4))
        d.reset_parameters(seed=1)
        d.sparse_kernels = sparse
        dead = torch.arange(96) % 3 == 0
        d.variant.loss(d, x, StepContext(variance=16.0, dead_mask=dead))["total"].backward()
        grads.append({n: p.grad for n, p in d.named_parameters()})
    assert d.W_enc.shape == (16, 96) and d.W_enc.T.is_contiguous()  # SAELens's shape, latent-major memory
    assert grads[0]["W_enc"].stride() == d.W_enc.stride()  # the sparse gradient arrives in that layout, uncopied
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def test_unit_norm_constraint_removes_the_radial_gradient():
    d = toy("topk")
    d.W_dec.grad = torch.ones_like(d.W_dec)
    d.remove_parallel_gradient()
    assert torch.allclose((d.W_dec.grad * d.W_dec).sum(1), torch.zeros(3), atol=1e-6)


def test_the_radial_gradient_is_removed_from_rows_of_any_norm_and_nothing_else_changes():
    d = Dictionary(DictionaryConfig(5, 7, "topk", k=2))
    with torch.no_grad():
        d.W_dec.mul_(torch.arange(1.0, 8.0)[:, None])  # rows of norm 1..7
    grad = torch.randn(7, 5, generator=torch.Generator().manual_seed(3))
    d.W_dec.grad = grad.clone()
    d.remove_parallel_gradient()
    unit = d.W_dec / d.W_dec.norm(dim=1, keepdim=True)
    torch.testing.assert_close(d.W_dec.grad, grad - (grad * unit).sum(1, keepdim=True) * unit)


def test_folding_the_activation_scale_keeps_codes_and_rescales_reconstructions():
    torch.manual_seed(0)
    d = Dictionary(DictionaryConfig(8, 32, "topk", k=4))
    with torch.no_grad():
        d.b_dec.normal_()
    x = torch.randn(10, 8)
    codes, recon = d.encode(3.0 * x), d(3.0 * x)
    d.fold_activation_scale(3.0)
    torch.testing.assert_close(d.encode(x), codes)
    torch.testing.assert_close(d(x), recon / 3.0)


def test_wrong_input_width_is_named():
    with pytest.raises(Exception, match="d_in=2"):
        toy("topk").encode(torch.zeros(1, 5))
