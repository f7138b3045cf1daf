"""The authors' released checkpoints load: key layouts rebuilt by hand here (not from our modules)."""
import pytest
import torch

from baselines import build
from safin.methods import InputError

from .release_files import _adain_decoder, _conv, _safin_decoder, _safin_module, _vgg_sequential

def test_adain_decoder_and_vgg_load(tmp_path):
    gen = torch.Generator().manual_seed(0)
    dec, vgg = _adain_decoder(gen), _vgg_sequential(gen)
    torch.save(dec, tmp_path / "decoder.pth")
    torch.save(vgg, tmp_path / "vgg_normalised.pth")
    m = build("adain", encoder_weights="random").load_reference(tmp_path / "decoder.pth", tmp_path / "vgg_normalised.pth")
    assert torch.equal(m.decoder[1].weight, dec["1.weight"]) and torch.equal(m.decoder[28].bias, dec["28.bias"])
    assert torch.equal(m.encoder.conv0.weight, vgg["0.weight"])
    assert torch.equal(m.encoder.conv3_1.weight, vgg["16.weight"])
    assert torch.equal(m.encoder.conv4_1.bias, vgg["29.bias"])


def test_sanet_decoder_transformer_and_vgg_load(tmp_path):
    gen = torch.Generator().manual_seed(1)
    transformer = {}
    for block in ("sanet4_1", "sanet5_1"):
        for conv in ("f", "g", "h", "out_conv"):
            transformer.update(_conv(f"{block}.{conv}.", 512, 512, 1, gen))
    transformer.update(_conv("merge_conv.", 512, 512, 3, gen))
    torch.save(_adain_decoder(gen), tmp_path / "decoder_iter_500000.pth")
    torch.save(transformer, tmp_path / "transformer_iter_500000.pth")
    vgg = _vgg_sequential(gen)
    torch.save(vgg, tmp_path / "vgg_normalised.pth")
    m = build("sanet", encoder_weights="random").load_reference(
        tmp_path / "decoder_iter_500000.pth", tmp_path / "transformer_iter_500000.pth", tmp_path / "vgg_normalised.pth")
    assert torch.equal(m.transform.sanet5_1.out_conv.weight, transformer["sanet5_1.out_conv.weight"])
    assert torch.equal(m.transform.merge_conv.bias, transformer["merge_conv.bias"])
    assert torch.equal(m.encoder.conv5_1.weight, vgg["42.weight"])


@pytest.mark.parametrize("keys", [("meta_adain4_state_dict", "meta_adain3_state_dict"),
                                  ("safin4_state_dict", "safin3_state_dict")])
def test_safin_checkpoint_loads_with_either_key_set(tmp_path, keys):
    gen = torch.Generator().manual_seed(2)
    ckpt = {"decoder_state_dict": _safin_decoder(gen), keys[0]: _safin_module(512, gen), keys[1]: _safin_module(256, gen)}
    torch.save(ckpt, tmp_path / "decoder.pth")
    wave_vgg = {k.replace(f"{i}.", f"{name}.", 1): v for i, name in ((0, "conv0"), (2, "conv1_1"), (5, "conv1_2"),
                (9, "conv2_1"), (12, "conv2_2"), (16, "conv3_1"), (19, "conv3_2"), (22, "conv3_3"), (25, "conv3_4"),
                (29, "conv4_1")) for k, v in _vgg_sequential(gen).items() if k.startswith(f"{i}.")}
    wave_vgg["pool1.LL.weight"] = torch.randn(64, 1, 2, 2)  # fixed Haar filters are ignored
    torch.save(wave_vgg, tmp_path / "vgg_normalised.pth")
    m = build("safin", encoder_weights="random").load_reference(tmp_path / "decoder.pth", tmp_path / "vgg_normalised.pth")
    assert torch.equal(m.decoder.conv4_1.weight, ckpt["decoder_state_dict"]["conv4_1.weight"])
    assert torch.equal(m.safin4.attention.value_conv.weight, ckpt[keys[0]]["attention.value_conv.weight"])
    assert torch.equal(m.safin3.shared_bias, ckpt[keys[1]]["shared_bias"])
    assert torch.equal(m.encoder.conv4_1.weight, wave_vgg["conv4_1.weight"])
    # the Haar filters stay exact: a loaded model still reconstructs through its unpooling
    with torch.inference_mode():
        assert m(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40)).shape == (1, 3, 40, 40)


def test_wrong_layouts_give_clear_errors(tmp_path):
    gen = torch.Generator().manual_seed(3)
    torch.save(_adain_decoder(gen), tmp_path / "decoder.pth")
    with pytest.raises(InputError, match="decoder_state_dict"):
        build("safin", encoder_weights="random").load_reference(tmp_path / "decoder.pth")
    torch.save({"decoder_state_dict": _safin_decoder(gen)}, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="meta_adain4_state_dict"):
        build("safin", encoder_weights="random").load_reference(tmp_path / "partial.pth")
    bad = _adain_decoder(gen)
    bad["1.weight"] = torch.randn(10, 10, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises((InputError, RuntimeError)):
        build("adain", encoder_weights="random").load_reference(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        build("adain", encoder_weights="random").load_reference(tmp_path / "junk.pth")


def test_our_weights_round_trip(tmp_path):
    from safin.methods import load_weights, save_weights

    a = build("sanet_safin", encoder_weights="random")
    save_weights(a, tmp_path / "w.pth", iteration=3)
    b = build("sanet_safin", encoder_weights="random")
    assert load_weights(b, tmp_path / "w.pth") == {"iteration": 3}
    assert all(torch.equal(x, y) for x, y in zip(a.trainable(), b.trainable()))
    with pytest.raises(InputError, match="method 'sanet_safin', not 'sanet'"):
        load_weights(build("sanet", encoder_weights="random"), tmp_path / "w.pth")


@pytest.mark.parametrize("method", ["adain", "sanet", "safin"])
def test_an_authors_decoder_without_its_encoder_is_refused_unless_chosen(tmp_path, method):
    """Their decoders were trained on bethgelab's vgg_normalised: without that file the load refuses and
    says why; --our-encoder (our_encoder=True) pairs them anyway and the model records it."""
    gen = torch.Generator().manual_seed(4)
    if method == "safin":
        torch.save({"decoder_state_dict": _safin_decoder(gen), "meta_adain4_state_dict": _safin_module(512, gen),
                    "meta_adain3_state_dict": _safin_module(256, gen)}, tmp_path / "decoder.pth")
        files = [tmp_path / "decoder.pth"]
    else:
        torch.save(_adain_decoder(gen), tmp_path / "decoder.pth")
        files = [tmp_path / "decoder.pth"]
        if method == "sanet":
            m = build("sanet", encoder_weights="random")
            torch.save({k: torch.randn_like(v) for k, v in m.transform.state_dict().items()}, tmp_path / "tr.pth")
            files.append(tmp_path / "tr.pth")
    with pytest.raises(InputError, match="bethgelab's vgg_normalised.*colours and contrast.*--our-encoder"):
        build(method, encoder_weights="random").load_reference(*files)
    m = build(method, encoder_weights="random").load_reference(*files, our_encoder=True)
    assert m.reference_encoder.startswith("this suite's vgg19_normalised, chosen explicitly")


def test_stylize_refuses_a_reference_decoder_without_the_vgg_file(tmp_path):
    from PIL import Image

    from .conftest import safin

    gen = torch.Generator().manual_seed(5)
    torch.save(_adain_decoder(gen), tmp_path / "decoder.pth")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "c.png")
    cmd = ["stylize", "--method", "adain", "--reference", str(tmp_path / "decoder.pth"),
           "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "c.png"), "--output", str(tmp_path / "o.png"),
           "--encoder-weights", "random"]
    res = safin(*cmd)
    assert res.returncode == 1 and "no vgg_normalised.pth given" in res.stderr and not (tmp_path / "o.png").exists()
    res = safin(*cmd, "--our-encoder")
    assert res.returncode == 0 and (tmp_path / "o.png").exists() and "--our-encoder" in res.stderr, res.stderr[-2000:]
