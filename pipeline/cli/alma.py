"""The ALMA cube commands: ``cube-info``, ``simulate``, ``train``, ``detect`` and ``evaluate``.

Each command is an ``add_<command>_parser(commands)`` that declares its options and, beside it,
the ``cmd_<command>(args)`` it runs, which imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.checks import at_least, memory_size, never_over_inputs, positive_number, progress_bar, scheduler_name
from pipeline.errors import InputError


def add_cube_info_parser(commands) -> None:
    p = commands.add_parser("cube-info", help="summarise a FITS cube: shape, spectral axis, beam, scale",
                            description="Print the shape (nx, ny, nchan), spectral range and channel "
                            "width, beam (median over channels when per-channel), pixel scale, units and "
                            "NaN fraction of a FITS cube. The cube is memory-mapped, not loaded.")
    p.add_argument("cube", help="FITS cube (.fits or .fits.gz)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--rest-frequency", type=float, metavar="HZ",
                   help="rest frequency in Hz for velocities (default: the header's)")
    p.set_defaults(func=cmd_cube_info)


def cmd_cube_info(args) -> int:
    from pipeline.alma.cube import open_cube
    from pipeline.alma.cube_summary import format_info

    positive_number(args.rest_frequency, "--rest-frequency", "frequency in Hz")
    with open_cube(args.cube, rest_frequency_hz=args.rest_frequency) as cube:
        info = cube.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
    return 0


def add_simulate_parser(commands) -> None:
    p = commands.add_parser("simulate", help="simulate ALMA-like dirty cubes with truth catalogues",
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
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    from tqdm import tqdm

    from pipeline.alma.interferometer import load_configuration
    from pipeline.alma.simulate import check_output_folder, simulate_set

    if args.n < 1:
        raise InputError("--n must be at least 1")
    if args.size < 16 or args.channels < 1:
        raise InputError("--size must be at least 16 pixels and --channels at least 1")
    at_least(args.seed, 0, "--seed")
    check_output_folder(args.out)  # a folder holding a set is refused: its truth.csv stays
    load_configuration(args.config)  # a wrong name fails here, before any progress bar
    with tqdm(total=args.n, unit="cube", disable=args.quiet) as bar:
        def progress(done, total, stage):
            bar.update(done - bar.n)

        paths = simulate_set(args.out, n=args.n, seed=args.seed, size=args.size,
                             channels=args.channels, config=args.config, progress=progress)
    if not args.quiet:
        from pipeline.alma.simulate import IN_MEMORY_BYTES

        streamed = args.size**2 * args.channels * 4 > IN_MEMORY_BYTES
        print(f"wrote {len(paths)} cubes and truth.csv to {args.out}"
              + (f" (no sky models: cubes over {IN_MEMORY_BYTES / 1e9:g} GB are written a block of channels at a time)"
                 if streamed else ""))
    return 0


def add_train_parser(commands) -> None:
    from pipeline.alma.tasks import describe_tasks

    p = commands.add_parser("train", help="train one network of the source finder from the simulator",
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
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import shlex

    import torch
    from tqdm import tqdm

    from pipeline.alma.train import train

    at_least(args.threads, 1, "--threads")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m pipeline " + shlex.join(args.argv)
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


def add_detect_parser(commands) -> None:
    p = commands.add_parser("detect", help="find line sources in a cube and write their catalogue",
                            description="Find sources with the deep pipeline (Blobs Finder -> Deep GRU -> spectral "
                            "focusing -> ResNets, weights from assets/models) or a classic finder, and write the "
                            "catalogue (CSV or VOTable by suffix) and optionally DS9 (.reg) or CRTF (.crtf) regions.")
    p.add_argument("cube", help="FITS cube; or a folder of cubes, or a quoted pattern ('cubes/*.fits'), searched "
                   "into one catalogue with a cube column (each cube's .pb and .psf found beside it; a rerun "
                   "skips the cubes already done)")
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
    p.add_argument("--memory", default="2GB",
                   help="memory the search may take, e.g. 2GB or 500MB (default 2GB): the cube is read in "
                   "chunks and searched in strips of rows that fit, whatever its size")
    p.add_argument("--scheduler", default="synchronous",
                   help="where the networks search: 'synchronous' (default: this process), 'local' (a Dask "
                   "cluster of one worker per core, each within --memory) or a running Dask scheduler's "
                   "address (tcp://host:8786); the catalogue is the same")
    p.add_argument("--reliability", action="store_true",
                   help="also search the negated cube (noise alone, as SoFiA does): each candidate's p_false, the "
                   "share of candidates as significant that are noise, and a table of reliability per SNR bin, "
                   "printed and written beside the catalogue as NAME_reliability.csv (takes twice as long)")
    p.add_argument("--completeness", action="store_true",
                   help="also inject point sources with the cube's beam at peak SNRs 3-15 where nothing was found and "
                   "search again: the share found per SNR, printed and written as NAME_completeness.csv")
    p.add_argument("--keep-sidelobes", action="store_true",
                   help="keep the probable sidelobes of brighter detections in the catalogue, flagged in the "
                   "sidelobe column (default: dropped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args) -> int:
    from contextlib import ExitStack

    from pipeline.alma.batch import clear_parts, find_cubes, parts_folder
    from pipeline.alma.catalog import region_format, write_catalog, write_regions
    from pipeline.alma.companions import open_companion
    from pipeline.alma.cube import open_cube
    from pipeline.alma.detect import detect
    from pipeline.alma.networks import DECORAS_TASKS, MODELS_DIR, PIPELINE_TASKS, load_networks
    from pipeline.tables import check_output

    # outputs first, then the cube and its companions, then the networks: nothing is loaded or
    # found for a bad name
    cubes = find_cubes(args.cube)
    several = len(cubes) > 1 or Path(args.cube).is_dir()
    inputs = [*cubes, args.pb, args.psf]
    memory = memory_size(args.memory)
    scheduler_name(args.scheduler)
    check_output(args.output)
    never_over_inputs("-o", args.output, inputs=inputs)
    one_cube_only = [o for o, given in (("--pb", args.pb), ("--psf", args.psf), ("--regions", args.regions),
                                        ("--reliability", args.reliability), ("--completeness", args.completeness))
                     if given]
    if several and one_cube_only:
        option = one_cube_only[0]
        raise InputError(f"{option} is for one cube; with several, each cube's .pb and .psf are found beside it "
                         "under tclean's names, and regions are written cube by cube (search one cube).")
    if args.regions:
        region_format(args.regions)
        never_over_inputs("--regions", args.regions, inputs=inputs)
    for option, wanted in (("--reliability", args.reliability), ("--completeness", args.completeness)):
        if wanted:
            never_over_inputs(option, beside(args.output, option[2:]), inputs=inputs)
    models_dir = args.models or MODELS_DIR
    tasks = {"pipeline": PIPELINE_TASKS, "decoras": DECORAS_TASKS}.get(args.detector, ())
    if several:
        load_networks(models_dir, tasks)
        catalog = _detect_many(args, cubes, models_dir, memory)
    else:
        with ExitStack() as files:
            cube = files.enter_context(open_cube(cubes[0]))
            cube.require_beam()
            options = {kind: files.enter_context(open_companion(path, cube, kind))
                       for kind, path in (("pb", args.pb), ("psf", args.psf)) if path}
            load_networks(models_dir, tasks)  # a missing or unreadable network is reported before the run
            settings = dict(keep_sidelobes=args.keep_sidelobes, models=models_dir, memory=memory,
                            scheduler=args.scheduler, **options)
            with progress_bar(args.quiet, "stage") as progress:
                # the search's maps wait beside the output, so that an interrupted run resumes
                catalog = detect(cube, args.detector, progress=progress, parts=parts_folder(args.output), **settings)
            catalog = _statistics_from_the_cube(args, cube, catalog, settings)
            write_catalog(catalog, args.output)  # atomic, as are the regions
            clear_parts(args.output)
            if args.regions:
                write_regions(catalog, cube, args.regions)
    if not args.quiet:
        if not several:
            for note in ("significance", "sidelobe_check"):
                if catalog.meta.get(note):
                    print(catalog.meta[note])
        where = f" in {len(cubes)} cubes" if several else ""
        regions = f", regions -> {args.regions}" if args.regions else ""
        print(f"{len(catalog)} sources{where} -> {args.output}{regions}"
              + ("" if several else " (fluxes primary-beam corrected)" if catalog.meta.get("pb_corrected")
                 else " (fluxes uncorrected for the primary beam)"))
    return 0


def _statistics_from_the_cube(args, cube, catalog, settings):
    """``--reliability`` and ``--completeness``: their tables printed and written beside the
    catalogue; the catalogue, with ``p_false`` when the reliability was measured."""
    from pipeline.alma import completeness, reliability
    from pipeline.tables import write_table

    for option, wanted in (("reliability", args.reliability), ("completeness", args.completeness)):
        if not wanted:
            continue
        with progress_bar(args.quiet, "stage") as progress:
            if option == "reliability":
                negatives = reliability.negative_detections(cube, args.detector, progress=progress, **settings)
                catalog, table = reliability.with_reliability(catalog, negatives)
            else:
                table = completeness.completeness(cube, catalog, args.detector, progress=progress, **settings)
        write_table(table, beside(args.output, option))
        if not args.quiet:
            text = (reliability if option == "reliability" else completeness).format_table(table)
            print(f"{text}\n-> {beside(args.output, option)}")
    return catalog


def beside(output, what: str) -> Path:
    """Where ``detect --reliability`` (``what``) or ``--completeness`` writes its table:
    ``NAME_<what>.csv`` beside the catalogue."""
    output = Path(output)
    return output.with_name(f"{output.name.split('.')[0]}_{what}.csv")


def _detect_many(args, cubes, models_dir, memory):
    """detect over several cubes into one catalogue (:func:`pipeline.alma.batch.detect_cubes`)."""
    from pipeline.alma.batch import clear_parts, detect_cubes, parts_folder
    from pipeline.alma.catalog import write_catalog

    done = sum(1 for _ in parts_folder(args.output).glob("*.csv")) if parts_folder(args.output).is_dir() else 0
    if done and not args.quiet:
        print(f"resuming: {done} cube(s) already searched in {parts_folder(args.output)}")
    with progress_bar(args.quiet, "cube") as progress:
        catalog = detect_cubes(cubes, args.output, args.detector, progress=progress, memory=memory,
                               scheduler=args.scheduler, models=models_dir, keep_sidelobes=args.keep_sidelobes)
    write_catalog(catalog, args.output)
    clear_parts(args.output)
    return catalog


def add_evaluate_parser(commands) -> None:
    p = commands.add_parser("evaluate", help="score a catalogue against a truth catalogue",
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
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from pipeline.alma.evaluate import evaluate_files, format_report

    for option, path in (("--truth", args.truth), ("--catalog", args.catalog)):
        if Path(path).is_dir():
            raise InputError(f"{option} {path} is a folder, not a file: give the CSV (or VOTable) file.")
    at_least(args.image_size, 1, "--image-size")
    positive_number(args.channel_width_kms, "--channel-width-kms", "channel width in km/s")
    result = evaluate_files(args.truth, args.catalog, rule=args.rule, image_size_px=args.image_size,
                            channel_width_kms=args.channel_width_kms)
    print(json.dumps(result, indent=2, default=float) if args.json else format_report(result))
    return 0
