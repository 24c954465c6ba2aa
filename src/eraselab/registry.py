"""Registries of erasure methods and attacks: name -> "module:Class", imported only when used.

Adding a method or an attack is one module plus one line here (and its params in params.yaml).
Names are lower-case; they become stage names, paths and `dvc exp show` columns.
"""

from __future__ import annotations

import importlib

METHODS = {
    "none": "eraselab.erasure.none:NoErasure",
    "esd_x": "eraselab.erasure.esd:EsdX",
    "esd_u": "eraselab.erasure.esd:EsdU",
    "uce": "eraselab.erasure.uce:UCE",
    "sld": "eraselab.erasure.sld:SLD",
    "negative_prompt": "eraselab.erasure.negative_prompt:NegativePrompt",
    "darkminer": "eraselab.erasure.darkminer:DarkMiner",
    "steerdiff": "eraselab.erasure.steerdiff:SteerDiff",
}

ATTACKS = {
    "no_attack": "eraselab.attacks.no_attack:NoAttack",
    "unlearndiffatk": "eraselab.attacks.unlearndiffatk:UnlearnDiffAtk",
    "p4d_n": "eraselab.attacks.p4d:P4dN",
    "p4d_k": "eraselab.attacks.p4d:P4dK",
    "ring_a_bell": "eraselab.attacks.ring_a_bell:RingABell",
    "cce": "eraselab.attacks.cce:CCE",
}


def _load(table: dict[str, str], name: str, what: str):
    if name not in table:
        raise KeyError(f"unknown {what} {name!r}; valid choices: {', '.join(table)}")
    module, cls = table[name].split(":")
    return getattr(importlib.import_module(module), cls)


def method(name: str):
    return _load(METHODS, name, "erasure method")


def attack(name: str):
    return _load(ATTACKS, name, "attack")
