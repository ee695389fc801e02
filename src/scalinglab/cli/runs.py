"""`scalinglab runs DIR [--csv OUT | --out FILE]`: the runs table, rebuilt from the run folders."""

ORDER = 80


def register(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="the runs table of a sweep folder (or any folder of run folders)",
        description=(
            "Rebuild the runs table from run folders (result.json, config.toml, sweep.json): "
            "one row per run, failed and diverged runs included with their status. "
            "The CSV is the input of `scalinglab fit`."
        ),
    )
    p.add_argument("dir", help="a sweep folder, a folder of run folders, or one run folder")
    p.add_argument("--csv", metavar="OUT", help="write the table as CSV to OUT")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the table to FILE: CSV, JSON lines or Parquet, by --format or the suffix "
        "(.csv, .jsonl, .parquet; Parquet needs pyarrow, scalinglab[dataframe])",
    )
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), help="the format of --out")
    p.add_argument(
        "--status", help="only rows with this status (e.g. completed); default: all rows"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from scalinglab.errors import ConfigError
    from scalinglab.sweep.table import format_table, runs_table, write_csv, write_table

    if args.format and not args.out:
        raise ConfigError("--format says how to write --out FILE; give --out too")
    rows = runs_table(args.dir)
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}", file=sys.stderr)
    if args.out:
        fmt = write_table(rows, args.out, args.format)
        print(f"wrote {len(rows)} rows to {args.out} ({fmt})", file=sys.stderr)
    if not args.csv and not args.out:
        print(format_table(rows))
    return 0
