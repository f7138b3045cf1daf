"""Methods from other packages: entry points, one-off specs, and the contract check that names the
plugin and the problem in one line before anything trains."""
import subprocess
import sys
import textwrap

import pytest

import baselines
from baselines.plugins import PluginError, check_contract, check_methods, describe, resolve
from safin.methods import METHODS

GOOD = '''
import torch
from torch import nn
from safin.methods import StyleTransfer


class Tiny(StyleTransfer):
    name = "{name}"
    label = "Tiny"
    size_multiple = 4

    def __init__(self, encoder_weights="normalised"):
        super().__init__()
        self.decoder = nn.Conv2d(3, 3, 1)

    def trainable(self):
        return list(self.decoder.parameters())

    def encode_style(self, style):
        return style.mean((2, 3), keepdim=True)

    def transfer(self, content, codes, mix, alpha):
        return self.decoder(content + alpha * (mix(codes) - content.mean((2, 3), keepdim=True)))

    def losses(self, content, style):
        out = self.transfer(content, [self.encode_style(style)], lambda c: c[0], 1.0)
        total = ((out - content) ** 2).mean()
        return {{"total": total}}
'''

BREAKAGES = {
    "shape": ("    def transfer(self, content, codes, mix, alpha):\n        return self.decoder(",
              "    def transfer(self, content, codes, mix, alpha):\n        content = content[..., ::2, ::2]\n"
              "        return self.decoder(", "returned (1, 3, 20, 24)"),
    "no_losses": ("    def losses(self, content, style):", "    def _unused(self, content, style):",
                  "does not implement losses()"),
    "no_total": ('return {"total": total}', 'return {"mse": total}', "with a 'total' entry"),
    "no_grad": ('return {"total": total}', 'return {"total": total.detach() + 1}', "no gradient"),
    "nan": ('return {"total": total}', 'return {"total": total * float("nan")}', "finite scalar"),
    "constructor": ('def __init__(self, encoder_weights="normalised"):', "def __init__(self, size):",
                    "cannot be constructed"),
}


def write_package(root, package, source, entry_points=None, dist="safin-testplugin"):
    """A package under ``root`` and, with ``entry_points``, an installed distribution's metadata
    (``*.dist-info`` on sys.path is what ``importlib.metadata`` reads)."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(textwrap.dedent(source))
    if entry_points:
        info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
        (info / "top_level.txt").write_text(package + "\n")
        (info / "RECORD").write_text("")
        (info / "entry_points.txt").write_text("[safin.methods]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return root


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(METHODS)
    yield tmp_path, set()
    for name in set(METHODS) - set(before):  # only what this test registered
        METHODS.pop(name)
    for mod in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[mod]


def test_builtins_resolve_and_an_unknown_name_says_what_exists(site):
    assert resolve("safin") is METHODS["safin"]
    with pytest.raises(PluginError, match="unknown method 'cyclegan'; built in: safin, safin_fin.*package.module:Class"):
        resolve("cyclegan")


def test_an_installed_entry_point_is_found_registered_and_described(site):
    root, _ = site
    write_package(root, "plug_good", GOOD.format(name="tiny"), {"tiny": "plug_good:Tiny"})
    cls = resolve("tiny")
    assert METHODS["tiny"] is cls and baselines.build("tiny").name == "tiny"
    check_contract(cls, "random")
    info = describe(cls)
    assert info["label"] == "Tiny" and info["builtin"] is False
    assert (info["distribution"], info["version"]) == ("safin-testplugin", "0.3")
    # the plugin's own code is in its training-code digest: editing it changes the record
    before = info["code_sha256"]
    src = root / "plug_good" / "__init__.py"
    src.write_text(src.read_text().replace("** 2).mean()", "** 2).mean() * 2"))
    assert describe(cls)["code_sha256"] != before


def test_a_one_off_class_by_path(site):
    root, _ = site
    write_package(root, "plug_path", GOOD.format(name="bypath"))
    assert resolve("plug_path:Tiny").name == "bypath"
    with pytest.raises(PluginError, match="'plug_path:Nope': cannot import it"):
        resolve("plug_path:Nope")


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(site):
    root, _ = site
    write_package(root, "plug_broken", "import does_not_exist_anywhere\n", {"broken_m": "plug_broken:X"})
    with pytest.raises(PluginError) as e:
        resolve("broken_m")
    msg = str(e.value)
    assert "plugin 'broken_m' (plug_broken:X, from safin-testplugin 0.3): fails to import" in msg
    assert "does_not_exist_anywhere" in msg and "\n" not in msg


def test_an_entry_point_must_name_its_class_and_not_take_a_builtin_name(site):
    root, _ = site
    write_package(root, "plug_named", GOOD.format(name="other") + GOOD.format(name="safin").replace("Tiny", "Taken"),
                  {"mine": "plug_named:Tiny", "safin2": "plug_named:Taken", "notaclass": "plug_named:torch"})
    with pytest.raises(PluginError, match="entry point is named 'mine' but the class's `name` is 'other'"):
        resolve("mine")
    with pytest.raises(PluginError, match="not a subclass of safin.methods.StyleTransfer"):
        resolve("notaclass")


@pytest.mark.parametrize("kind", list(BREAKAGES))
def test_a_contract_breach_is_one_line_naming_the_method(site, kind):
    root, _ = site
    old, new, expected = BREAKAGES[kind]
    source = GOOD.format(name=f"bad_{kind}")
    assert old in source
    write_package(root, f"plug_{kind}", source.replace(old, new))
    cls = resolve(f"plug_{kind}:Tiny")
    with pytest.raises(PluginError) as e:
        check_contract(cls, "random")
    msg = str(e.value)
    assert msg.startswith(f"method 'bad_{kind}' (plug_{kind}:Tiny): ") and expected in msg and "\n" not in msg, msg


def test_check_methods_reports_every_problem_and_describes_the_rest(site):
    root, _ = site
    write_package(root, "plug_two", GOOD.format(name="fine"), {"fine": "plug_two:Tiny", "gone": "plug_two:Missing"})
    info, problems = check_methods(["adain", "fine", "gone", "nosuch"], "random")
    assert set(info) == {"adain", "fine"} and info["adain"]["builtin"] and info["adain"]["label"] == "AdaIN"
    assert len(problems) == 2 and "'gone'" in problems[0] and "unknown method 'nosuch'" in problems[1]


def test_the_pipeline_stops_at_its_first_stage_naming_the_plugin(tmp_path):
    """`safin check-methods` (the first stage of dvc repro) with a broken plugin in params.yaml: one line
    naming it, exit 2, nothing written."""
    import yaml

    from tests.conftest import REPO

    write_package(tmp_path / "site", "plug_cli", "raise RuntimeError('the plugin author forgot something')\n",
                  {"cli_m": "plug_cli:X"})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["methods"].append("cli_m")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{REPO}", "PATH": "/usr/bin:/bin", "SAFIN_OFFLINE": "1",
           **{k: v for k, v in __import__("os").environ.items() if k.startswith("SAFIN_CACHE")}}
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "check-methods", "--params", "params.yaml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("safin check-methods:")]
    assert lines[0] == ("safin check-methods: plugin 'cli_m' (plug_cli:X, from safin-testplugin 0.3): fails to import "
                        "(RuntimeError: the plugin author forgot something)"), res.stderr
    assert "nothing was trained" in lines[-1] and len(lines) == 2
    assert not (tmp_path / "outputs" / "methods").exists()


def test_a_label_is_presentation_and_changes_no_training_digest(tmp_path):
    from safin.training.code import _strip_docstrings
    import ast

    def digest(src):
        return ast.dump(_strip_docstrings(ast.parse(src)), include_attributes=False)

    base = "class M:\n    name = 'm'\n    label = 'M'\n    size_multiple = 8\n"
    assert digest(base) == digest(base.replace("label = 'M'", "label = 'Another label'"))
    assert digest(base) == digest(base.replace("    label = 'M'\n", ""))
    assert digest(base) != digest(base.replace("size_multiple = 8", "size_multiple = 16"))
    assert digest(base) != digest(base.replace("name = 'm'", "name = 'n'"))


def test_load_reference_is_not_training_code():
    from safin.training.code import _strip_docstrings
    import ast

    def digest(src):
        return ast.dump(_strip_docstrings(ast.parse(src)), include_attributes=False)

    base = "class M:\n    def losses(self):\n        return 1\n"
    with_loader = base + "    def load_reference(self, path):\n        return path\n"
    assert digest(base) == digest(with_loader)
    assert digest(base) != digest(base.replace("return 1", "return 2"))
