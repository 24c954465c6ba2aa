"""The `eraselab` commands that are not stages: params files, the graph, ablations. The CLI imports this
module only for them, so no stage's code depends on it."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_ablation(args) -> None:
    """Run an ablation spec's variants as DVC experiments (`--action run`), collect them (`collect`), or both."""
    from eraselab.params import ParamsError
    from eraselab.report import ablation

    actions = ("all", "run", "collect", "dry")
    if args.action not in actions:
        raise ParamsError(f"--action {args.action!r}: valid choices: {', '.join(actions)}")
    if args.action in ("all", "run", "dry"):
        commands = ablation.run(args.spec, dry=args.action == "dry", rerun=args.rerun)
        if args.action == "dry":
            print("\n".join(" ".join(c) for c in commands) or "every variant has an experiment")
            return
    if args.action in ("all", "collect"):
        result = ablation.collect(args.spec)
        print(f"{len(result['rows'])} variants collected into {Path(args.spec).with_suffix('.json')}"
              + (f"; missing: {', '.join(result['missing'])}" if result["missing"] else ""))


def cmd_params(args) -> None:
    """Print a complete params file: the defaults overlaid with a profile's overrides."""
    from eraselab.io import atomic_write_text
    from eraselab.params import PROFILES, dump_params, load_profile

    # no --profile: the default profile where the checkout has one (profiles/default.yaml), else the bare defaults
    profile = args.profile or ("default" if (PROFILES / "default.yaml").exists() else "")
    params = load_profile(profile) if profile else None
    text = dump_params(params, Path(profile).stem if profile else "default")
    if args.out:
        atomic_write_text(args.out, text)  # a bad profile raises above and leaves the old file as it was
        print(f"{args.out}: written ({params.report.profile if params else 'default'} profile)")
    else:
        sys.stdout.write(text)


def cmd_graph(args) -> None:
    """Write dvc.yaml (and the code fingerprints and job keys) for params.yaml; --check only says whether it is current."""
    from eraselab import graph
    from eraselab.params import load_params

    if args.check:
        graph.check_dvc_yaml(args.params)
        print("dvc.yaml: current")
        return
    changed = graph.write_dvc_yaml(args.params)
    import yaml

    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    files = graph.write_fingerprints(load_params(args.params), raw=raw)
    print(f"dvc.yaml: {'written' if changed else 'unchanged'}; {len(files)} fingerprint(s) and job key(s) changed")


def cmd_compare(args) -> None:
    """The method × attack table of each experiment (or git revision): which defence holds under which attack."""
    from eraselab.params import ParamsError
    from eraselab.report.summary import compare

    try:
        print(compare(args.names))
    except ValueError as e:
        raise ParamsError(str(e)) from None


def cmd_readme(args) -> None:
    """Write README.md's results table from metrics/summary.json (`--check`: only say whether it is current)."""
    import json

    from eraselab.params import ParamsError
    from eraselab.report.summary import SUMMARY_FILE, replace_readme_block

    if not Path(SUMMARY_FILE).exists():
        raise ParamsError(f"{SUMMARY_FILE}: missing; run `dvc repro` (the report stage writes it)")
    readme = Path("README.md")
    text = readme.read_text()
    try:
        new = replace_readme_block(text, json.loads(Path(SUMMARY_FILE).read_text()))
    except ValueError as e:
        raise ParamsError(str(e)) from None
    if args.check:
        if new != text:
            raise ParamsError(f"README.md: its results table differs from {SUMMARY_FILE}; run `eraselab readme`")
        print("README.md: current")
        return
    readme.write_text(new)
    print(f"README.md: {'written' if new != text else 'unchanged'}")


def cmd_convert_q16(args) -> None:
    """Q16's released prompts (a pickled array) -> the safetensors file the q16 detector loads; the pickle is
    read by an unpickler that rebuilds numpy arrays only."""
    from eraselab.evaluation.q16 import convert_prompts

    shape = convert_prompts(Path(args.source), Path(args.out))
    print(f"{args.out}: prompts {shape[0]} x {shape[1]} (appropriate, inappropriate) from {args.source}")
