"""The `eraselab` command: one subcommand per stage kind, plus params, graph and ablation tools.

It only parses arguments. A stage's logic, its paths and what it reads are declared in its module
(`eraselab.stages.<kind>`); a job is named by its keys alone (`eraselab erase --method esd_x --concept
red`), exactly as dvc.yaml and the Snakefile call it.
"""

from __future__ import annotations

import argparse
import subprocess
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
    from eraselab.params import dump_params, load_profile

    params = load_profile(args.profile) if args.profile else None
    sys.stdout.write(dump_params(params, Path(args.profile).stem if args.profile else "default"))


def cmd_graph(args) -> None:
    """Write dvc.yaml (and the code fingerprints) for params.yaml; --check only says whether it is current."""
    from eraselab import graph
    from eraselab.params import load_params

    if args.check:
        graph.check_dvc_yaml(args.params)
        print("dvc.yaml: current")
        return
    changed = graph.write_dvc_yaml(args.params)
    units = graph.write_fingerprints(load_params(args.params))
    print(f"dvc.yaml: {'written' if changed else 'unchanged'}; {len(units)} code fingerprint(s) changed")


def cmd_stage(kind: str):
    def run(args) -> None:
        from eraselab.stages import execute, stage_module

        execute(kind, {key: getattr(args, key) for key in stage_module(kind).KEYS}, args.params)

    return run


KEY_HELP = {"method": "an erasure method of params.yaml's grid.methods",
            "concept": "a concept of params.yaml's grid.concepts",
            "attack": "an attack of params.yaml's grid.attacks"}
TOOLS = {
    "params": (cmd_params, "print complete params (defaults + a profile's overrides), e.g. > params.yaml",
               [("--profile", "", "a profile file (profiles/*.yaml) of overrides; default: the defaults")]),
    "graph": (cmd_graph, "write dvc.yaml and the code fingerprints for params.yaml (after changing the grid, "
                         "a profile or the plugins)", [("--check", False, "only check that dvc.yaml is current")]),
    "ablation": (cmd_ablation, "run an ablation spec's variants as `dvc exp run`s and collect them for the report",
                 [("--spec", None, "an ablation spec (ablations/*.yaml)"),
                  ("--action", "all", "all, run, collect or dry"), ("--rerun", False, "run variants again")]),
}


def build_parser() -> argparse.ArgumentParser:
    from eraselab.stages import KINDS, stage_module

    parser = argparse.ArgumentParser(prog="eraselab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for kind in KINDS:
        module = stage_module(kind)
        help_text = module.__doc__.strip().split("\n\n")[0].replace("\n", " ")
        commands[kind.replace("_", "-")] = (cmd_stage(kind), help_text, [(f"--{k}", None, KEY_HELP[k]) for k in module.KEYS])
    commands.update(TOOLS)
    for name, (func, help_text, options) in commands.items():
        p = sub.add_parser(name, help=help_text.split(": ", 1)[-1][:100], description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        for flag, default, text in options:
            if default is None:
                p.add_argument(flag, required=True, help=text)
            elif default is False:  # a switch
                p.add_argument(flag, action="store_true", help=text)
            else:
                p.add_argument(flag, default=default, help=f"{text} (default: {default or 'none'})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eraselab.params import ParamsError
    from eraselab.preflight import MissingExternalsError

    try:
        args.func(args)
    except (ParamsError, MissingExternalsError) as err:
        print(f"eraselab {args.command}: {err}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:  # `ablation` drives dvc: say which call failed, and its error
        detail = (err.stderr or "").strip() if isinstance(err.stderr, str) else ""
        print(f"eraselab {args.command}: `{' '.join(map(str, err.cmd))}` failed (exit {err.returncode})"
              + (f": {detail}" if detail else ""), file=sys.stderr)
        return err.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
