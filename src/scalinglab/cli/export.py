"""`scalinglab export`: a trained run as a Hugging Face model folder or an ONNX file."""

ORDER = 45


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a run to Hugging Face transformers (GPT) or ONNX (GPT, RNN, GRU, LSTM)",
        description=(
            "Export a run's newest checkpoint. --format hf writes a transformers model folder "
            "(GPT-2 for learned positions, GPT-NeoX for rotary) with the tokenizer; --format "
            "onnx writes one .onnx file. Either is loaded back and its logits compared with "
            "ours before it is moved into place. Needs: pip install 'scalinglab[export]'."
        ),
    )
    p.add_argument("run", metavar="RUN", help="run folder made by `scalinglab train`")
    p.add_argument("--format", required=True, choices=("hf", "onnx"), help="what to write")
    p.add_argument("--out", "-o", required=True, metavar="PATH", help="a folder (hf) or FILE.onnx")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from scalinglab.cli._util import print_json
    from scalinglab.errors import ConfigError

    if not args.out.strip():  # Path("") is ".": it was refused as '--out . contains the run'
        raise ConfigError("--out is empty: give where to write the export")
    if args.format == "hf":
        if args.opset is not None:
            raise ConfigError("--opset applies to --format onnx only")
        from scalinglab.export.hf import export_hf

        out = export_hf(args.run, args.out, force=args.force)
        what = f"{out['architecture']}, max abs logit difference {out['max_abs_logit_diff']:.3g}"
    else:
        from scalinglab.export.onnx import export_onnx

        out = export_onnx(args.run, args.out, force=args.force, opset=args.opset)
        what = (
            f"{', '.join(out['inputs'])} -> {', '.join(out['outputs'])}, "
            f"{out['bytes']:,} bytes, max abs difference vs onnxruntime {out['max_abs_diff']:.3g}"
        )
    if args.json:
        print_json(out)
    else:
        print(f"{args.run} (step {out['step']}) -> {out['out']}: {what}")
    return 0
