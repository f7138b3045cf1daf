"""WCT's released Torch7 models (``*.t7``) read with torchfile, checked against their layout
(methods.md §4), from synthetic files with exactly that layout."""
import pytest
import torch

from baselines import build
from safin.blocks.decoders import mirror_decoder
from safin.blocks.encoder import SEQUENTIAL_VGG_INDEX
from safin.io.torch7 import Torch7Error, sequential_state
from safin.methods import InputError

from .release_files import write_wct_release

@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The ten files of the release, with shared encoder layers equal (one network, truncated)."""
    root = tmp_path_factory.mktemp("wct_models")
    vgg, decoders = write_wct_release(root)
    return root, vgg, decoders


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
    assert m.reference_encoder.startswith("the authors' vgg_normalised_conv{1..5}_1.t7")
    assert "one pass" in m.reference_encoder and m.level_encoders is None  # truncations: one encoder serves all
    with torch.inference_mode():
        assert m(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_five_different_encoders_each_serve_their_own_level_and_survive_saving(tmp_path):
    """PytorchWCT builds e1..e5 from five files and never needs them to agree: neither do we."""
    from safin.io.torch7 import sequential_state
    from safin.methods import load_weights, save_weights

    root = tmp_path / "models"
    write_wct_release(root, seed=5, independent=True)
    m = build("wct", encoder_weights="random").load_reference(root)
    assert m.level_encoders is not None and "one per level" in m.reference_encoder
    for k, conv in ((1, "conv1_1"), (3, "conv3_1"), (5, "conv5_1")):
        idx = {1: 2, 3: 16, 5: 42}[k]
        want = sequential_state(root / f"vgg_normalised_conv{k}_1.t7")[f"{idx}.weight"]
        assert torch.equal(getattr(m.level_encoders[str(k)], conv).weight, want)
    assert not torch.equal(m.level_encoders["1"].conv1_1.weight, m.level_encoders["5"].conv1_1.weight)
    content, style = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    with torch.inference_mode():
        ours = m(content, style)
        m2 = build("wct", encoder_weights="random").load_reference(root)
        m2.level_encoders = None  # one encoder (level 5's file) for every level: a different image
        assert (m2(content, style) - ours).abs().max() > 1e-3
    save_weights(m, tmp_path / "w.pt", with_encoder=True)
    back = build("wct", encoder_weights="random")
    load_weights(back, tmp_path / "w.pt")
    with torch.inference_mode():
        assert torch.equal(back(content, style), ours)


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
    with pytest.raises(InputError, match=r"no vgg_normalised_conv\{1..5\}_1.t7 given.*bethgelab"):
        build("wct", encoder_weights="random").load_reference(*decoders)
    m = build("wct", encoder_weights="random").load_reference(*decoders, our_encoder=True)
    assert m.reference_encoder.startswith("this suite's")
    with pytest.raises(InputError, match="missing feature_invertor_conv1_1.t7"):
        build("wct", encoder_weights="random").load_reference(*decoders[1:])
