"""The `eraselab` command line: every argument says what it takes; finite choices are listed."""

from __future__ import annotations

import argparse

import pytest

from eraselab.cli import build_parser
from eraselab.registry import table


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_argument_of_every_command_has_help():
    for name, sub in subcommands(build_parser()).items():
        for action in sub._actions:
            assert action.help and action.help.strip() != "", (name, action.dest)
            assert "(default: )" not in action.help, (name, action.dest)


@pytest.mark.parametrize(("command", "flag", "kind"), [("erase", "--method", "methods"),
                                                       ("attack", "--attack", "attacks")])
def test_stage_keys_name_the_installed_plugins(command, flag, kind):
    sub = subcommands(build_parser())[command]
    [action] = [a for a in sub._actions if flag in a.option_strings]
    for name in table(kind):
        assert name in action.help, (command, flag, name)


def test_a_finite_option_refuses_other_values(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ablation", "--spec", "x.yaml", "--action", "sometimes"])
    assert "choose from 'all', 'run', 'collect', 'dry'" in capsys.readouterr().err
