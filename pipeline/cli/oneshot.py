"""The one-shot galaxy search commands: ``index``, ``search``, ``top-activations`` and
``rank-features``.

Each command is an ``add_<command>_parser(commands)`` that declares its options and, beside it,
the ``cmd_<command>(args)`` it runs. torch is imported only where a network runs (extracting
features, embedding an image), never to read options or search stored vectors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli.checks import at_least, never_over_inputs, output_folder, scheduler_name
from pipeline.errors import InputError
from pipeline.oneshot.backbones import BACKBONES, DEFAULT_BACKBONE
from pipeline.oneshot.views import CROPS, DEFAULT_CROP, DEFAULT_INVARIANCE, INVARIANCES


def add_index_parser(commands) -> None:
    p = commands.add_parser("index", help="extract image features of a galaxy set and build its faiss index",
                            description="Describe every cutout of a galaxy set with a frozen ImageNet network "
                            "(the penultimate layer, 1280 features) and index them with faiss. Extraction runs "
                            "on Dask in chunks; an interrupted run resumes when started again.")
    p.add_argument("images_dir", help="folder the catalogue's file paths start from")
    p.add_argument("--catalog", required=True, help="CSV with columns id, file (+ ra, dec, labels)")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--model", default=DEFAULT_BACKBONE, choices=list(BACKBONES),
                   help=f"feature network (default {DEFAULT_BACKBONE}; efficientnet_b0 needs --weights or a hub cache)")
    p.add_argument("--weights", help="weights file for the model (default: the shipped/cached ones)")
    p.add_argument("--size", type=int, default=224, help="network input size in pixels (default 224)")
    p.add_argument("--metric", choices=["cosine", "l2"], default="cosine", help="distance (default cosine)")
    p.add_argument("--kind", choices=["auto", "exact", "approximate", "compressed"], default="auto",
                   help="faiss index kind (default auto: exact up to 100,000 images, approximate up to 10^6, "
                   "compressed above: product-quantised codes in memory, float16 vectors on disk for re-ranking)")
    p.add_argument("--shards", type=int, default=1,
                   help="split a compressed index into this many shards, built and served by the workers of "
                   "--scheduler (default 1: not split)")
    p.add_argument("--engine", choices=["onnx", "onnx-int8", "torch"], default="onnx",
                   help="inference engine: 'onnx' (default), 'onnx-int8' (the network in 8-bit integers: about twice "
                   "as fast, but the features move and so do the neighbours; see the README) or 'torch'")
    p.add_argument("--crop", choices=list(CROPS), default=DEFAULT_CROP,
                   help="what the network sees: 'galaxy' (default: the central galaxy, cropped to the radius holding "
                   "90%% of its light) or 'frame' (the whole cutout)")
    p.add_argument("--invariance", choices=list(INVARIANCES), default=DEFAULT_INVARIANCE,
                   help="rotations and flips: 'head' (default: a linear head learnt from the set's own rotated and "
                   "flipped views, one network pass per image), 'dihedral' (features averaged over the 8 rotations "
                   "and flips: 8 passes per image) or 'none'")
    p.add_argument("--scheduler", default="auto",
                   help="where the images are described: 'auto' (default: 'threads' on several cores), 'threads' "
                   "(this process, a thread per core), 'synchronous' (this process, one chunk at a time), 'local' (a "
                   "local Dask cluster) or a Dask scheduler's address such as "
                   "tcp://host:8786; its workers need the images, and for --shards the index folder, at the same "
                   "paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)


def cmd_index(args) -> int:
    from tqdm import tqdm

    from pipeline.oneshot.galaxies import GalaxySet
    from pipeline.oneshot.store import build_store

    at_least(args.size, 32, "--size")  # the network's last feature maps are size / 32 pixels
    at_least(args.shards, 1, "--shards")
    galaxies = GalaxySet.open(args.catalog, images_dir=args.images_dir)
    for note in galaxies.notes:
        print(f"note: {note}", file=sys.stderr)
    stages = [None]
    with tqdm(total=len(galaxies), unit="image", disable=args.quiet) as bar:
        def progress(done, total, stage):
            if stage != stages[-1]:  # the features, then the head's sample
                stages.append(stage)
                bar.reset(total)
                bar.set_description(stage)
            bar.update(done - bar.n)

        store = build_store(galaxies, args.out, backbone=args.model, weights=args.weights, size=args.size,
                            metric=args.metric, kind=args.kind, engine=args.engine, scheduler=args.scheduler,
                            crop=args.crop, invariance=args.invariance, shards=args.shards, progress=progress)
    store.close()
    if not args.quiet:
        print(store.describe())
        print(f"-> {args.out}")
    return 0


def add_search_parser(commands) -> None:
    p = commands.add_parser("search", help="one-shot (and recursive) search from prototype galaxies",
                            description="Find the nearest galaxies to a prototype in an index's feature space; "
                            "with --iterations K > 1, ULISSE's recursive search. Writes prototype, id, distance, "
                            "iteration, parent and the catalogue's columns; with --label/--positive prints the "
                            "fraction found against the catalogue's base rate. Several prototypes (ids, images and "
                            "--prototypes lists, in any mix) are searched one after the other into one result "
                            "file; its prototype column says which one found each row (the id, or the image file "
                            "as given), a galaxy found by two prototypes is listed under each, and the statistics "
                            "are printed per prototype.")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--prototype", nargs="+", metavar="ID", help="id of the prototype galaxy (or several ids)")
    p.add_argument("--prototype-image", nargs="+", metavar="FILE",
                   help="or an image file (PNG, JPEG, FITS) as prototype (or several)")
    p.add_argument("--prototypes", metavar="FILE",
                   help="or a text file of prototypes, one per line: an id of the index or an image file "
                   "(a relative path starts from the file's folder); blank lines and lines starting with # "
                   "are skipped")
    p.add_argument("--n", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--iterations", type=int, default=1, help="recursive iterations (default 1: direct)")
    p.add_argument("--good", nargs="+", metavar="ID", default=[],
                   help="relevance feedback: ids of galaxies marked good (re-ranks; they are not listed again)")
    p.add_argument("--bad", nargs="+", metavar="ID", default=[], help="ids of galaxies marked bad (never listed)")
    p.add_argument("--feedback", choices=["linear", "rocchio"], default="linear",
                   help="how --good/--bad re-rank: a linear classifier (default) or Rocchio's query update")
    p.add_argument("--label", help="label column to count, e.g. bpt_class")
    p.add_argument("--positive", help="the value that counts, e.g. AGN")
    p.add_argument("-o", "--output", required=True, help="result file: .csv, or .vot/.xml for VOTable")
    p.add_argument("--scheduler", default="local",
                   help="for an index built with --shards: the Dask workers that serve its shards, 'local' "
                   "(default: a local cluster of one worker per shard) or a running scheduler's address such as "
                   "tcp://host:8786 (its workers need the index folder at the same path)")
    p.add_argument("--quiet", action="store_true", help="print only the statistics")
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    from pipeline.oneshot.store import FeatureStore
    from pipeline.tables import check_output

    _check_search_options(args)
    check_output(args.output)
    never_over_inputs("-o", args.output, inputs=[*(args.prototype_image or ()), args.prototypes],
                      folders=[(args.index, "index folder")])
    scheduler_name(args.scheduler)
    store = FeatureStore.open(args.index, scheduler=args.scheduler)
    try:
        return _search(args, store)
    finally:
        store.close()


def _search(args, store) -> int:
    from astropy.table import vstack

    from pipeline.oneshot import search
    from pipeline.oneshot.stats import check_label
    from pipeline.oneshot.store import image_features
    from pipeline.provenance import PROVENANCE
    from pipeline.tables import write_table

    if args.label:
        check_label(store.catalog, args.label, args.positive)
    prototypes = _prototypes(args, store)
    # an id must be in the store, and is no neighbour of itself; an image is no galaxy of the store
    for _, prototype in prototypes:
        available = search.available_neighbours(store, prototype) if isinstance(prototype, str) else len(store.catalog)
        if args.n > available:
            others = "other galaxies" if isinstance(prototype, str) else "galaxies"
            raise InputError(f"--n {args.n} asks for more neighbours than there are: the index holds {available} "
                             f"{others}. Use --n {available} or less.")
    results = []
    for name, prototype in prototypes:
        query = prototype if isinstance(prototype, str) else image_features(store, prototype)
        if args.iterations > 1:
            result = search.recursive(store, query, args.n, args.iterations)
        elif args.good or args.bad:
            result = search.refine(store, query, args.n, liked=args.good, disliked=args.bad, method=args.feedback)
        else:
            result = search.one_shot(store, query, args.n)
        result.add_column([name] * len(result), name="prototype", index=0)
        results.append((name, query, result))
    found = (vstack([result for _, _, result in results], metadata_conflicts="silent") if len(results) > 1
             else results[0][2])
    found.meta[PROVENANCE] = {**results[0][2].meta[PROVENANCE], "prototype": ", ".join(name for name, _, _ in results)}
    write_table(found, args.output)
    if not args.quiet:
        many = f" from {len(results)} prototypes" if len(results) > 1 else ""
        print(f"{len(found)} galaxies{many} -> {args.output} ({store.meta['model_label']}, "
              f"{store.index.describe()})")
    if args.label:
        for name, query, result in results:
            for line in _statistics_lines(store, result, query, args):
                print(f"{name}: {line}" if len(results) > 1 else line)
    return 0


def _check_search_options(args) -> None:
    from pipeline.oneshot import search

    if not (args.prototype or args.prototype_image or args.prototypes):
        raise InputError("Give the prototype as --prototype ID, --prototype-image FILE or --prototypes FILE (a "
                         "list of ids and image files, one per line).")
    if (args.label is None) != (args.positive is None):
        raise InputError("--label and --positive go together: the column to count and the value that counts.")
    if not 1 <= args.n <= search.MAX_N:
        raise InputError(f"--n (neighbours per query) must be between 1 and {search.MAX_N}; got {args.n}.")
    if not 1 <= args.iterations <= search.MAX_ITERATIONS:
        raise InputError(f"--iterations must be between 1 (a direct search) and {search.MAX_ITERATIONS}; "
                         f"got {args.iterations}.")
    if (args.good or args.bad) and args.iterations > 1:
        raise InputError("--good/--bad re-rank a direct search: leave out --iterations, or the marks.")
    both = sorted(set(args.good) & set(args.bad))
    if both:
        raise InputError(f"{both[0]!r} is marked both --good and --bad: mark each galaxy once.")


def _prototypes(args, store) -> list[tuple]:
    """(name, prototype) of each prototype given, in order: an id of ``store`` (text), or an image
    file read and turned to RGB (an array; embedded when searched). Refuses an unknown id, an
    unreadable image, a line of --prototypes that is neither, and a prototype given twice."""
    from pipeline.oneshot.galaxies import read_image, to_rgb

    for galaxy_id in args.prototype or ():
        store.row_of(galaxy_id)  # an unknown id is refused, naming it
    given = [(str(i), str(i)) for i in args.prototype or ()]
    given += [(str(f), to_rgb(read_image(f))) for f in args.prototype_image or ()]
    if args.prototypes:
        given += _listed_prototypes(Path(args.prototypes), store)
    names = [name for name, _ in given]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"The prototype {twice[0]!r} is given twice: give each prototype once.")
    return given


def _listed_prototypes(path: Path, store) -> list[tuple]:
    from pipeline.oneshot.galaxies import read_image, to_rgb

    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read --prototypes {path} ({getattr(exc, 'strerror', None) or exc}): give a text "
                         "file with one id or image file per line.") from None
    listed = []
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        if _is_id(store, value):
            listed.append((value, value))
        elif (path.parent / value).is_file():
            listed.append((value, to_rgb(read_image(path.parent / value))))
        else:
            raise InputError(f"--prototypes {path}, line {number}: {value!r} is neither an id of the index (ids "
                             f"look like {str(store.catalog['id'][0])!r}) nor an image file (from {path.parent}).")
    if not listed:
        raise InputError(f"--prototypes {path} lists no prototype: write one id or image file per line.")
    return listed


def _is_id(store, value: str) -> bool:
    try:
        store.row_of(value)
    except InputError:
        return False
    return True


def _statistics_lines(store, result, query, args) -> list[str]:
    """The label statistics of one prototype's search, as printed (see --label)."""
    from pipeline.oneshot import search
    from pipeline.oneshot.stats import format_statistics

    if args.iterations == 1:
        rows = [store.row_of(i) for i in result["id"]]
        return [format_statistics(search.label_statistics(store.catalog, rows, args.label, args.positive))]
    lines = []
    for s in search.iteration_statistics(store, result, args.label, args.positive, query):
        lines.append(f"iteration {s['iteration']} ({s['total']} found): {format_statistics(s)}")
        lines.append(f"  direct query of {s['total']}: {format_statistics(s['direct'])}")
    return lines


def add_map_parser(commands) -> None:
    p = commands.add_parser("map", help="a 2-D map of an index's galaxies (PCA then t-SNE), as a table",
                            description="Place every galaxy of an index in 2-D so that neighbours in the search "
                            "space stay near each other (PCA to 50 dimensions, then t-SNE; above 20,000 galaxies "
                            "a sample is laid out and the rest placed by their neighbours). Writes id, map_x, "
                            "map_y and the catalogue's columns: plot it in TOPCAT, coloured by a label. Made once "
                            "per index build and kept in the cache.")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("-o", "--output", required=True, help="result file: .csv, or .vot/.xml for VOTable")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_map)


def cmd_map(args) -> int:
    from pipeline.oneshot.feature_map import layout, map_table
    from pipeline.tables import write_table

    store = _index_for_table(args)
    table = map_table(store, layout(store))
    write_table(table, args.output)
    if not args.quiet:
        print(f"{len(table)} galaxies -> {args.output}")
    return 0


def add_top_activations_parser(commands) -> None:
    p = commands.add_parser("top-activations", help="the images that activate one feature most, with its maps",
                            description="Write PNG overlays of the N images of an index that activate feature K "
                            "most (that channel of the network's last convolutional layer, upsampled over the "
                            "cutout, with a colour bar) and top.csv (rank, id, activation).")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--feature", type=int, required=True, help="feature number, 0-1279")
    p.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    p.add_argument("--out", required=True, help="folder for the PNGs and top.csv")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_top_activations)


def cmd_top_activations(args) -> int:
    from pipeline.oneshot.atlas import TOP_K, check_feature, write_top_activations
    from pipeline.oneshot.store import FeatureStore

    at_least(args.n, 1, "--n")
    output_folder("--out", args.out)
    never_over_inputs("--out", args.out, folders=[(args.index, "index folder")])
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


def add_rank_features_parser(commands) -> None:
    p = commands.add_parser("rank-features", help="rank the features by how well they separate a label (AUROC)",
                            description="AUROC of every feature for LABEL == VALUE against the other labelled "
                            "galaxies, with a 95% interval (Hanley & McNeil), most separating first.")
    p.add_argument("index", help="index folder from `index`")
    p.add_argument("--label", required=True, help="label column, e.g. bpt_class")
    p.add_argument("--positive", required=True, help="the value, e.g. AGN")
    p.add_argument("-o", "--output", required=True, help="ranking file: .csv or .vot")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_rank_features)


def cmd_rank_features(args) -> int:
    from pipeline.oneshot.atlas import rank_features
    from pipeline.oneshot.stats import check_label
    from pipeline.tables import write_table

    store = _index_for_table(args)
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


def _index_for_table(args):
    """The store of ``args.index``, once ``args.output`` is checked: a table file that is not the
    index's (nor inside it)."""
    from pipeline.oneshot.store import FeatureStore
    from pipeline.tables import check_output

    check_output(args.output)
    never_over_inputs("-o", args.output, folders=[(args.index, "index folder")])
    return FeatureStore.open(args.index)
