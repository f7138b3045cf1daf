"""StyTr² (baselines/stytr2.py) beyond its forward pass (tests/test_release_forward.py restates that): the
interface's contract on sizes the reference cannot run, the loss and the lr schedule against restatements of the
reference's, training, and ``safin stylize --reference FOLDER`` on the README's ``experiments/`` folder."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import baselines
from baselines.stytr2 import StyTr2
from safin.methods import InputError
from safin.training.checkpoints import listed

from .conftest import REPO, safin
from .release_files import _adain_decoder, stytr2_embedding, stytr2_transformer, write_release
from .test_adaattn import check_sizes_alpha_and_styles
from .test_release_forward import encode_slices, normalise, reference_stytr2
from .test_training import config, tiny_data  # noqa: F401  (fixture)

SAMPLE = REPO / "data" / "sample"
FILES = ("decoder_iter_160000.pth", "transformer_iter_160000.pth", "embedding_iter_160000.pth", "vgg_normalised.pth")


def _model(seed=0, **kw) -> StyTr2:
    torch.manual_seed(seed)
    return baselines.build("stytr2", encoder_weights="random", **kw).double().eval()


def test_is_a_built_in_method_with_the_released_layout():
    model = _model()
    assert type(model) is baselines.resolve("stytr2") and "stytr2" in baselines.BEYOND_PAPER
    gen = torch.Generator().manual_seed(0)
    released = {"transformer": stytr2_transformer(gen), "embedding": stytr2_embedding(gen), "decoder": _adain_decoder(gen)}
    for part, state in released.items():  # every released key with its shape, nothing more
        ours = getattr(model, part).state_dict()
        assert set(ours) == set(state), (part, set(ours) ^ set(state))
        assert all(ours[k].shape == v.shape for k, v in state.items())
    assert len(released["transformer"]) == 130
    assert model.count_parameters() == sum(v.numel() for s in released.values() for v in s.values()) == 35_394_115
    assert not any(p is q for p in model.trainable() for q in model.encoder.parameters())


def test_sizes_the_reference_cannot_run_alpha_and_several_styles():
    """Non-square contents and styles of another size (the reference's CAPE needs the style's grid to be the
    content's, and its reshape a square grid); alpha, weights and masks."""
    check_sizes_alpha_and_styles(_model())


def test_losses_match_the_reference_formulas(tmp_path):
    """The four terms and the total on the released layout, against the reference's losses restated on its own
    forward pass (I_cs, I_cc = the content with itself, I_ss) and its VGG slices, in eval mode (no dropout)."""
    files = write_release("stytr2", tmp_path, seed=2)
    model = _model().load_reference(*(files[n] for n in FILES)).double().eval()
    gen = torch.Generator().manual_seed(3)
    content, style = (torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64) for _ in range(2))
    got = model.losses(content, style)
    vgg = {k: v.double() for k, v in torch.load(files["vgg_normalised.pth"], weights_only=True).items()}
    encode = lambda x: encode_slices(vgg, x)  # noqa: E731

    def mean_std(x):
        return x.flatten(2).mean(2), (x.flatten(2).var(2) + 1e-5).sqrt()

    with torch.no_grad():
        ics, icc, iss = (reference_stytr2(files, c, s) for c, s in ((content, style), (content, content), (style, style)))
        cf, sf, of, ccf, ssf = (encode(x) for x in (content, style, ics, icc, iss))
        lc = F.mse_loss(normalise(of[4]), normalise(cf[4])) + F.mse_loss(normalise(of[3]), normalise(cf[3]))
        ls = sum(F.mse_loss(mean_std(o)[k], mean_std(s)[k]) for o, s in zip(of, sf) for k in (0, 1))
        l1 = F.mse_loss(icc, content) + F.mse_loss(iss, style)
        l2 = sum(F.mse_loss(ccf[i], cf[i]) + F.mse_loss(ssf[i], sf[i]) for i in range(5))
    for name, want in (("content", lc), ("style", ls), ("identity1", l1), ("identity2", l2),
                       ("total", 7 * lc + 10 * ls + 70 * l1 + 1 * l2)):
        assert abs(got[name].item() - float(want)) <= 1e-9 * abs(float(want)), (name, got[name].item(), float(want))
    got["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.trainable())
    assert all(p.grad is None for p in model.encoder.parameters())


def test_lr_schedule_is_the_reference_warm_up_then_decay():
    """train.py: warmup_learning_rate lr * 0.1 * (1 + 3e-4 i) below 10000 steps, then adjust_learning_rate
    2e-4 / (1 + lr_decay (i - 10000)), at its lr 5e-4 and lr_decay 1e-5."""
    lr, decay = 5e-4, 1e-5
    for i in (0, 1, 5000, 9999, 10_000, 10_001, 90_000, 159_999):
        want = lr * 0.1 * (1 + 3e-4 * i) if i < 10_000 else 2e-4 / (1 + decay * (i - 10_000))
        assert StyTr2.lr_factor(i, decay) * lr == pytest.approx(want, rel=1e-12), i


def test_trains_with_the_one_trainer_on_its_schedule(tiny_data, tmp_path):  # noqa: F811
    from safin.training import train

    cfg = config(tiny_data, tmp_path / "run", method="stytr2", max_iter=2, crop=32, checkpoint_every=2, lr=5e-4,
                 lr_decay=1e-5)
    summary = train(cfg)
    assert summary["iterations"] == 2
    assert set(summary["final_losses"]) >= {"content", "style", "identity1", "identity2", "total"}
    assert all(v == v and v > 0 for v in summary["final_losses"].values())
    ckpt = torch.load(listed(cfg)[-1], map_location="cpu", weights_only=False)
    # after 2 steps the optimiser holds the warm-up's lr of step 2
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4 * 0.1 * (1 + 3e-4 * 2), rel=1e-12)


def _readme_layout(tmp_path):
    """A user's folder as StyTR-2's README says: the four downloads put into ``experiments/``."""
    files = write_release("stytr2", tmp_path / "release", seed=4)
    user = tmp_path / "StyTR-2"
    (user / "experiments").mkdir(parents=True)
    for name, path in files.items():
        (user / "experiments" / name).write_bytes(path.read_bytes())
    return files, user


def test_stylize_takes_the_folder_the_readme_leaves(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    files, user = _readme_layout(tmp_path)
    content, out = tmp_path / "c.png", tmp_path / "out.png"
    Image.open(SAMPLE / "content/chelsea.jpg").convert("RGB").resize((90, 60)).save(content)
    common = ["stylize", "--method", "stytr2", "--content", str(content), "--style", str(SAMPLE / "style/Gogh4.jpg"),
              "--content-size", "48", "--style-size", "48", "--encoder-weights", "random"]
    res = safin(*common, "--reference", str(user), "--output", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert Image.open(out).size == (48, 48)  # test.py: the shorter side to 48, then the middle 48 x 48
    res = safin(*common, "--reference", *(str(files[n]) for n in FILES), "--output", str(tmp_path / "named.png"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert Image.open(out).tobytes() == Image.open(tmp_path / "named.png").tobytes()


def test_a_folder_missing_a_file_says_which_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFIN_CACHE", str(tmp_path / "cache"))
    _, user = _readme_layout(tmp_path)
    (user / "experiments/embedding_iter_160000.pth").unlink()
    with pytest.raises(InputError, match=r"StyTR-2: no embedding_iter_160000.pth in it; put embedding_iter_160000.pth "):
        _model().load_reference(str(user))
    res = safin("stylize", "--method", "stytr2", "--reference", str(user), "--content",
                str(SAMPLE / "content/chelsea.jpg"), "--style", str(SAMPLE / "style/Gogh4.jpg"), "--output",
                str(tmp_path / "o.png"), "--encoder-weights", "random")
    assert res.returncode != 0 and "embedding_iter_160000.pth" in res.stderr and not (tmp_path / "o.png").exists()
