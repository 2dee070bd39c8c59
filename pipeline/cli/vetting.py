"""The vetting commands: ``vetting import`` (a catalogue, and its verdicts, into the vetting
database), ``vetting export`` (the vetted catalogue out of it), ``vetting similar`` (the candidates
most like one, across cubes); ``vetting status`` sums it up.

The database is ``--db``, else ``$ALMA_ULISSE_VETTING_DB``, else the user's data folder (see
:mod:`pipeline.vetting.store`): the one the explorer uses, so a team's verdicts cast in the browser
come out here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.cli.checks import never_over_inputs

DB_HELP = "vetting database (default: $ALMA_ULISSE_VETTING_DB, else ~/.local/share/alma-ulisse/vetting.sqlite)"


def add_vetting_parser(commands) -> None:
    p = commands.add_parser("vetting", help="verdicts on a cube's candidates: import a catalogue, export the "
                            "vetted catalogue", description="Verdicts (real / spurious / unsure) on a cube's "
                            "candidates, kept in the vetting database the explorer shares with a team.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True

    e = actions.add_parser("export", help="write the vetted catalogue of a cube",
                           description="Write every candidate stored for CUBE with the team's verdicts: "
                           "verdict, vote counts, reviewers, notes (CSV or VOTable by the suffix), and "
                           "optionally regions coloured by verdict.")
    e.add_argument("cube", help="the FITS cube (its content identifies its candidates)")
    e.add_argument("-o", "--output", required=True, help="vetted catalogue: .csv, or .vot/.xml for VOTable")
    e.add_argument("--regions", help="also write regions coloured by verdict: .reg (DS9) or .crtf (CASA)")
    e.add_argument("--db", help=DB_HELP)
    e.set_defaults(func=cmd_vetting_export)

    i = actions.add_parser("import", help="add a catalogue's sources (and verdicts) to a cube's candidates",
                           description="Add the sources of CATALOGUE to CUBE's candidates: a CSV or VOTable "
                           "with ra, dec (degrees) or x, y (pixels), optionally z or freq (Hz), or DS9 / CRTF "
                           "regions. A vetted catalogue's verdicts are cast (its verdicts column, else its verdict "
                           "and reviewer columns; notes from its note column), all checked before anything is "
                           "stored. Sources already stored (same position) keep their key and verdicts.")
    i.add_argument("cube", help="the FITS cube the catalogue describes")
    i.add_argument("catalogue", help="CSV, VOTable (.vot/.xml), DS9 (.reg) or CRTF (.crtf)")
    i.add_argument("--reviewer", help="whose verdicts they are, when the catalogue has verdicts but no "
                   "reviewer column")
    i.add_argument("--detector", default="imported", help="name recorded as the finder (default: imported, "
                   "or the catalogue's detector column)")
    i.add_argument("--db", help=DB_HELP)
    i.set_defaults(func=cmd_vetting_import)

    f = actions.add_parser("similar", help="the candidates most like one, across one or several cubes",
                           description="List the candidates most like --like (a source key, as the explorer's "
                           "card and the vetted catalogue give it) among the candidates stored for the CUBEs: "
                           "the explorer's find similar, across cubes. The first CUBE holds --like unless it "
                           "is given as CUBE_FILE_NAME:SOURCE.")
    f.add_argument("cubes", nargs="+", metavar="CUBE", help="FITS cubes whose stored candidates are compared")
    f.add_argument("--like", required=True, metavar="SOURCE", help="the candidate to compare with")
    f.add_argument("-k", type=int, default=12, help="how many to list (default 12)")
    f.add_argument("-o", "--output", help="also write the list: .csv, or .vot/.xml for VOTable")
    f.add_argument("--db", help=DB_HELP)
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_vetting_similar)

    s = actions.add_parser("status", help="how far the vetting of a cube is",
                           description="Candidates, vetted, disputed and the verdicts in force for CUBE.")
    s.add_argument("cube", help="the FITS cube")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.add_argument("--db", help=DB_HELP)
    s.set_defaults(func=cmd_vetting_status)


def _open(args):
    from pipeline.alma.cube import open_cube
    from pipeline.vetting.store import VettingStore

    store = VettingStore(args.db)
    return store, open_cube(args.cube, check_data=False)


def cmd_vetting_export(args) -> int:
    from pipeline.alma.catalog import region_format
    from pipeline.tables import check_output
    from pipeline.vetting.candidates import cube_collection, stored_candidates
    from pipeline.vetting.export import vetted_catalog, write_vetted, write_vetted_regions

    check_output(args.output)
    never_over_inputs("-o", args.output, [args.cube, args.db])
    if args.regions:
        region_format(args.regions)
        never_over_inputs("--regions", args.regions, [args.cube, args.db, args.output])
    store, cube = _open(args)
    with cube:
        collection = cube_collection(cube)
        table = vetted_catalog(stored_candidates(store, cube), store.latest(collection))
        if not len(table):
            print(f"note: no candidates are stored for {cube.path.name} in {store.path}: the catalogue is empty "
                  "(run a detector in the explorer, or `vetting import` a catalogue, first)")
        write_vetted(table, args.output)
        if args.regions:
            write_vetted_regions(table, cube, args.regions)
    vetted = int((table["verdict"] != "").sum()) if len(table) else 0
    print(f"wrote {args.output}: {len(table)} candidates, {vetted} vetted"
          + (f"; regions in {args.regions}" if args.regions else ""))
    return 0


def cmd_vetting_import(args) -> int:
    from pipeline.vetting.candidates import import_candidates

    store, cube = _open(args)
    with cube:
        stored, imported, cast = import_candidates(store, cube, args.catalogue, reviewer=args.reviewer,
                                                   detector=args.detector)
    print(f"{imported.message}; {len(stored)} stored as candidates of {cube.path.name}, {cast} verdicts cast "
          f"(database {store.path})")
    if "verdict" in imported.table.colnames and not cast and not args.reviewer and \
            "reviewer" not in imported.table.colnames:
        print("note: the catalogue has verdicts but no reviewer column: give --reviewer NAME to import them")
    return 0


def cmd_vetting_status(args) -> int:
    from pipeline.vetting.candidates import cube_collection, stored_candidates
    from pipeline.vetting.export import vetted_catalog

    store, cube = _open(args)
    with cube:
        table = vetted_catalog(stored_candidates(store, cube), store.latest(cube_collection(cube)))
    verdicts = dict(Counter(str(v) or "unvetted" for v in table["verdict"]))
    status = {"cube": cube.path.name, "database": str(store.path), "candidates": len(table), "verdicts": verdicts}
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"{status['cube']}: {len(table)} candidates; "
              + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) + f" (database {store.path})")
    return 0


def cmd_vetting_similar(args) -> int:
    from astropy.table import Table

    from pipeline.alma.cube import open_cube
    from pipeline.cli.checks import at_least, progress_bar
    from pipeline.errors import InputError
    from pipeline.tables import check_output, write_table
    from pipeline.vetting.candidates import cube_collection, stored_candidates
    from pipeline.vetting.similar import SimilarCandidates, embed_candidates
    from pipeline.vetting.store import VettingStore, summarise

    at_least(args.k, 1, "-k")
    if args.output:
        check_output(args.output)
        never_over_inputs("-o", args.output, [*args.cubes, args.db])
    store = VettingStore(args.db)
    keys, rows, parts = [], [], []
    for path in args.cubes:
        with open_cube(path, check_data=False) as cube, progress_bar(args.quiet, "candidate") as progress:
            table = stored_candidates(store, cube)
            if not len(table):
                print(f"note: no candidates are stored for {cube.path.name}: left out")
                continue
            parts.append(embed_candidates(cube, table, progress=progress))
            verdicts = store.latest(cube_collection(cube))
            for row in table:
                keys.append(f"{cube.path.name}:{row['source']}")
                rows.append({"cube": cube.path.name, "id": int(row["id"]), "source": str(row["source"]),
                             "snr": float(row["snr"]),
                             "verdict": summarise(verdicts.get(str(row["source"]), {}))["verdict"]})
    like = args.like if ":" in args.like else f"{Path(args.cubes[0]).name}:{args.like}"
    if like not in keys:
        raise InputError(f"No stored candidate {like}: give a source key of the first cube (e.g. x61-y49-z5, "
                         "from the vetting card or the vetted catalogue), or CUBE_FILE_NAME:SOURCE.")
    similar = SimilarCandidates(np.concatenate(parts), keys)
    found = similar.like(like, args.k)
    place = {key: i for i, key in enumerate(keys)}
    out = Table(rows=[{**rows[place[key]], "similarity": round(cosine, 4)} for key, cosine in found],
                names=["cube", "id", "source", "snr", "verdict", "similarity"])
    print(f"the {len(out)} candidates most like {like} (cosine similarity):")
    for r in out:
        print(f"  {r['similarity']:.3f}  {r['cube']}  id {r['id']}  {r['source']}  SNR {r['snr']:.1f}  "
              f"{r['verdict'] or 'unvetted'}")
    if args.output:
        write_table(out, args.output)
    return 0
