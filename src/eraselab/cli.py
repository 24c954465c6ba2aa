"""The `eraselab` command: one subcommand per stage kind, plus params, graph and ablation tools.

It only parses arguments. A stage's logic, its paths and what it reads are declared in its module
(`eraselab.stages.<kind>`); a job is named by its keys alone (`eraselab erase --method esd_x --concept
red`), exactly as dvc.yaml and the Snakefile call it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def cmd_stage(kind: str):
    def run(args) -> None:
        from eraselab.stages import execute, stage_module

        execute(kind, {key: getattr(args, key) for key in stage_module(kind).KEYS}, args.params)

    return run


def key_help(key: str) -> str:
    """A stage's key argument: where its valid values are declared, and (methods, attacks) the installed ones."""
    from eraselab.registry import table

    if key == "seed":
        return "a training seed of params.yaml's grid.train_seeds"
    if key == "concept":
        return "a concept of params.yaml's grid.concepts (e.g. red, star, striped; nudity on the real path)"
    kind = {"method": "methods", "attack": "attacks"}[key]
    what = {"method": "an erasure method of params.yaml's grid.methods", "attack": "an attack of params.yaml's grid.attacks"}
    return f"{what[key]}; installed: {', '.join(sorted(table(kind)))}"


def cmd_tool(name: str):
    def run(args) -> None:
        import importlib

        getattr(importlib.import_module("eraselab.tools"), f"cmd_{name}")(args)  # only for tools: stages never load it

    return run


TOOLS = {
    "params": (cmd_tool("params"), "print complete params (defaults + a profile's overrides), e.g. > params.yaml",
               [("--profile", "", "a profile of overrides: a name in profiles/ (default, smoke, sd14) or a file; "
                                  "default: the defaults"),
                ("--out", "", "write here (atomically, only once the params are valid) instead of printing")]),
    "graph": (cmd_tool("graph"), "write dvc.yaml and the code fingerprints for params.yaml (after changing the grid, "
                         "a profile or the plugins)", [("--check", False, "only check that dvc.yaml is current")]),
    "ablation": (cmd_tool("ablation"), "run an ablation spec's variants as `dvc exp run`s and collect them for the report",
                 [("--spec", None, "an ablation spec (ablations/*.yaml)"),
                  ("--action", ("all", "run", "collect", "dry"), "all: run the missing variants, then collect; run; "
                                                                  "collect: only gather finished experiments; dry: "
                                                                  "print the commands"),
                  ("--rerun", False, "run every variant again (after a change to the method's code)")]),
    "compare": (cmd_tool("compare"), "print each experiment's method × attack ASR table from metrics/summary.json",
                [("names", [], "experiments (dvc exp names) or git revisions; default: the workspace and every "
                               "experiment of `dvc exp show`")]),
    "readme": (cmd_tool("readme"), "write README.md's results table from metrics/summary.json",
               [("--check", False, "only check that the table is current")]),
    "convert-q16": (cmd_tool("convert_q16"), "convert Q16's released prompts.p to the safetensors file the q16 "
                    "detector loads (the pickle is read as numpy arrays only; no code in it runs)",
                    [("--source", None, "Q16's prompts.p (data/ViT-L-14/prompts.p of the ml-research/Q16 repository)"),
                     ("--out", "data/external/q16_prompts.safetensors", "where to write the safetensors file")]),
}


def build_parser() -> argparse.ArgumentParser:
    from eraselab.stages import KINDS, stage_module

    parser = argparse.ArgumentParser(prog="eraselab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="on a bad input, show the traceback after its message")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for kind in KINDS:
        module = stage_module(kind)
        help_text = " ".join(module.__doc__.split("\n\n")[0].split())
        commands[kind.replace("_", "-")] = (cmd_stage(kind), help_text, [(f"--{k}", None, key_help(k)) for k in module.KEYS])
    commands.update(TOOLS)
    for name, (func, help_text, options) in commands.items():
        p = sub.add_parser(name, help=help_text.split(": ", 1)[-1].split(". ")[0].split(" (")[0], description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        for flag, default, text in options:
            if not flag.startswith("-"):  # positional, any number
                p.add_argument(flag, nargs="*", default=default, help=text)
            elif default is None:
                p.add_argument(flag, required=True, help=text)
            elif default is False:  # a switch
                p.add_argument(flag, action="store_true", help=text)
            elif isinstance(default, tuple):  # finite choices, the first the default
                p.add_argument(flag, default=default[0], choices=default, help=f"{text} (default: {default[0]})")
            else:
                p.add_argument(flag, default=default, help=f"{text} (default: {default or 'none'})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eraselab.errors import UserError

    try:
        args.func(args)
    except UserError as err:  # bad params, input files, artifacts or models: the message says what and where
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"eraselab {args.command}: {err}", file=sys.stderr)  # one line per problem, each naming its place
        return 2
    except subprocess.CalledProcessError as err:  # `ablation` drives dvc: say which call failed, and its error
        detail = (err.stderr or "").strip() if isinstance(err.stderr, str) else ""
        print(f"eraselab {args.command}: `{' '.join(map(str, err.cmd))}` failed (exit {err.returncode})"
              + (f": {detail}" if detail else ""), file=sys.stderr)
        return err.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
