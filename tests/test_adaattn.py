"""AdaAttN (baselines/adaattn.py) beyond its forward pass (tests/test_release_forward.py restates that): the one
interface's contract, the loss against a restatement of the reference's, training, and ``safin stylize
--reference FOLDER`` on the files as the authors' README leaves them."""
from __future__ import annotations

import zipfile

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import baselines
from baselines.adaattn import AdaAttN, keys
from safin.methods import InputError

from .conftest import REPO, safin
from .release_files import write_release
from .test_release_forward import encode_slices, normalise, rel_diff
from .test_training import config, losses, tiny_data  # noqa: F401  (fixture)

SAMPLE = REPO / "data" / "sample"


def _model(seed=0, **kw) -> AdaAttN:
    torch.manual_seed(seed)
    return baselines.build("adaattn", encoder_weights="random", **kw).double().eval()


def test_is_a_built_in_method_with_the_released_layout():
    model = _model()
    assert type(model) is baselines.resolve("adaattn") and "adaattn" in baselines.BEYOND_PAPER
    keys_ = set(model.state_dict())
    # their file names' modules, keyed as their state dicts (Transformer, Decoder, the relu3_1 AdaAttN)
    assert {"transform.attn_adain_4_1.f.weight", "transform.attn_adain_5_1.h.bias", "transform.merge_conv.weight",
            "decoder.decoder_layer_1.1.weight", "decoder.decoder_layer_2.24.weight", "adaattn_3.g.weight"} <= keys_
    assert model.transform.attn_adain_5_1.f.weight.shape == (1472, 1472, 1, 1)
    assert model.adaattn_3.f.weight.shape == (448, 448, 1, 1) and model.adaattn_3.max_sample == 4096
    assert model.decoder.decoder_layer_2[1].weight.shape == (256, 512, 3, 3)
    n_trainable = sum(p.numel() for p in model.trainable())
    assert n_trainable == 468_096 + 9_066_752 + 4_095_043  # adaattn_3 + transformer + decoder, as released
    assert not any(p is q for p in model.trainable() for q in model.encoder.parameters())


def check_sizes_alpha_and_styles(model) -> None:
    """The one interface's promises on a float64 model: an odd-sized content and a style of another size give an image
    of the content's size; alpha 0 differs from 1; a zero weight leaves the other style alone; masks mix two styles."""
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, 50, 70, generator=gen, dtype=torch.float64)
    s1, s2 = (torch.rand(1, 3, 48, 64, generator=gen, dtype=torch.float64) for _ in range(2))
    with torch.inference_mode():
        out = model(content, s1, clamp=False)
        assert out.shape == content.shape and torch.isfinite(out).all()
        assert rel_diff(model(content, s1, alpha=0.0, clamp=False), out) > 1e-3
        mixed = model(content, [s1, s2], weights=[1.0, 0.0], clamp=False)
        assert rel_diff(mixed, out) < 1e-9  # a zero weight leaves the other style alone
        masks = torch.zeros(2, 50, 70, dtype=torch.float64)
        masks[0, :, :35], masks[1, :, 35:] = 1, 1
        both = model(content, [s1, s2], masks=masks, clamp=False)
        assert torch.isfinite(both).all() and rel_diff(both, out) > 1e-3


def test_odd_sizes_alpha_and_several_styles():
    check_sizes_alpha_and_styles(_model())


def _reference_local_loss(c_feats, s_feats, out_feats, limit, seed):
    """adaattn_model.py:L182-209, restated: for relu2_1..relu5_1, the shallow keys (F.interpolate's default nearest,
    each normalised, concatenated), the style positions sampled above ``limit`` after torch.manual_seed(seed), the
    parameter-free attention over the raw style features, MSE of the output's features to std * mvn(c) + mean."""
    total = 0.0
    for i in range(1, 5):
        def key(feats):
            h, w = feats[i].shape[2:]
            return torch.cat([normalise(F.interpolate(feats[j], (h, w))) for j in range(i)] + [normalise(feats[i])], 1)

        ck, sk = key(c_feats), key(s_feats)
        b, _, hc, wc = c_feats[i].shape
        sk = sk.view(b, sk.shape[1], -1)
        sv = s_feats[i].view(b, s_feats[i].shape[1], -1)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if sk.shape[-1] > limit:
                index = torch.randperm(sk.shape[-1])[:limit]
                sk, sv = sk[:, :, index], sv[:, :, index]
        a = torch.softmax(torch.bmm(ck.view(b, ck.shape[1], -1).permute(0, 2, 1), sk), dim=-1)
        v = sv.transpose(1, 2)
        mean = torch.bmm(a, v)
        std = torch.sqrt(torch.relu(torch.bmm(a, v ** 2) - mean ** 2))
        mean = mean.view(b, hc, wc, -1).permute(0, 3, 1, 2)
        std = std.view(b, hc, wc, -1).permute(0, 3, 1, 2)
        total = total + F.mse_loss(out_feats[i], std * normalise(c_feats[i]) + mean)
    return total


def test_local_and_global_losses_match_the_reference_formulas(tmp_path):
    """The loss terms against the reference's formulas on the same features, the relu2_1 positions sampled
    (a limit of 100 for 64 px crops: 1024 positions there)."""
    files = write_release("adaattn", tmp_path, seed=2)
    model = _model(max_sample_3=100)
    model.load_reference(*(files[n] for n in ("latest_net_decoder.pth", "latest_net_transformer.pth",
                                              "latest_net_adaattn_3.pth", "vgg_normalised.pth")))
    model = model.double()
    gen = torch.Generator().manual_seed(3)
    content, style = (torch.rand(2, 3, 64, 64, generator=gen, dtype=torch.float64) for _ in range(2))
    torch.manual_seed(11)
    got = model.losses(content, style)
    torch.manual_seed(11)
    seed = int(torch.randint(10_000_000, (1,)))  # the step's seed, drawn as the model draws it
    vgg = {k: v.double() for k, v in torch.load(files["vgg_normalised.pth"], weights_only=True).items()}
    encode = lambda x: encode_slices(vgg, x)  # noqa: E731

    with torch.no_grad():
        cf, sf = encode(content), encode(style)
        out = model._decode(cf, [{"feats": sf, "keys": {lv: keys(sf, lv) for lv in (2, 3, 4)}}], lambda m: m[0], 1.0,
                            seed)
        of = encode(out)
        local = _reference_local_loss(cf, sf, of, 100, seed)
        mean_std = lambda x: (x.flatten(2).mean(2), (x.flatten(2).var(2) + 1e-5).sqrt())  # noqa: E731
        glob = sum(F.mse_loss(mean_std(o)[k], mean_std(s)[k]) for o, s in zip(of[1:], sf[1:]) for k in (0, 1))
    assert abs(got["local"].item() - float(local)) <= 1e-9 * float(local), (got["local"].item(), float(local))
    assert abs(got["global_style"].item() - float(glob)) <= 1e-9 * float(glob)
    assert got["content"].item() == 0.0  # lambda_content 0 in the release's recipe
    assert abs(got["total"].item() - (10 * float(glob) + 3 * float(local))) <= 1e-9 * got["total"].item()
    got["total"].backward()
    grads = [p.grad for p in model.trainable()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in model.encoder.parameters())


def test_trains_with_the_one_trainer(tiny_data, tmp_path):  # noqa: F811
    from safin.training import train

    cfg = config(tiny_data, tmp_path / "run", method="adaattn", max_iter=3, crop=32, checkpoint_every=2)
    summary = train(cfg)
    assert summary["iterations"] == 3
    got = losses(tmp_path / "run")
    assert len(got) == 3 and all(v > 0 and v == v for v in got)
    assert set(summary["final_losses"]) >= {"global_style", "local", "total"}


def _readme_layout(tmp_path):
    """A user's folder as AdaAttN's README leaves it (``unzip checkpoints/AdaAttN_model.zip`` in the repository, the
    VGG downloaded into ``checkpoints/``)."""
    src = tmp_path / "release"
    files = write_release("adaattn", src, seed=4)
    user = tmp_path / "AdaAttN"
    (user / "checkpoints/AdaAttN").mkdir(parents=True)
    for name, path in files.items():
        dest = user / "checkpoints" / ("" if name == "vgg_normalised.pth" else "AdaAttN") / name
        dest.write_bytes(path.read_bytes())
    return files, user


def test_stylize_takes_the_folder_the_readme_leaves(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    files, user = _readme_layout(tmp_path)
    content, out = tmp_path / "c.png", tmp_path / "out.png"
    Image.open(SAMPLE / "content/chelsea.jpg").convert("RGB").resize((90, 60)).save(content)
    common = ["stylize", "--method", "adaattn", "--content", str(content), "--style", str(SAMPLE / "style/Gogh4.jpg"),
              "--content-size", "64", "--style-size", "64", "--encoder-weights", "random"]
    res = safin(*common, "--reference", str(user / "checkpoints"), "--output", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert Image.open(out).size == (64, 64)  # test_adaattn.sh: squashed to a square, bicubic
    # the same image from the four files named one by one
    named = [str(files[n]) for n in ("latest_net_decoder.pth", "latest_net_transformer.pth", "latest_net_adaattn_3.pth",
                                     "vgg_normalised.pth")]
    res = safin(*common, "--reference", *named, "--output", str(tmp_path / "named.png"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert Image.open(out).tobytes() == Image.open(tmp_path / "named.png").tobytes()
    # the archive left as downloaded, beside the VGG file
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "AdaAttN_model.zip", "w") as z:
        for n in named[:3]:
            z.write(n, f"checkpoints/AdaAttN/{n.rsplit('/', 1)[1]}")
    (zipped / "vgg_normalised.pth").write_bytes(files["vgg_normalised.pth"].read_bytes())
    res = safin(*common, "--reference", str(zipped), "--output", str(tmp_path / "zipped.png"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert Image.open(tmp_path / "zipped.png").tobytes() == Image.open(out).tobytes()


def test_a_folder_missing_a_file_says_which_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    _, user = _readme_layout(tmp_path)
    (user / "checkpoints/AdaAttN/latest_net_adaattn_3.pth").unlink()
    with pytest.raises(InputError, match=r"checkpoints: no latest_net_adaattn_3.pth in it; put .* AdaAttN_model.zip"):
        _model().load_reference(str(user / "checkpoints"))
    res = safin("stylize", "--method", "adaattn", "--reference", str(user / "checkpoints"), "--content",
                str(SAMPLE / "content/chelsea.jpg"), "--style", str(SAMPLE / "style/Gogh4.jpg"), "--output",
                str(tmp_path / "o.png"), "--encoder-weights", "random")
    assert res.returncode != 0 and "latest_net_adaattn_3.pth" in res.stderr and not (tmp_path / "o.png").exists()
