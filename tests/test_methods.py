"""Every method behind the one interface: shapes, gradients, frozen encoder, options, bad input."""
import pytest
import torch

import baselines
from baselines import METHOD_NAMES, build
from safin.methods import InputError

#: trainable parameter counts from methods.md ([computed] there from the layer shapes)
EXPECTED_PARAMS = {
    "safin": 5_148_995,          # decoder 3,505,219 + safin4 1,314,304 + safin3 329,472
    "adain": 3_505_219,
    "sanet": 4_461_056 + 3_505_219,
    "sanet_safin": 2 * 1_314_304 + 512 * 512 * 9 + 512 + 3_505_219,
    "safin_fin": 3_505_219 + (3 * 512 ** 2 + 5 * 512) + (3 * 256 ** 2 + 5 * 256),
}


def _lively(model):
    """Re-initialise the trainable convs so random decoders pass signal (default init leaves most
    ReLUs dead and the output nearly constant, which would make comparisons vacuous)."""
    ids = {id(p) for p in model.trainable()}
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d) and id(mod.weight) in ids:
            torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            torch.nn.init.zeros_(mod.bias)
    return model


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {n: _lively(build(n, encoder_weights="random")).eval() for n in METHOD_NAMES}


def test_registry_holds_the_six_methods():
    assert set(METHOD_NAMES) <= set(baselines.METHODS)
    with pytest.raises(baselines.PluginError, match="unknown method .cyclegan."):
        build("cyclegan")


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_counts_match_the_spec(models, name):
    assert models[name].count_parameters() == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (91, 50)])
def test_output_shape_equals_input_shape_for_odd_sizes(models, name, size):
    content = torch.rand(1, 3, *size)
    style = torch.rand(1, 3, 45, 39)
    with torch.inference_mode():
        out = models[name](content, style)
    assert out.shape == content.shape
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_gradients_reach_exactly_the_trainable_parameters(name):
    torch.manual_seed(0)
    model = build(name, encoder_weights="random").train()
    losses = model.losses(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert "total" in losses and all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    trainable = {id(p) for p in model.trainable()}
    assert trainable
    for pname, p in model.named_parameters():
        if id(p) in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} got no gradient"
        else:
            assert pname.startswith("encoder."), pname
            assert not p.requires_grad and p.grad is None, f"encoder parameter {pname} is not frozen"
    assert not model.encoder.training  # the frozen encoder stays in eval mode


@pytest.mark.parametrize("name", ["safin", "adain", "sanet"])
def test_an_optimizer_step_leaves_the_encoder_unchanged(name):
    model = build(name, encoder_weights="random").train()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    opt = torch.optim.Adam(model.trainable(), lr=1e-2)
    model.losses(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))["total"].backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_alpha_zero_ignores_the_style(models, name):
    content = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        a = models[name](content, torch.rand(1, 3, 64, 64), alpha=0.0, clamp=False)
        b = models[name](content, torch.rand(1, 3, 48, 80), alpha=0.0, clamp=False)
    if name == "safin" or name == "safin_fin":
        # SAFIN's alpha blends only the relu4_1 bottleneck; its skips stay stylized (reference code)
        assert not torch.allclose(a, b)
    else:
        assert torch.allclose(a, b, atol=1e-5 * float(a.abs().max()))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_interpolation_and_masks_reduce_to_one_style(models, name):
    content, s1, s2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    m = models[name]
    with torch.inference_mode():
        single = m(content, s1, clamp=False)
        weighted = m(content, [s1, s2], weights=[1.0, 0.0], clamp=False)
        masked = m(content, [s1, s2], masks=torch.stack([torch.ones(64, 64), torch.zeros(64, 64)]), clamp=False)
        half = torch.zeros(2, 64, 64)
        half[0, :, :32], half[1, :, 32:] = 1, 1
        mixed = m(content, [s1, s2], masks=half, clamp=False)
    scale = float(single.abs().max())
    assert torch.allclose(single, weighted, atol=1e-5 * scale)
    assert torch.allclose(single, masked, atol=1e-5 * scale)
    assert not torch.allclose(mixed, single, atol=1e-3 * scale)


def test_preserve_color_changes_the_output(models):
    content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64) * torch.tensor([1.0, 0.2, 0.1]).view(1, 3, 1, 1)
    with torch.inference_mode():
        a = models["adain"](content, style, clamp=False)
        b = models["adain"](content, style, preserve_color=True, clamp=False)
    assert not torch.allclose(a, b)


def test_batch_with_one_shared_style(models):
    with torch.inference_mode():
        out = models["safin"](torch.rand(3, 3, 40, 40), torch.rand(1, 3, 32, 32))
    assert out.shape == (3, 3, 40, 40)


@pytest.mark.parametrize("bad, match", [
    (dict(masks=torch.ones(1, 30, 30)), "masks are 30x30 px but the content is 64x64"),
    (dict(masks=torch.ones(2, 64, 64)), "one \\(H, W\\) mask per style"),
    (dict(alpha=1.5), "alpha must be in"),
    (dict(weights=[1, 2]), "need 1 non-negative"),
])
def test_bad_options_give_clear_errors(models, bad, match):
    with pytest.raises(InputError, match=match):
        models["safin"](torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), **bad)


def test_bad_images_give_clear_errors(models):
    with pytest.raises(InputError, match="too small"):
        models["sanet"](torch.rand(1, 3, 20, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match="expected shape"):
        models["adain"](torch.rand(1, 4, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match="0x0 px is too small|too small"):
        models["adain"](torch.rand(1, 3, 0, 0), torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match="NaN"):
        models["adain"](torch.full((1, 3, 64, 64), float("nan")), torch.rand(1, 3, 64, 64))


def test_style_cache_encodes_a_style_once_and_gives_the_same_output(models):
    m = models["safin"]
    calls = []
    original = m.encode_style
    m.encode_style = lambda s: calls.append(1) or original(s)
    try:
        cache, style = {}, torch.rand(1, 3, 48, 48)
        with torch.inference_mode():
            a = m(torch.rand(1, 3, 40, 40), style, style_cache=cache, clamp=False)
            b = m(torch.rand(1, 3, 40, 40), style, style_cache=cache, clamp=False)
            c = m(torch.rand(1, 3, 40, 40), style, clamp=False)
    finally:
        m.encode_style = original
    assert len(calls) == 3 - 1 and a.shape == b.shape == c.shape
    torch.manual_seed(5)
    content = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        assert torch.equal(m(content, style, style_cache=cache, clamp=False), m(content, style, clamp=False))


def _sanet_losses_three_passes(m, content, style):
    """SANet's loss as the reference writes it: stylized image, I_cc and I_ss in three separate passes."""
    from safin.blocks.encoder import TAPS_1_TO_5 as TAPS5
    from safin.blocks.losses import content_loss, distance, style_loss
    c, s = m.encoder(content, TAPS5), m.encoder(style, TAPS5)
    out = m.decoder(m.transform(c["relu4_1"], s["relu4_1"], c["relu5_1"], s["relu5_1"]))
    i_cc = m.decoder(m.transform(c["relu4_1"], c["relu4_1"], c["relu5_1"], c["relu5_1"]))
    i_ss = m.decoder(m.transform(s["relu4_1"], s["relu4_1"], s["relu5_1"], s["relu5_1"]))
    o, f_cc, f_ss = (m.encoder(x, TAPS5) for x in (out, i_cc, i_ss))
    return {"content": sum(content_loss(o[t], c[t], normalise=True) for t in ("relu4_1", "relu5_1")),
            "style": style_loss(list(o.values()), list(s.values())),
            "identity1": distance(i_cc, content) + distance(i_ss, style),
            "identity2": sum(distance(f_cc[t], c[t]) + distance(f_ss[t], s[t]) for t in TAPS5)}


@pytest.mark.parametrize("name", ["sanet", "sanet_safin"])
@pytest.mark.parametrize("style_size", [48, 64])
def test_sanet_losses_in_one_batch_equal_the_three_reference_passes(models, name, style_size):
    torch.manual_seed(3)
    m = models[name]
    content, style = torch.rand(2, 3, 48, 48), torch.rand(2, 3, style_size, style_size)
    with torch.no_grad():
        ours, ref = m.losses(content, style), _sanet_losses_three_passes(m, content, style)
    for key, value in ref.items():
        assert torch.allclose(ours[key], value, rtol=1e-4, atol=1e-6), (key, ours[key], value)
    assert ref["style"] > 0 and ref["identity1"] > 0


def test_as_one_batch_splits_tensors_and_dicts_back_per_call():
    from safin.methods import as_one_batch
    a, b = torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4)
    calls = []
    out = as_one_batch(lambda x, y: calls.append(len(x)) or x * y, [(a, a), (b, b)])
    assert calls == [5] and torch.equal(out[0], a * a) and torch.equal(out[1], b * b)
    d = as_one_batch(lambda x: {"sum": x.sum((1, 2, 3)), "x": x}, [(a,), (b,)])
    assert torch.equal(d[1]["sum"], b.sum((1, 2, 3))) and torch.equal(d[0]["x"], a)
    calls.clear()
    odd = torch.rand(1, 3, 5, 5)   # another shape: one call per argument tuple
    out = as_one_batch(lambda x: calls.append(len(x)) or x + 1, [(a,), (odd,)])
    assert calls == [2, 1] and torch.equal(out[1], odd + 1)


@pytest.mark.parametrize("name", ["safin", "safin_fin", "adain"])
@pytest.mark.parametrize("style_size", [48, 64])
def test_losses_with_one_plain_pass_equal_separate_encoder_passes(models, name, style_size):
    """The loss targets and the style code come from one encoder call over content and style; the
    reference encodes them separately (SAFIN even twice for the style)."""
    from safin.blocks.losses import content_loss, style_loss
    from safin.methods import Mixer
    torch.manual_seed(4)
    m = models[name]
    content, style = torch.rand(2, 3, 48, 48), torch.rand(2, 3, style_size, style_size)
    with torch.no_grad():
        ours = m.losses(content, style)
        if name == "adain":
            from safin.blocks.encoder import TAPS_1_TO_4 as TAPS4
            from safin.blocks.statistics import adain
            s = list(m.encoder(style, TAPS4).values())
            t = adain(m.encoder(content, ["relu4_1"])["relu4_1"], s[-1])
            o = list(m.encoder(m.decoder(t), TAPS4).values())
            ref = {"content": content_loss(o[-1], t), "style": style_loss(o, s)}
        else:
            t, skips = m._stylize_features(content, [m.encode_style(style)], Mixer(1))
            o = m.encoder.taps(m.decoder(t, skips))
            ref = {"content": content_loss(o[-1], m.encoder(content)["relu4_1"]),
                   "style": style_loss(o, m.encoder.taps(style))}
    for key, value in ref.items():
        assert torch.allclose(ours[key], value, rtol=1e-4, atol=1e-6), (key, ours[key], value)
    assert ref["style"] > 0


def test_sanet_safin_keeps_its_safin_modules_under_their_own_names_and_reads_the_old_ones():
    import baselines

    m = baselines.build("sanet_safin", encoder_weights="random")
    keys = [k for k in m.state_dict() if k.startswith("transform.")]
    assert any(k.startswith("transform.safin4_1.") for k in keys)
    assert not any(k.startswith("transform.sanet") for k in keys)
    old = {k.replace("transform.safin", "transform.sanet"): v + 1 for k, v in m.state_dict().items()
           if not k.startswith("encoder.")}
    fresh = baselines.build("sanet_safin", encoder_weights="random")
    fresh.load_state_dict(old, strict=False)
    for k, v in old.items():
        assert torch.equal(fresh.state_dict()[k.replace("transform.sanet", "transform.safin")], v)


@pytest.mark.parametrize("masks", [False, True])
def test_safin_blends_several_styles_as_its_reference_code_does(masks):
    """Reference test.py (style_transfer with interpolation weights): the content runs one independent chain per
    style (each with its own LL through every level), and only SAFIN-4's output and the skips are blended.
    Restated here with the model's blocks, in float64; ``impl_params=False`` keeps the blend of LL per level."""
    from safin.blocks.statistics import adain

    torch.manual_seed(3)
    m = _lively(build("safin", encoder_weights="random")).eval().set_compute("fp64")
    gen = torch.Generator().manual_seed(4)
    content, s1, s2 = (torch.rand(1, 3, 32, 32, generator=gen, dtype=torch.float64) for _ in range(3))
    w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    if masks:
        mask = torch.zeros(2, 32, 32, dtype=torch.float64)
        mask[0, :, :16], mask[1, :, 16:] = 1, 1
        kw = dict(masks=mask)
    else:
        kw = dict(weights=[0.3, 0.7])

    def blend(a, b):
        if not masks:
            return w[0] * a + w[1] * b
        mk = torch.nn.functional.interpolate(mask[:, None], size=a.shape[-2:], mode="bilinear", align_corners=False)
        mk = mk / mk.sum(0, keepdim=True).clamp_min(1e-6)
        return mk[0] * a + mk[1] * b

    def chain(style):
        code = m.encode_style(style)
        h, skips = content, {}
        for level in (1, 2, 3):
            ll, bands = m.encoder.block(level, h)
            h = adain(ll, code.ll[level])
            f = adain if level < 3 else m.safin3
            skips[level] = [f(b, code.skips[level][j]) for j, b in enumerate(bands)]
        return m.safin4(m.encoder.relu4_1(h), code.relu4_1), skips

    with torch.inference_mode():
        out = m(content, [s1, s2], clamp=False, **kw)
        (t1, k1), (t2, k2) = chain(s1), chain(s2)
        expected = m.decoder(blend(t1, t2), {lv: tuple(blend(a, b) for a, b in zip(k1[lv], k2[lv])) for lv in (1, 2, 3)})
        m.impl_params = False
        per_level = m(content, [s1, s2], clamp=False, **kw)
    assert out.dtype == torch.float64
    assert float((out - expected).abs().max()) <= 1e-9 * float(expected.abs().max())
    assert float((per_level - out).abs().max()) > 1e-4 * float(out.abs().max())  # the other reading differs
