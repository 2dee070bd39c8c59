"""Command line of the pipeline: ``python -m pipeline SUBCOMMAND ...``.

Each subcommand is a thin layer over one module. Bad input ends with a one-line message on stderr
and exit code 2; ``python -m pipeline SUBCOMMAND --help`` explains each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from pipeline.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other input error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _at_least(value, least: int, option: str) -> None:
    if value is not None and value < least:
        raise InputError(f"{option} must be at least {least}; got {value}.")


def _positive_number(value, option: str, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} must be a positive {what}; got {value}.")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, or the same file under other names
    except OSError:
        return False


def _never_over_inputs(option: str, output, inputs=(), folders=()) -> None:
    """Refuse an output that is one of the command's input files, or that lies in an input folder
    (``folders``: (folder, what it is) pairs): a command never writes over what it reads."""
    out = Path(output)
    for source in inputs:
        if source is not None and _same_file(out, Path(source)):
            raise InputError(f"{option} {out} is the input {source}: give the output another name "
                             "(an input is never overwritten).")
    for folder, what in folders:
        inside = Path(folder).resolve()
        if out.resolve() == inside or inside in out.resolve().parents:
            raise InputError(f"{option} {out} is inside the {what} {folder}: write it elsewhere (the "
                             f"{what} is an input and is never written to).")


def _output_folder(option: str, out) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{option} {out} is a file, not a folder: give a folder to write into.")


def _cube_info(args) -> int:
    from pipeline.alma.cube import format_info, open_cube

    _positive_number(args.rest_frequency, "--rest-frequency", "frequency in Hz")
    with open_cube(args.cube, rest_frequency_hz=args.rest_frequency) as cube:
        info = cube.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
    return 0


def _simulate(args) -> int:
    from tqdm import tqdm

    from pipeline.alma.interferometer import load_configuration
    from pipeline.alma.simulate import check_output_folder, simulate_set

    if args.n < 1:
        raise InputError("--n must be at least 1")
    if args.size < 16 or args.channels < 1:
        raise InputError("--size must be at least 16 pixels and --channels at least 1")
    _at_least(args.seed, 0, "--seed")
    check_output_folder(args.out)  # a folder holding a set is refused: its truth.csv stays
    load_configuration(args.config)  # a wrong name fails here, before any progress bar
    with tqdm(total=args.n, unit="cube", disable=args.quiet) as bar:
        def progress(done, total, stage):
            bar.update(done - bar.n)

        paths = simulate_set(args.out, n=args.n, seed=args.seed, size=args.size,
                             channels=args.channels, config=args.config, progress=progress)
    if not args.quiet:
        print(f"wrote {len(paths)} cubes and truth.csv to {args.out}")
    return 0


def _train(args) -> int:
    import shlex

    import torch
    from tqdm import tqdm

    from pipeline.alma.train import train

    _at_least(args.threads, 1, "--threads")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m pipeline " + shlex.join(sys.argv[1:])
    bar = None  # made once the options and any checkpoint are accepted: a refused run prints no bar

    def progress(step, steps, stage):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=steps, initial=step, unit="step", disable=args.quiet)
        bar.update(step - bar.n)
        if stage:
            bar.set_postfix_str(stage)

    try:
        path = train(args.task, args.out, steps=args.steps, seed=args.seed, batch_size=args.batch,
                     lr=args.lr, size=args.size, resume=not args.no_resume,
                     checkpoint_every=args.checkpoint_every, progress=progress, command=command)
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint saved in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(f"model written to {path}")
    return 0


def _detect(args) -> int:
    from contextlib import ExitStack

    from tqdm import tqdm

    from pipeline.alma.catalog import region_format, write_catalog, write_regions
    from pipeline.alma.companions import open_companion
    from pipeline.alma.cube import open_cube
    from pipeline.alma.detect import DECORAS_TASKS, MODELS_DIR, SourceFinder, detect, load_networks
    from pipeline.tables import check_output

    # outputs first, then the cube and its companions, then the networks: nothing is loaded or
    # found for a bad name
    inputs = [args.cube, args.pb, args.psf]
    check_output(args.output)
    _never_over_inputs("-o", args.output, inputs=inputs)
    if args.regions:
        region_format(args.regions)
        _never_over_inputs("--regions", args.regions, inputs=inputs)
    with ExitStack() as files:
        cube = files.enter_context(open_cube(args.cube))
        cube.require_beam()
        options = {kind: files.enter_context(open_companion(path, cube, kind))
                   for kind, path in (("pb", args.pb), ("psf", args.psf)) if path}
        models_dir = args.models or MODELS_DIR
        if args.detector == "pipeline":
            options["finder"] = SourceFinder.load(models_dir)
        elif args.detector == "decoras":
            options["networks"] = load_networks(models_dir, DECORAS_TASKS)
        with tqdm(total=None, unit="stage", disable=args.quiet) as bar:
            def progress(done, total, stage):
                bar.total = total
                bar.set_description(stage)
                bar.update(done - bar.n)

            catalog = detect(cube, args.detector, progress=progress, keep_sidelobes=args.keep_sidelobes, **options)
            bar.update(bar.total - bar.n)
        write_catalog(catalog, args.output)  # atomic, as are the regions
        if args.regions:
            write_regions(catalog, cube, args.regions)
    if not args.quiet:
        print(catalog.meta.get("sidelobe_check", ""))
        print(f"{len(catalog)} sources -> {args.output}" + (f", regions -> {args.regions}" if args.regions else "")
              + (" (fluxes primary-beam corrected)" if catalog.meta.get("pb_corrected")
                 else " (fluxes uncorrected for the primary beam)"))
    return 0


def _evaluate(args) -> int:
    from pipeline.alma.evaluate import evaluate_files, format_report

    for option, path in (("--truth", args.truth), ("--catalog", args.catalog)):
        if Path(path).is_dir():
            raise InputError(f"{option} {path} is a folder, not a file: give the CSV (or VOTable) file.")
    _at_least(args.image_size, 1, "--image-size")
    _positive_number(args.channel_width_kms, "--channel-width-kms", "channel width in km/s")
    result = evaluate_files(args.truth, args.catalog, rule=args.rule, image_size_px=args.image_size,
                            channel_width_kms=args.channel_width_kms)
    print(json.dumps(result, indent=2, default=float) if args.json else format_report(result))
    return 0


def _index(args) -> int:
    from tqdm import tqdm

    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    _at_least(args.size, 32, "--size")  # the network's last feature maps are size / 32 pixels
    galaxies = GalaxySet.open(args.catalog, images_dir=args.images_dir)
    for note in galaxies.notes:
        print(f"note: {note}", file=sys.stderr)
    with tqdm(total=len(galaxies), unit="image", disable=args.quiet) as bar:
        def progress(done, total):
            bar.update(done - bar.n)

        store = build_store(galaxies, args.out, backbone=args.model, weights=args.weights, size=args.size,
                            metric=args.metric, kind=args.kind, engine=args.engine, scheduler=args.scheduler,
                            progress=progress)
    if not args.quiet:
        print(store.describe())
        print(f"-> {args.out}")
    return 0


def _search(args) -> int:
    from pipeline.oneshot import search
    from pipeline.oneshot.stats import check_label, format_statistics
    from pipeline.oneshot.store import FeatureStore, image_features
    from pipeline.tables import check_output, write_table

    if (args.prototype is None) == (args.prototype_image is None):
        raise InputError("Give the prototype as --prototype ID or --prototype-image FILE (one of them).")
    if (args.label is None) != (args.positive is None):
        raise InputError("--label and --positive go together: the column to count and the value that counts.")
    if not 1 <= args.n <= search.MAX_N:
        raise InputError(f"--n (neighbours per query) must be between 1 and {search.MAX_N}; got {args.n}.")
    if not 1 <= args.iterations <= search.MAX_ITERATIONS:
        raise InputError(f"--iterations must be between 1 (a direct search) and {search.MAX_ITERATIONS}; "
                         f"got {args.iterations}.")
    check_output(args.output)
    _never_over_inputs("-o", args.output, inputs=[args.prototype_image], folders=[(args.index, "index folder")])
    store = FeatureStore.open(args.index)
    if args.label:
        check_label(store.catalog, args.label, args.positive)
    # an id must be in the store, and is no neighbour of itself; an image is no galaxy of the store
    available = len(store.catalog) if args.prototype is None else search.available_neighbours(store, args.prototype)
    if args.n > available:
        others = "other galaxies" if args.prototype is not None else "galaxies"
        raise InputError(f"--n {args.n} asks for more neighbours than there are: the index holds {available} "
                         f"{others}. Use --n {available} or less.")
    prototype = args.prototype if args.prototype is not None else image_features(store, args.prototype_image)
    if args.iterations > 1:
        result = search.recursive(store, prototype, args.n, args.iterations)
    else:
        result = search.one_shot(store, prototype, args.n)
    write_table(result, args.output)
    if not args.quiet:
        print(f"{len(result)} galaxies -> {args.output} ({store.meta['model_label']}, {store.index.describe()})")
    if args.label:
        if args.iterations > 1:
            for s in search.iteration_statistics(store, result, args.label, args.positive, prototype):
                print(f"iteration {s['iteration']} ({s['total']} found): {format_statistics(s)}")
                print(f"  direct query of {s['total']}: {format_statistics(s['direct'])}")
        else:
            rows = [store.row_of(i) for i in result["id"]]
            print(format_statistics(search.label_statistics(store.catalog, rows, args.label, args.positive)))
    return 0


def _top_activations(args) -> int:
    from pipeline.oneshot.atlas import TOP_K, check_feature, write_top_activations
    from pipeline.oneshot.store import FeatureStore

    _at_least(args.n, 1, "--n")
    _output_folder("--out", args.out)
    _never_over_inputs("--out", args.out, folders=[(args.index, "index folder")])
    store = FeatureStore.open(args.index)
    check_feature(store, args.feature)
    if args.n > min(TOP_K, len(store.catalog)):
        raise InputError(f"--n {args.n} is more than the {min(TOP_K, len(store.catalog))} images kept per "
                         f"feature (the index holds {len(store.catalog)} images): use --n "
                         f"{min(TOP_K, len(store.catalog))} or less.")
    csv = write_top_activations(store, args.feature, args.n, args.out)
    if not args.quiet:
        print(f"feature {args.feature}: {args.n} overlays and {csv.name} -> {args.out}")
    return 0


def _rank_features(args) -> int:
    from pipeline.oneshot.atlas import rank_features
    from pipeline.oneshot.stats import check_label
    from pipeline.oneshot.store import FeatureStore
    from pipeline.tables import check_output, write_table

    check_output(args.output)
    _never_over_inputs("-o", args.output, folders=[(args.index, "index folder")])
    store = FeatureStore.open(args.index)
    check_label(store.catalog, args.label, args.positive)
    ranking = rank_features(store, args.label, args.positive)
    write_table(ranking, args.output)
    if not args.quiet:
        m = ranking.meta
        print(f"{m['column']} = {m['positive']} ({m['n_positive']} vs {m['n_other']} galaxies); best features:")
        for row in ranking[:10]:
            print(f"  feature {row['feature']:4d}  AUROC {row['auroc']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
                  f"({row['direction']} in {args.positive})")
        print(f"-> {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline",
                     description="ALMA cube and one-shot galaxy search pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("cube-info", help="summarise a FITS cube: shape, spectral axis, beam, scale",
                       description="Print the shape (nx, ny, nchan), spectral range and channel "
                       "width, beam (median over channels when per-channel), pixel scale, units and "
                       "NaN fraction of a FITS cube. The cube is memory-mapped, not loaded.")
    p.add_argument("cube", help="FITS cube (.fits or .fits.gz)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--rest-frequency", type=float, metavar="HZ",
                   help="rest frequency in Hz for velocities (default: the header's)")
    p.set_defaults(func=_cube_info)

    p = sub.add_parser("simulate", help="simulate ALMA-like dirty cubes with truth catalogues",
                       description="Simulate dirty cubes (sky model convolved with the dirty beam of a "
                       "real ALMA configuration, plus correlated thermal noise), written as FITS in "
                       "CASA's layout, with their sky models and one truth.csv.")
    p.add_argument("--n", type=int, required=True, help="number of cubes")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same cubes (default 0)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--channels", type=int, default=128, help="number of channels (default 128)")
    p.add_argument("--config", default="alma.cycle9.3",
                   help="ALMA antenna configuration, a name from assets/alma_configs or a .cfg path "
                   "(default alma.cycle9.3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)

    from pipeline.alma.tasks import describe_tasks
    p = sub.add_parser("train", help="train one network of the source finder from the simulator",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train one network on examples drawn on the fly from the simulator, "
                       "with progress, checkpoints (resumed by running the same command), fixed seeds "
                       "and a JSON log. Writes model.pt, MODEL_CARD.md and log.json into --out.\n\n"
                       "tasks:\n" + describe_tasks())
    p.add_argument("task", help="what to train (see the list above)")
    p.add_argument("--out", required=True, help="folder for checkpoint, log, model and model card")
    p.add_argument("--steps", type=int, required=True, help="optimiser steps in total")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--batch", type=int, help="batch size (default: the task's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("detect", help="find line sources in a cube and write their catalogue",
                       description="Find sources with the deep pipeline (Blobs Finder -> Deep GRU -> spectral "
                       "focusing -> ResNets, weights from assets/models) or a classic finder, and write the "
                       "catalogue (CSV or VOTable by suffix) and optionally DS9 (.reg) or CRTF (.crtf) regions.")
    p.add_argument("cube", help="FITS cube")
    p.add_argument("-o", "--output", required=True, help="catalogue file: .csv, or .vot/.xml for VOTable")
    p.add_argument("--detector", default="pipeline", choices=["pipeline", "decoras", "photutils", "pybdsf"],
                   help="which finder (default: pipeline)")
    p.add_argument("--regions", help="also write regions: .reg (DS9) or .crtf (CASA)")
    p.add_argument("--models", help="folder of trained networks (default: assets/models)")
    p.add_argument("--pb", metavar="FILE",
                   help="the cube's primary-beam cube (tclean's .pb, as FITS): fluxes divided by the primary-beam "
                   "response at each source, given in the pb column (NaN flux where it is below 0.2). Without "
                   "it fluxes are uncorrected, and the catalogue says so")
    p.add_argument("--psf", metavar="FILE",
                   help="the cube's PSF cube (tclean's .psf, as FITS): the real dirty beam, for the sidelobe "
                        "check and the pipeline's sizes and angles")
    p.add_argument("--keep-sidelobes", action="store_true",
                   help="keep the probable sidelobes of brighter detections in the catalogue, flagged in the "
                   "sidelobe column (default: dropped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_detect)

    p = sub.add_parser("evaluate", help="score a catalogue against a truth catalogue",
                       description="Match a detector's catalogue to the truth (the paper's lenient rule "
                       "and a strict one-to-one rule, centres within 3 px) and print precision, recall, "
                       "F1, mean IoU and parameter residuals, overall, in SNR bins and for blended vs "
                       "isolated sources.")
    p.add_argument("--truth", required=True, help="truth CSV (the simulator's truth.csv columns)")
    p.add_argument("--catalog", required=True, help="catalogue CSV or VOTable from `detect`")
    p.add_argument("--rule", choices=["strict", "lenient", "both"], default="both", help="matching rule")
    p.add_argument("--image-size", type=int, default=256,
                   help="image side in pixels, for the truth boxes (default 256)")
    p.add_argument("--channel-width-kms", type=float,
                   help="channel width, to compare fluxes when the truth has no flux column")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("index", help="extract image features of a galaxy set and build its faiss index",
                       description="Describe every cutout of a galaxy set with a frozen ImageNet network "
                       "(the penultimate layer, 1280 features) and index them with faiss. Extraction runs "
                       "on Dask in chunks; an interrupted run resumes when started again.")
    p.add_argument("images_dir", help="folder the catalogue's file paths start from")
    p.add_argument("--catalog", required=True, help="CSV with columns id, file (+ ra, dec, labels)")
    p.add_argument("--out", required=True, help="index folder to write")
    from pipeline.oneshot.features import BACKBONES, DEFAULT_BACKBONE
    p.add_argument("--model", default=DEFAULT_BACKBONE, choices=list(BACKBONES),
                   help=f"feature network (default {DEFAULT_BACKBONE}; efficientnet_b0 needs --weights or a hub cache)")
    p.add_argument("--weights", help="weights file for the model (default: the shipped/cached ones)")
    p.add_argument("--size", type=int, default=224, help="network input size in pixels (default 224)")
    p.add_argument("--metric", choices=["cosine", "l2"], default="cosine", help="distance (default cosine)")
    p.add_argument("--kind", choices=["auto", "exact", "approximate"], default="auto",
                   help="faiss index kind (default auto: exact up to 100,000 images)")
    p.add_argument("--engine", choices=["onnx", "torch"], default="onnx", help="inference engine (default onnx)")
    p.add_argument("--scheduler", default="local",
                   help="Dask: 'local' (a local cluster, default), 'synchronous' (this process) or a "
                   "scheduler address such as tcp://host:8786")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_index)

    p = sub.add_parser("search", help="one-shot (and recursive) search from a prototype galaxy",
                       description="Find the nearest galaxies to a prototype in an index's feature space; "
                       "with --iterations K > 1, ULISSE's recursive search. Writes id, distance, iteration, "
                       "parent and the catalogue's columns; with --label/--positive prints the fraction "
                       "found against the catalogue's base rate.")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--prototype", help="id of the prototype galaxy")
    p.add_argument("--prototype-image", help="or an image file (PNG, JPEG, FITS) as prototype")
    p.add_argument("--n", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--iterations", type=int, default=1, help="recursive iterations (default 1: direct)")
    p.add_argument("--label", help="label column to count, e.g. bpt_class")
    p.add_argument("--positive", help="the value that counts, e.g. AGN")
    p.add_argument("-o", "--output", required=True, help="result file: .csv, or .vot/.xml for VOTable")
    p.add_argument("--quiet", action="store_true", help="print only the statistics")
    p.set_defaults(func=_search)

    p = sub.add_parser("top-activations", help="the images that activate one feature most, with its maps",
                       description="Write PNG overlays of the N images of an index that activate feature K most "
                       "(that channel of the network's last convolutional layer, upsampled over the cutout, "
                       "with a colour bar) and top.csv (rank, id, activation).")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--feature", type=int, required=True, help="feature number, 0-1279")
    p.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    p.add_argument("--out", required=True, help="folder for the PNGs and top.csv")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_top_activations)

    p = sub.add_parser("rank-features", help="rank the features by how well they separate a label (AUROC)",
                       description="AUROC of every feature for LABEL == VALUE against the other labelled "
                       "galaxies, with a 95% interval (Hanley & McNeil), most separating first.")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--label", required=True, help="label column, e.g. bpt_class")
    p.add_argument("--positive", required=True, help="the value, e.g. AGN")
    p.add_argument("-o", "--output", required=True, help="ranking file: .csv or .vot")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_rank_features)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
