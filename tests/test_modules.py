import math

import torch

from safin.models.modules import SAFIN, SelfAttention, UniformAttention


def _in(x):
    """Instance norm by hand: (x - mean) / sqrt(unbiased var + 1e-5), per channel."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    mean = flat.sum(1) / n
    var = ((flat - mean[:, None]) ** 2).sum(1) / (n - 1)
    return (x - mean[:, None, None]) / torch.sqrt(var + 1e-5)[:, None, None]


def _identity_(conv):
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.weight.shape[0]).view_as(conv.weight))
        conv.bias.zero_()


def test_self_attention_on_a_hand_built_case():
    """Q, K, V = identity: O[:, p] = Σ_j softmax_j(IN(c)[:, p] · IN(s)[:, j]) · s[:, j] (raw style)."""
    torch.manual_seed(0)
    sa = SelfAttention(2)
    for conv in (sa.query_conv, sa.key_conv, sa.value_conv):
        _identity_(conv)
    c, s = torch.randn(1, 2, 2, 2), torch.randn(1, 2, 3, 1)
    out = sa(c, s)[0]
    cn, sn = _in(c[0]).reshape(2, -1), _in(s[0]).reshape(2, -1)
    sv = s[0].reshape(2, -1)
    for p in range(4):
        logits = [float(cn[:, p] @ sn[:, j]) for j in range(3)]
        z = sum(math.exp(v) for v in logits)
        expected = sum(math.exp(logits[j]) / z * sv[:, j] for j in range(3))
        assert torch.allclose(out.reshape(2, -1)[:, p], expected, atol=1e-5)


def test_safin_reproduces_the_paper_equation_with_chosen_attention():
    """γ_ind = 1, β_ind = 0, attention output S chosen: out = ReLU(W_γ S + b_γ) ⊙ IN(c) + ReLU(W_β S + b_β)."""
    torch.manual_seed(0)
    m = SAFIN(3)
    assert torch.equal(m.shared_weight, torch.ones(3)) and torch.equal(m.shared_bias, torch.zeros(3))
    chosen = torch.randn(1, 3, 2, 4)

    class Chosen(torch.nn.Module):
        def forward(self, content, style):
            return chosen

    m.attention = Chosen()
    c = torch.randn(1, 3, 2, 4) * 2 + 5
    out = m(c, torch.randn(1, 3, 5, 5))
    wg, bg = m.gamma_conv.weight.view(3, 3), m.gamma_conv.bias
    wb, bb = m.beta_conv.weight.view(3, 3), m.beta_conv.bias
    s = chosen[0].reshape(3, -1)
    gamma = torch.relu(wg @ s + bg[:, None]).reshape(3, 2, 4)
    beta = torch.relu(wb @ s + bb[:, None]).reshape(3, 2, 4)
    assert torch.allclose(out[0], gamma * _in(c[0]) + beta, atol=1e-5)
    # γ_ind / β_ind act before the style-dependent terms (Eq. 1)
    with torch.no_grad():
        m.shared_weight.fill_(2.0)
        m.shared_bias.fill_(0.5)
    assert torch.allclose(m(c, torch.randn(1, 3, 5, 5))[0], gamma * (2 * _in(c[0]) + 0.5) + beta, atol=1e-5)


def test_safin_parameter_counts():
    assert sum(p.numel() for p in SAFIN(512).parameters()) == 1_314_304
    assert sum(p.numel() for p in SAFIN(256).parameters()) == 329_472
    assert sum(p.numel() for p in SAFIN(256, attention="uniform").parameters()) == 3 * 256 ** 2 + 5 * 256


def test_uniform_attention_is_style_mean_of_values_and_ignores_content_layout():
    torch.manual_seed(0)
    u = UniformAttention(4)
    c1, c2, s = torch.randn(1, 4, 3, 5), torch.randn(1, 4, 3, 5), torch.randn(1, 4, 6, 6)
    a, b = u(c1, s), u(c2, s)
    assert torch.equal(a, b)
    assert torch.allclose(a[0, :, 0, 0], u.value_conv(s).mean((2, 3))[0], atol=1e-6)


def test_paper_switch_changes_the_value_path_only():
    torch.manual_seed(0)
    code, paper = SelfAttention(4), SelfAttention(4, impl_params=False)
    paper.load_state_dict(code.state_dict())
    c, s = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 4, 4) * 5 + 2
    assert not torch.allclose(code(c, s), paper(c, s))
    s_n = _in(s[0])[None]
    assert torch.allclose(paper(c, s), code(c, s_n), atol=1e-5)
