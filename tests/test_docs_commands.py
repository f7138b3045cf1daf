"""Every command in the README's and the docs' shell blocks names subcommands, flags, make targets and
DVC stages that exist."""
import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.cli import build_parser

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|sh|shell|console)\n(.*?)^```", re.M | re.S)


def shell_commands(text: str) -> list[str]:
    """The commands of a Markdown text's shell blocks: continuation lines joined, comments dropped,
    split at ``&&``, ``||``, ``;`` and ``|``."""
    out = []
    for _, block in FENCE.findall(text):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                tokens = line.split()
            cmd: list[str] = []
            for t in tokens + ["&&"]:
                if t in ("&&", "||", ";", "|"):
                    if cmd:
                        out.append(shlex.join(cmd))
                    cmd = []
                else:
                    cmd.append(t)
    return out


INLINE = re.compile(r"`((?:safin|make|dvc repro|torchrun|\\.venv/bin/safin) [^`]*)`")


def inline_commands(text: str) -> list[str]:
    """Commands quoted inline (```safin ...```, ```make ...```, ...) outside the shell blocks; optional
    parts in [brackets] and placeholders (``…``, ``...``) are read as written, brackets removed."""
    text = FENCE.sub("", text)
    out = []
    for cmd in INLINE.findall(text):
        cmd = cmd.replace("[", " ").replace("]", " ").replace("|", " ")
        if "…" in cmd or "..." in cmd:
            continue
        out.append(cmd)
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_safin(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Problems of one ``safin ARGS`` command line: unknown subcommands, unknown flags, positional
    values outside their choices."""
    path, positional, skip = ["safin"], 0, 0
    for tok in args:
        if skip:
            skip -= 1
            continue
        subs = _subparsers(parser)
        if tok.startswith("-"):
            flag = tok.split("=", 1)[0]
            options = {s: a for a in parser._actions for s in a.option_strings}
            if flag not in options:
                return [f"`{' '.join(path)}` has no option {flag}"]
            nargs = options[flag].nargs
            if "=" not in tok and nargs in (None, 1):
                skip = 1
            continue
        if subs:
            if tok not in subs:
                return [f"`{' '.join(path)}` has no subcommand {tok!r} (has {', '.join(sorted(subs))})"]
            parser, positional = subs[tok], 0
            path.append(tok)
            continue
        slots = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        if positional < len(slots):
            slot = slots[positional]
            if slot.choices is not None and tok not in slot.choices:
                return [f"`{' '.join(path)}` {slot.dest} must be one of {', '.join(slot.choices)}, not {tok!r}"]
            if slot.nargs in (None, 1):
                positional += 1
    if _subparsers(parser):
        return [f"`{' '.join(path)}` needs a subcommand"]
    return []


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def dvc_stages() -> set[str]:
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = set()
    for name, stage in doc["stages"].items():
        names.add(name)
        if "foreach" in stage:
            names |= {f"{name}@{m}" for m in params["train"]["methods"]}
    return names


def problems(command: str, parser: argparse.ArgumentParser) -> list[str]:
    tokens = shlex.split(command)
    tokens = [t.removeprefix(".venv/bin/") for t in tokens]
    while tokens and "=" in tokens[0] and not tokens[0].startswith("-"):  # VAR=value prefixes
        tokens = tokens[1:]
    if not tokens:
        return []
    if tokens[0] == "safin":
        return check_safin(tokens[1:], parser)
    if "pipeline.cli" in tokens and tokens[tokens.index("pipeline.cli") - 1] == "-m":
        return check_safin(tokens[tokens.index("pipeline.cli") + 1:], parser)
    if tokens[0] == "make":
        return [f"make has no target {t!r}" for t in tokens[1:] if not t.startswith("-") and "=" not in t
                and t not in make_targets()]
    if tokens[0] == "dvc" and len(tokens) > 1 and tokens[1] == "repro":
        return [f"dvc.yaml has no stage {t!r}" for t in tokens[2:] if not t.startswith("-") and t not in dvc_stages()]
    return []


def test_every_documented_command_exists():
    parser = build_parser()
    found, bad = 0, []
    for doc in DOCS:
        text = doc.read_text()
        for cmd in shell_commands(text) + inline_commands(text):
            found += 1
            bad += [f"{doc.relative_to(REPO)}: {cmd}: {p}" for p in problems(cmd, parser)]
    assert found >= 20, f"only {found} shell commands found in the docs"
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_wrong_flag_a_wrong_subcommand_and_a_missing_stage():
    parser = build_parser()
    text = ("```bash\nsafin stylize --method safin --no-such-flag x\nsafin survey tallyy\n"
            "dvc repro train@nope && make reproo\nsafin train \\\n  --method adain --max-iters 3\n```\n")
    cmds = shell_commands(text)
    assert len(cmds) == 5
    found = [problems(c, parser) for c in cmds]
    assert all(found), list(zip(cmds, found))
    assert problems("safin stylize --method safin --alpha 0.5", parser) == []


def test_the_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in ("methods", "training", "performance", "evaluation", "survey", "data-and-weights",
                 "reproducing-the-paper"):
        assert (REPO / "docs" / f"{page}.md").exists() and f"docs/{page}.md" in readme
    for link in re.findall(r"\]\(([^)#]+)[^)]*\)", readme + "".join(p.read_text() for p in DOCS[1:])):
        if not link.startswith("http"):
            assert (REPO / link).exists() or (REPO / "docs" / link).exists(), link
