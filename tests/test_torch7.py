"""WCT's released Torch7 models (``*.t7``) read with torchfile, checked against their layout
(methods.md §4), from synthetic files with exactly that layout."""
import numpy as np
import pytest
import torch

from baselines import build
from safin.blocks.decoders import mirror_decoder
from safin.blocks.encoder import SEQUENTIAL_VGG_INDEX
from safin.io.torch7 import Torch7Error, read_modules, sequential_state
from safin.methods import InputError

from .t7_writer import Module, conv, save_sequential

#: the relu after which vgg_normalised_convK_1.t7 ends, and the conv indices it holds (methods.md §4)
VGG_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
             19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3), 32: (512, 512, 3),
             35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3)}
LAST_CONV = {1: 2, 2: 9, 3: 16, 4: 29, 5: 42}
#: feature_invertor_convK_1.t7: conv index -> (out, in), written from methods.md §4, not from our code
DECODER_CONVS = {
    1: {1: (3, 64)},
    2: {1: (64, 128), 5: (64, 64), 8: (3, 64)},
    3: {1: (128, 256), 5: (128, 128), 8: (64, 128), 12: (64, 64), 15: (3, 64)},
    4: {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256), 18: (128, 128), 21: (64, 128),
        25: (64, 64), 28: (3, 64)},
    5: {1: (512, 512), 5: (512, 512), 8: (512, 512), 11: (512, 512), 14: (256, 512), 18: (256, 256), 21: (256, 256),
        24: (256, 256), 27: (128, 256), 31: (128, 128), 34: (64, 128), 38: (64, 64), 41: (3, 64)},
}


def other(name: str) -> Module:
    return Module(name)


def vgg_t7(path, k: int, rng) -> dict:
    modules, weights = [], {}
    for i in range(LAST_CONV[k] + 2):  # up to and including reluK_1
        if i in VGG_CONVS:
            cout, cin, ks = VGG_CONVS[i]
            modules.append(conv(cout, cin, ks, rng))
            weights[i] = modules[-1]
        else:
            modules.append(other("nn.ReLU" if i - 1 in VGG_CONVS else "nn.SpatialReflectionPadding"))
    save_sequential(path, modules)
    return weights


def decoder_t7(path, k: int, rng) -> dict:
    convs = DECODER_CONVS[k]
    modules, weights = [], {}
    for i in range(max(convs) + 1):
        if i in convs:
            modules.append(conv(*convs[i], 3, rng))
            weights[i] = modules[-1]
        else:
            modules.append(other("nn.SpatialReflectionPadding" if i + 1 in convs else "nn.ReLU"))
    save_sequential(path, modules)
    return weights


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The ten files of the release, with shared encoder layers equal (one network, truncated)."""
    root = tmp_path_factory.mktemp("wct_models")
    rng = np.random.default_rng(0)
    vgg = vgg_t7(root / "vgg_normalised_conv5_1.t7", 5, rng)
    for k in (1, 2, 3, 4):
        modules = read_modules(root / "vgg_normalised_conv5_1.t7")[: LAST_CONV[k] + 2]
        save_sequential(root / f"vgg_normalised_conv{k}_1.t7",
                        [conv_like(m) for m in modules])
    decoders = {k: decoder_t7(root / f"feature_invertor_conv{k}_1.t7", k, np.random.default_rng(k)) for k in range(1, 6)}
    return root, vgg, decoders


def conv_like(m) -> Module:
    name = m.torch_typename().decode()
    if name.endswith("SpatialConvolution"):
        return Module(name, weight=np.array(m.weight), bias=np.array(m.bias))
    return Module(name)


def test_torchfile_reads_the_layout_our_decoders_have(released):
    root, _, decoders = released
    for k in range(1, 6):
        state = sequential_state(root / f"feature_invertor_conv{k}_1.t7")
        ours = {n: p.shape for n, p in mirror_decoder(k).state_dict().items()}
        assert {n: tuple(t.shape) for n, t in state.items()} == {n: tuple(s) for n, s in ours.items()}
    vgg = sequential_state(root / "vgg_normalised_conv3_1.t7")
    assert sorted(int(k.split(".")[0]) for k in vgg if k.endswith("weight")) == [0, 2, 5, 9, 12, 16]
    assert all(int(k.split(".")[0]) in SEQUENTIAL_VGG_INDEX for k in vgg)


def test_wct_loads_the_release_and_every_tensor_lands_where_it_belongs(released):
    root, vgg, decoders = released
    m = build("wct", encoder_weights="random").load_reference(root)
    for k, convs in decoders.items():
        for i, module in convs.items():
            assert torch.equal(m.decoders[str(k)][i].weight, torch.from_numpy(module.fields["weight"]))
            assert torch.equal(m.decoders[str(k)][i].bias, torch.from_numpy(module.fields["bias"]))
    assert torch.equal(m.encoder.conv5_1.weight, torch.from_numpy(vgg[42].fields["weight"]))
    assert torch.equal(m.encoder.conv0.weight, torch.from_numpy(vgg[0].fields["weight"]))
    assert m.reference_encoder.startswith("the authors' vgg_normalised_conv5_1.t7")
    with torch.inference_mode():
        assert m(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_wrong_files_get_one_clear_error(released, tmp_path):
    root, _, _ = released
    (tmp_path / "page.t7").write_text("<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>")
    with pytest.raises(Torch7Error, match="an HTML page saved under a .t7 name"):
        sequential_state(tmp_path / "page.t7")
    data = (root / "feature_invertor_conv2_1.t7").read_bytes()
    (tmp_path / "truncated.t7").write_bytes(data[: len(data) // 2])
    with pytest.raises(Torch7Error, match="not a readable Torch7 file"):
        sequential_state(tmp_path / "truncated.t7")
    torch.save({"decoder": 1}, tmp_path / "torch.t7")  # a PyTorch checkpoint under the name
    with pytest.raises(Torch7Error, match="not a readable Torch7 file|not an nn.Sequential"):
        sequential_state(tmp_path / "torch.t7")
    # the wrong level's decoder under a level's name: a shape error naming the file
    files = tmp_path / "swapped"
    files.mkdir()
    for f in root.glob("*.t7"):
        (files / f.name).write_bytes(f.read_bytes())
    (files / "feature_invertor_conv3_1.t7").write_bytes((root / "feature_invertor_conv4_1.t7").read_bytes())
    with pytest.raises(InputError, match="feature_invertor_conv3_1.t7: WCT decoder 3"):
        build("wct", encoder_weights="random").load_reference(files)


def test_decoders_without_their_encoders_are_refused_unless_chosen(released, tmp_path):
    root, _, _ = released
    decoders = sorted(root.glob("feature_invertor_*.t7"))
    with pytest.raises(InputError, match="no vgg_normalised_conv5_1.t7 given.*bethgelab"):
        build("wct", encoder_weights="random").load_reference(*decoders)
    m = build("wct", encoder_weights="random").load_reference(*decoders, our_encoder=True)
    assert m.reference_encoder.startswith("this suite's")
    with pytest.raises(InputError, match="missing feature_invertor_conv1_1.t7"):
        build("wct", encoder_weights="random").load_reference(*decoders[1:])
