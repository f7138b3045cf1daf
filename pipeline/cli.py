"""The ``safin`` command: one subcommand per pipeline stage, plus small tools."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from safin.runtime.cpu_memory import keep_freed_memory


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    from safin.io.weights import REGISTRY

    from .fetch import fetch_weights
    from .params import load_params

    names = args.asset or load_params(args.params).get("fetch_weights", {}).get("assets") or list(REGISTRY)
    fetch_weights(names, Path(args.manifest) if args.manifest else None)
    return 0


def _cmd_fetch_release(args: argparse.Namespace) -> int:
    from safin.io.releases import RELEASES

    from .params import load_params
    from .pretrained import folder_for, load_release

    params = load_params(args.params)
    methods = args.method or list(params["pretrained"]["methods"]) or sorted(RELEASES)
    for m in methods:
        folder = Path(args.folder) if args.folder else folder_for(params, m)
        model, files = load_release(m, folder)  # loaded before any checksum is recorded
        for name, f in files.items():
            print(f"{m}: {name}: {f['path']}\n  from {f['from']}\n  sha256 {f['sha256']} ({f['checksum']})")
        print(f"{m}: loaded by the method ({getattr(model, 'reference_encoder', 'the authors encoder')})")
    return 0


def _cmd_verify_release(args: argparse.Namespace) -> int:
    from .params import load_params
    from .pretrained import folder_for, load_release
    from .verify_release import VerifyError, evidence_for, fetch_evidence, verify, write

    from safin.io.releases import ReleaseError, record_loaded
    from safin.methods import InputError

    params = load_params(args.params)
    folder = Path(args.folder) if args.folder else folder_for(params, args.method)
    try:
        fetch_evidence(evidence_for(args.method))  # what it needs besides the release first: one line if it cannot
        model, files = load_release(args.method, folder, record=False)
        doc = verify(args.method, model=model)
    except (VerifyError, ReleaseError, InputError) as e:  # the check could not run: not a failed check
        print(f"safin verify-release: {e}", file=sys.stderr)
        return 2
    if doc["passed"]:  # a file is recorded as the release's only once it gave the authors' outputs
        record_loaded(args.method, files)
    if args.out:
        print(f"written: {write(doc, Path(args.out))}")
    return {True: 0, False: 1}.get(doc["passed"], 2)


def _cmd_fetch_data(args: argparse.Namespace) -> int:
    from .fetch import fetch_data
    from .params import load_params

    fetch_data(load_params(args.params))
    return 0


def _cmd_prepare_images(args: argparse.Namespace) -> int:
    from safin.io.weights import cache_dir
    from safin.io.datasets import prepare_images

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


def _cmd_stylize(args: argparse.Namespace) -> int:
    from safin.methods import InputError

    from .stylize import build_model, expand_paths, stylize_files

    contents = expand_paths(args.content)
    if len(args.style) == 1:
        groups = [[s] for s in expand_paths(args.style[0])]
    else:
        groups = [[]]
        for spec in args.style:
            files = expand_paths(spec)
            if len(files) != 1:
                raise InputError(f"--style {spec}: names {len(files)} files; with several --style options "
                                 f"each must name one image (they are blended)")
            groups[0].append(files[0])
    if args.weights and len(args.weights) != len(groups[0]):
        raise InputError(f"--weights: {len(args.weights)} values for {len(groups[0])} styles")
    masks = [expand_paths(m)[0] for m in args.mask] if args.mask else None
    if masks and len(masks) != len(groups[0]):
        raise InputError(f"--mask: {len(masks)} masks for {len(groups[0])} styles; give one mask per --style")
    model = build_model(args.method, checkpoint=args.checkpoint, reference=args.reference or (),
                        our_encoder=args.our_encoder,
                        encoder_weights=args.encoder_weights, device=args.device, precision=args.precision)
    written = stylize_files(model, contents, groups, Path(args.output), alpha=args.alpha,
                            preserve_color=args.preserve_color, weights=args.weights, masks=masks,
                            content_size=args.content_size, style_size=args.style_size, ext=args.ext,
                            resize=args.resize)
    for w in written:
        print(w)
    expected = len(contents) * len(groups)
    return 0 if len(written) == expected else 1


def _cmd_train(args: argparse.Namespace) -> int:
    from .params import load_params
    from .train import parse_settings, run

    try:
        settings = parse_settings(args.settings)
    except ValueError as e:
        print(f"safin train: {e}", file=sys.stderr)
        return 2
    try:
        options = {"max_iter": args.max_iter, "device": args.device, "out_dir": args.out_dir}
        # an option not given leaves a --set of the same key alone (it used to override it with None: dropped)
        run(load_params(args.params), args.method, only_seed=args.seed,
            **{**settings, **{k: v for k, v in options.items() if v is not None},
               "progress": not args.no_progress, "on_mismatch": args.on_mismatch})
    except KeyboardInterrupt:
        print("training interrupted; the checkpoint is saved: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import submit
    from .params import load_params

    doc = submit(load_params(args.params), Path.cwd(), dry_run=args.dry_run)
    if args.dry_run:
        for key in ("prepare_script", "array_script", "repro_script"):
            print(f"# ---- {doc[key]}")
            print(Path(doc[key]).read_text())
        print(f"# {doc['tasks']} training tasks; submit with: safin cluster submit (the array waits on the prepare "
              "job and the repro job on the array: sbatch --dependency=afterok:JOB)")
    else:
        print(f"submitted prepare as job {doc['prepare_job']}, the training array {doc['array_job']} "
              f"({doc['tasks']} tasks) after it, and dvc repro as job {doc['repro_job']} (after every task "
              f"succeeds); logs in {Path(doc['array_script']).parent}/logs")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from evaluation.curves import plot_loss_curves

    from .params import load_params

    params = load_params(args.params)
    c = params["curves"]
    print(plot_loss_curves(Path(params["train"]["out"]), Path(args.out or c["out"]), methods=list(c["methods"])))
    return 0


def _cmd_stylize_pairs(args: argparse.Namespace) -> int:
    from .params import load_params
    from .stylize import load_pairs, stylize_method, write_pair_inputs

    params = load_params(args.params)
    if args.inputs_only:
        print(f"{len(write_pair_inputs(params))} input images in {Path(params['stylize']['out']) / 'inputs'}")
        return 0
    methods = args.method or list(params["stylize"]["methods"])
    loaded = load_pairs(params)  # read once for every method of this call
    if not args.method:  # everything, as the stages pairs + stylize@METHOD + grids do
        write_pair_inputs(params, loaded)
    for m in methods:
        written = stylize_method(params, m, loaded)
        print(f"{sum(f.suffix == '.png' for f in written)} images in {Path(params['stylize']['out']) / m}")
    if not args.method:
        return _cmd_grids(args)
    return 0


def _cmd_grids(args: argparse.Namespace) -> int:
    from evaluation.grids import draw_all

    from .method_info import labels
    from .params import load_params

    params = load_params(args.params)
    methods = list(params["stylize"]["methods"])
    stylized = Path(params["stylize"]["out"])
    n_pairs = len(list((stylized / "inputs").glob("*_content.png")))
    if n_pairs == 0:
        raise FileNotFoundError(f"{stylized / 'inputs'}: no pairs (run stage pairs, or safin stylize-pairs)")
    grids = draw_all(stylized, Path(params["stylize"]["grids"]), methods, n_pairs, labels=labels(methods))
    print("grids: " + ", ".join(str(g) for g in grids))
    return 0


def _cmd_check_methods(args: argparse.Namespace) -> int:
    from .methods import check
    from .params import load_params

    return check(load_params(args.params))


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import list_methods

    for row in list_methods():
        if "problem" in row:
            print(f"{row['name']:<14} BROKEN: {row['problem']}")
        else:
            origin = "built in" if row["builtin"] else f"plugin {row['distribution'] or ''} {row['version'] or ''}"
            print(f"{row['name']:<14} {row['label']:<28} {origin.strip():<28} {row['class']}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .params import load_params

    doc = evaluate(load_params(args.params))
    for method, metrics in doc["metrics"].items():
        print(method, "  ".join(f"{k}={v['mean']:.4g}" for k, v in metrics.items()))
    return 0


def _cmd_regression(args: argparse.Namespace) -> int:
    from evaluation.regression import gate, update

    from .params import load_params

    params = load_params(args.params)
    r = params["regression"]
    reference, current = Path(args.reference or r["reference"]), Path(args.current or r["current"])
    train_dir = Path(params["train"]["out"])
    if args.update:
        import datetime

        import torch

        from safin.runtime.cpu_isa import describe

        provenance = {"cpu": describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "date": datetime.date.today().isoformat(), "precision": params["train"].get("precision")}
        update(reference, current, per_pair_path=Path(params["evaluate"]["out"]) / "per_pair.csv",
               train_dir=train_dir, provenance=provenance)
        print(f"{reference}: updated from {current}, its per-pair metrics and the training losses in {train_dir}")
        return 0
    code, text = gate(reference, current, r.get("tolerances", {}), strict=args.strict, train_dir=train_dir)
    print(text)
    return code


def _cmd_isa_check(args: argparse.Namespace) -> int:
    from safin.runtime import cpu_isa

    from .isa_check import isa_check

    available = cpu_isa.emulatable()
    settings = args.settings.split(",") if args.settings else available
    for s in settings:
        if s not in available:
            print(f"isa-check: this CPU cannot run {s!r} kernels; it can run {', '.join(available)}")
            return 2
    methods = [m for m in (args.methods or "").split(",") if m] or None
    return isa_check(settings, pairs=args.pairs, params_path=args.params, out_path=Path(args.out) if args.out else None,
                     methods=methods)


def _cmd_report(args: argparse.Namespace) -> int:
    from .params import load_params
    from .report import report

    md, page = report(load_params(args.params))
    print(f"{md}\n{page}")
    return 0


def _cmd_survey(args: argparse.Namespace) -> int:
    from .params import load_params
    from .survey import plan, simulate_responses, study_dir, tally_stage

    params = load_params(args.params)
    if args.action == "build-study":
        from .survey import build_study_stage

        out = Path(args.out or args.study or study_dir(params))
        print(build_study_stage(params, Path(args.receipt) if args.receipt else None, out))
    elif args.action == "serve":
        from survey.server import serve

        from survey.recruitment import RecruitmentConfig

        from survey.form import intro_texts

        serve(Path(args.study or study_dir(params)), host=args.host, port=args.port,
              recruitment=RecruitmentConfig.from_params(params["survey"].get("recruitment")),
              texts=intro_texts(params["survey"].get("consent"), params["survey"].get("instructions")),
              public_url=args.public_url, forwarded_allow_ips=args.forwarded_allow_ips)
    elif args.action == "export-static":
        from survey.static import export_static

        from survey.form import intro_texts

        pages = export_static(Path(args.study or study_dir(params)),
                              Path(args.out or Path(params["survey"]["out"]) / "static"),
                              texts=intro_texts(params["survey"].get("consent"), params["survey"].get("instructions")),
                              collect=args.collect or params["survey"].get("collect_url"))
        print(f"{len(pages)} participant pages in {pages[0].parent}")
    elif args.action == "preregister":
        from .survey import preregister

        path, sha = preregister(params, Path(args.out) if args.out else None)
        print(f"{path}: registered, sha256 {sha} (also in {path}.sha256): deposit both where you register the study")
    elif args.action == "plan":
        print(plan(params, Path(args.out) if args.out else None))
    elif args.action == "simulate":
        print(simulate_responses(params, Path(args.out or "outputs/survey/simulated_responses.csv")))
    else:
        doc = tally_stage(params)
        label = " (SIMULATED)" if doc["simulated"] else ""
        for q, shares in doc["shares"].items():
            print(f"{q}{label}: " + ", ".join(f"{m} {v['share']:.1%} [{v['ci95'][0]:.1%}, {v['ci95'][1]:.1%}]"
                                            for m, v in shares.items() if not m.startswith("_")))
        for q, scale in doc.get("luce_scale", {}).items():
            if scale:
                print(f"{q}{label}: Luce theta " + ", ".join(f"{m} {t['value']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}]"
                                                          for m, t in scale["theta"].items()))
        pw = doc.get("power") or {}
        if pw.get("design"):
            print(f"power to detect {pw['better']} over {pw['than']} by {pw['effect_log_odds']} log-odds: "
                  f"{pw['design']['power']:.2f} with {pw['design']['participants']} participants x {pw['design']['sets']} "
                  f"sets; participants needed for {pw['target']}: {pw['participants_needed_for_target']}")
        excluded = doc["participants"]["excluded"]
        print("excluded: " + "; ".join(f"{k}: {len(v)} {v}" for k, v in excluded.items()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from evaluation.speed import benchmark, table, write

    from .params import load_params

    params = load_params(args.params)
    b = params["benchmark"]
    sizes = [] if args.train_only else args.size or list(b["sizes"])
    wct_size = 0 if args.train_only else int(b.get("wct_size") or 0) if args.wct_size is None else args.wct_size
    doc = benchmark(args.method or list(b["methods"]), sizes, runs=args.runs or int(b["runs"]),
                    warmup=int(b["warmup"]), train_batch=int(b["train_batch"]), train_size=int(b["train_size"]),
                    train_runs=int(b["train_runs"]) if args.train_runs is None else args.train_runs,
                    device=b.get("device", "auto"), timeout=float(b["timeout"]),
                    naive=bool(b["naive"]) and not args.no_naive, warmup_override=args.warmup,
                    precision=args.precision or str(b.get("precision", "auto")),
                    wct_size=wct_size, train_warmup=args.train_warmup, compile=args.compile)
    if args.loader_workers:
        from evaluation.speed import loader_throughput

        data, train = Path(params["data"]["out"]), params["train"]
        doc["loader"] = []
        for workers in args.loader_workers:
            r = loader_throughput(str(data / "content"), str(data / "style"), crop=int(train["crop"]),
                                  batch=int(train["batch_size"]), workers=workers)
            doc["loader"].append(r)
        print(table({"results": [], "loader": doc["loader"]}))
    print(f"{write(doc, Path(args.out or b['out']))}; naive/fast time ratios: {doc['ratios']}")
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

    s = sub.add_parser("fetch-release", help="fetch and check the authors' released weights of a method (the "
                                             "pretrained profile's stage train@METHOD does it too)")
    s.add_argument("--method", action="append", choices=["adain", "sanet", "safin", "wct"],
                   help="repeatable; default: pretrained.methods, else every release")
    s.add_argument("--folder", help="your own downloads of the files (default: pretrained.folders.METHOD, "
                                    "else pretrained.folder/METHOD)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_fetch_release)

    s = sub.add_parser("verify-release", help="run our import of the authors' release on the inputs whose outputs "
                                              "the authors committed, and compare (PSNR, largest difference)")
    s.add_argument("--method", required=True, help="sanet or wct (the repositories that commit their outputs)")
    s.add_argument("--folder", help="your own downloads of the release (default: as fetch-release)")
    s.add_argument("--out", help="write the per-image comparison as JSON here")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_verify_release)

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

    s = sub.add_parser("stylize", help="stylize images with one method (files, folders or globs)")
    s.add_argument("--method", required=True, help="safin, safin_fin, sanet, sanet_safin, adain, wct (the paper's), adaattn, stytr2, an installed "
                                                    "plugin's name, or package.module:Class")
    s.add_argument("--content", required=True, help="image, folder or glob")
    s.add_argument("--style", required=True, action="append",
                   help="image, folder or glob; repeat to blend several styles (with --weights or --mask)")
    s.add_argument("--output", default="outputs/stylized", help="folder (or a file name for one image)")
    s.add_argument("--checkpoint", help="weights trained by this project (safin train)")
    s.add_argument("--reference", nargs="+", metavar="FILE",
                   help="the authors' released files: adain: decoder.pth vgg_normalised.pth; sanet: "
                        "decoder_iter_N.pth transformer_iter_N.pth vgg; safin: decoder.pth vgg; wct: the folder of its ten .t7 files; adaattn: latest_net_decoder.pth "
                        "latest_net_transformer.pth latest_net_adaattn_3.pth vgg, or the folder holding them; stytr2: decoder_iter_160000.pth "
                        "transformer_iter_160000.pth embedding_iter_160000.pth vgg, or the folder (experiments/) — their "
                        "vgg_normalised.pth last: their decoders were trained on it")
    s.add_argument("--our-encoder", action="store_true",
                   help="with --reference and no vgg file: run the authors' decoder on this suite's derived "
                        "encoder anyway (it differs per channel from theirs: colours and contrast shift)")
    s.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1]")
    s.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    s.add_argument("--weights", type=float, nargs="+", help="interpolation weights, one per --style")
    s.add_argument("--mask", action="append", help="mask image per --style (white = use that style)")
    s.add_argument("--content-size", type=int, default=512, help="px, as --resize says; 0 keeps the size")
    s.add_argument("--style-size", type=int, default=512, help="px, as --resize says; 0 keeps the size")
    s.add_argument("--resize", default="reference", choices=["reference", "longer", "shorter", "shorter-crop", "square", "square-bicubic", "content", "none"],
                   help="reference (default): as the method's own test script (AdaIN: shorter side; SANet: none, its own "
                        "size; SAFIN: squashed to a square, bilinear; AdaAttN: the same, bicubic; StyTr²: the shorter side, then the middle square; WCT: content's longer side, the style to the content's "
                        "size when the content was resized); longer: the "
                        "longer side, aspect kept, for every method (what the 40-pair stage does). The references "
                        "upscale small images too")
    s.add_argument("--ext", default=".png")
    s.add_argument("--device", default="auto")
    s.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp64"],
                   help="fp32 (default): the authors' precision (CUDA: TF32 off); auto/bf16: the opt-in fast path, "
                        "bf16 convolutions where the device runs bf16 natively")
    s.add_argument("--encoder-weights", default="normalised", choices=["normalised", "plain", "random"])
    s.set_defaults(func=_cmd_stylize)

    s = sub.add_parser("train", help="train one method (stage train@METHOD); resumes from its last checkpoint")
    s.add_argument("--method", required=True, help="a name in train.methods, or package.module:Class (one-off)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--max-iter", type=int, help="override train.max_iter")
    s.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:1)")
    s.add_argument("--out-dir", help="override the main run's folder (default train.out/METHOD); a replicate seed S "
                   "goes to OUT_DIR/seeds/seed-S")
    s.add_argument("--seed", type=int, help="train only this seed's run: train.seed, or one of train.seeds "
                                            "(into train.out/METHOD/seeds/seed-S); default: every seed in turn")
    s.add_argument("--no-progress", action="store_true")
    choice = s.add_mutually_exclusive_group()
    choice.add_argument("--restart", action="store_const", const="restart", dest="on_mismatch",
                        help="the last checkpoint is of another recipe or code: set it aside, start at 0")
    choice.add_argument("--resume-anyway", action="store_const", const="resume", dest="on_mismatch",
                        help="the last checkpoint is of another recipe or code: resume it, recorded in summary.json")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="override any train.* key for this run, value in YAML (repeatable), e.g. "
                        "--set compile=true --set deterministic=false --set num_workers=8 --set live=false")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("stylize-pairs", help="stylize the evaluation pairs (stages pairs, stylize@METHOD, grids)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--method", action="append", help="only this method (repeatable; stage stylize@METHOD); "
                                                     "default: the inputs, every stylize.methods and the grids")
    s.add_argument("--inputs-only", action="store_true", help="only write the pairs' inputs (stage pairs)")
    s.set_defaults(func=_cmd_stylize_pairs)

    s = sub.add_parser("grids", help="comparison grids of the stylized pairs (stage grids)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_grids)

    s = sub.add_parser("check-methods", help="resolve every method params.yaml names and check each plugin's "
                                             "contract (stage check_methods)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_check_methods)

    s = sub.add_parser("methods", help="list the methods available here: built in and installed plugins")
    s.set_defaults(func=_cmd_methods)

    s = sub.add_parser("evaluate", help="metrics per pair and method with bootstrap CIs (stage evaluate)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("regression", help="CI gate: compare metrics with the frozen reference")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--reference", help="default: regression.reference")
    s.add_argument("--current", help="default: regression.current")
    s.add_argument("--strict", action="store_true", help="fail on any change beyond tolerance, better or worse")
    s.add_argument("--update", action="store_true", help="make the current metrics the new reference")
    s.set_defaults(func=_cmd_regression)

    s = sub.add_parser("isa-check", help="the regression gate's computation under each instruction set this CPU "
                                         "can emulate (ci profile), held against the reference")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--settings", help="comma-separated, of default,avx2,avx512 (default: every one this CPU can run)")
    s.add_argument("--pairs", type=int, default=4, help="evaluation pairs to stylize and measure (default 4)")
    s.add_argument("--methods", help="comma-separated: only these methods' training and pairs (default: every "
                                     "method of the reference)")
    s.add_argument("--out", help="write the summary here as JSON")
    s.set_defaults(func=_cmd_isa_check)

    s = sub.add_parser("report", help="claims table and the Markdown/HTML report (stage report)")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("survey", help="user study: plan, simulate responses, tally (stage survey_tally)")
    s.add_argument("action", choices=["build-study", "serve", "export-static", "preregister", "plan", "simulate",
                                      "tally"])
    s.add_argument("--study", help="study folder (default survey.study; private: it holds the plan)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--public-url", help="serve: the study's address behind a reverse proxy (https://example.org/study):"
                                        " printed links use it, and its path prefixes every URL the pages use")
    s.add_argument("--collect", help="export-static: post each answer to this server (its base URL, e.g. the "
                                     "serve command's public URL) instead of a download at the end")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                   help="serve: addresses whose X-Forwarded-* headers are trusted (the proxy's; default 127.0.0.1)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--out", help="output file (plan, simulate, preregister)")
    s.add_argument("--receipt", help="build-study: also write what was built (no tokens) to this JSON file (stage "
                                     "survey_study)")
    s.set_defaults(func=_cmd_survey)

    s = sub.add_parser("cluster", help="the profile's training runs as a SLURM job array, then dvc repro after it")
    s.add_argument("action", choices=["submit"])
    s.add_argument("--dry-run", action="store_true", help="write and print the three sbatch scripts; submit nothing")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_cluster)

    s = sub.add_parser("bench", help="inference/training speed and memory vs the naive paths (stage benchmark)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--method", action="append", help="method (repeatable); default benchmark.methods")
    s.add_argument("--size", action="append", type=int, help="size in px (repeatable); default benchmark.sizes")
    s.add_argument("--runs", type=int)
    s.add_argument("--train-runs", type=int)
    s.add_argument("--warmup", type=int, help="override benchmark.warmup")
    s.add_argument("--no-naive", action="store_true", help="skip the naive paths (e.g. where they cannot fit)")
    s.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp64"], help="fast path's precision (default benchmark.precision)")
    s.add_argument("--wct-size", type=int, help="also time the WCT transform alone at this size (0: skip)")
    s.add_argument("--train-only", action="store_true", help="only the training throughput (no inference sizes)")
    s.add_argument("--train-warmup", type=int, default=1, help="untimed training steps first (default 1)")
    s.add_argument("--compile", action="store_true", help="training throughput with the loss step under torch.compile")
    s.add_argument("--loader-workers", type=int, action="append",
                   help="also time the training data loader (data.out images, train.crop/batch_size) with this "
                        "many worker processes (repeatable)")
    s.add_argument("--out", help="default benchmark.out")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser("curves", help="training-loss curves of curves.methods (paper Fig. 5b: sanet vs sanet_safin; stage curves)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--out", help="default curves.out")
    s.set_defaults(func=_cmd_curves)

    s = sub.add_parser("profile", help="show or switch the active profile (ci, demo, paper, pretrained, styleid)")
    s.add_argument("name", nargs="?")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=_cmd_profile)
    return p


#: commands whose process keeps freed CPU memory for reuse (safin.runtime.cpu_memory; docs/performance.md); training keeps the C library's default (not measured with it)
KEEP_FREED_MEMORY = {"stylize", "stylize-pairs", "evaluate", "bench", "check-methods"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in KEEP_FREED_MEMORY:
        keep_freed_memory()
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
