"""The ``safin`` command: one subcommand per pipeline stage, plus small tools."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    from safin.assets import REGISTRY

    from .fetch import fetch_weights
    from .params import load_params

    names = args.asset or load_params(args.params).get("fetch_weights", {}).get("assets") or list(REGISTRY)
    fetch_weights(names, Path(args.manifest) if args.manifest else None)
    return 0


def _cmd_fetch_data(args: argparse.Namespace) -> int:
    from .fetch import fetch_data
    from .params import load_params

    fetch_data(load_params(args.params))
    return 0


def _cmd_prepare_images(args: argparse.Namespace) -> int:
    from safin.assets import cache_dir
    from safin.data import prepare_images

    report = prepare_images(args.source, args.out, cache=cache_dir() / "datasets", n_images=args.n_images,
                            seed=args.seed, size=args.size, keep_aspect=args.keep_aspect,
                            workers=args.workers, sha256=args.sha256)
    print(report.summary())
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from .params import apply_profile, load_params, profile_names

    if not args.name:
        print(f"active profile: {load_params(args.params).get('profile')}; available: {', '.join(profile_names())}")
        return 0
    values = apply_profile(args.name, Path(args.params))
    print(f"{args.params}: profile {args.name} applied ({len(values)} keys)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safin", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch-weights", help="fetch and verify pretrained weights (stage fetch_weights)")
    s.add_argument("--asset", action="append", help="asset name (repeatable); default: params.yaml's list")
    s.add_argument("--manifest", help="write a JSON manifest of what was fetched here")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_fetch_weights)

    s = sub.add_parser("fetch-data", help="verify the sample set and prepare training images (stage fetch_data)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_fetch_data)

    s = sub.add_parser("prepare-images", help="download/extract/subset/resize any image source into a folder")
    s.add_argument("source", help="folder, archive, or archive URL")
    s.add_argument("out", help="output folder")
    s.add_argument("--n-images", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=512)
    s.add_argument("--keep-aspect", action="store_true")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--sha256", default=None, help="expected sha256 of the archive")
    s.set_defaults(func=_cmd_prepare_images)

    s = sub.add_parser("profile", help="show or switch the active profile (ci, demo, paper)")
    s.add_argument("name", nargs="?")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"safin {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
