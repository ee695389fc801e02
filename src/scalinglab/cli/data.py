"""`scalinglab data list` and `scalinglab data fetch NAME... --out DIR`: the public data the
docs use, downloaded with its size and sha256 checked."""

import os

ORDER = 5


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="list or fetch the public corpora and scaling data sets the docs use",
        description="The public data the docs use (corpora, published scaling runs), each "
        "file pinned to an upstream commit with its size and sha256.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the data sets: name, files, size, what they are")
    ls.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    ls.set_defaults(func=run_list)
    f = sub.add_parser(
        "fetch",
        help="download data sets (checked, atomic, resumable)",
        description="Download the files of each NAME into DIR (DIR/corpora/..., "
        "DIR/scaling_data/...). A file already there with the right sha256 is kept, one "
        "with another is refused (--force replaces it); an interrupted download resumes on "
        "the next run.",
    )
    f.add_argument("names", nargs="+", metavar="NAME", help="data sets (see `data list`)")
    f.add_argument(
        "--out", "-o", metavar="DIR",
        help="where to put them (default: $SCALINGLAB_CACHE/data or ~/.cache/scalinglab/data)",
    )  # fmt: skip
    f.add_argument(
        "--mirror", metavar="URL", default=os.environ.get("SCALINGLAB_DATA_MIRROR") or None,
        help="fetch the same relative paths (corpora/..., scaling_data/...) from this base URL "
        "(default: $SCALINGLAB_DATA_MIRROR, else each file's upstream URL)",
    )  # fmt: skip
    f.add_argument(
        "--force", action="store_true",
        help="replace a file in the way that is not the catalogue's (another size or sha256)",
    )  # fmt: skip
    f.add_argument("--json", action="store_true", help="print the files' paths as a JSON list")
    f.set_defaults(func=run_fetch)


def run_list(args) -> int:
    from scalinglab.data.fetch import CATALOGUE

    if args.json:
        from scalinglab.cli._util import print_json

        print_json([{"name": d.name, "bytes": d.size, "what": d.what,
                     "files": [f.path for f in d.files],
                     "derived": [f.path for f in d.derived]} for d in CATALOGUE.values()])  # fmt: skip
        return 0
    for d in CATALOGUE.values():
        print(f"{d.name:<20} {d.size / 1e6:6.2f} MB  {d.what}")
        for f in d.files:
            print(f"{'':<20} {f.path}")
        for f in d.derived:
            print(f"{'':<20} {f.path} (made from the files above)")
    return 0


def run_fetch(args) -> int:
    from pathlib import Path

    from scalinglab.data.fetch import default_dir, fetch, lookup
    from scalinglab.errors import ConfigError

    out = Path(args.out) if args.out else default_dir()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file where a folder is expected")
    paths = []
    for d in lookup(args.names):
        for path in fetch(d, out, args.mirror, force=args.force):
            paths.append(str(path))
            if not args.json:
                print(path)
    if args.json:
        from scalinglab.cli._util import print_json

        print_json(paths)
    return 0
