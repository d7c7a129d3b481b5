"""Click options made from config dataclass fields: the default, the help and the choices have one source.

``field_option(Config, "gamma")`` is ``--gamma`` with the field's default, its docstring as help,
its type from the annotation, its ``CHOICES`` as a ``click.Choice`` and its ``RANGE`` as an
``IntRange`` / ``FloatRange``; a ``bool`` field is a
flag (``--name``) when it defaults to False, else a ``--name/--no-name`` switch. ``config_options(HeadConfig)`` adds one such option per field, so a
new field of that config is a new command-line option without touching the CLI.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import click

from clawcrane.config import CHOICES, RANGE, field_docs

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and +-inf (a range check lets nan through)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.min is None and self.max is None:
            self.name = "float"  # help shows FLOAT, as for a plain float

    def convert(self, value, param, ctx):
        out = super().convert(value, param, ctx)
        if out is not None and not math.isfinite(out):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return out


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def help_text(doc: str) -> str:
    """A field docstring as option help: no rst quotes, no '(runtime only)' (a note for cache keys, not for users)."""
    return re.sub(r"\s*\(runtime only\)", "", doc.replace("``", "")).strip()


def default_of(cls: type, name: str) -> Any:
    """A field's default value (calling its factory)."""
    f = _field(cls, name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def field_option(cls: type, name: str, *decls: str, **overrides: Any) -> Callable:
    """``click.option`` for field ``name`` of config class ``cls`` (see the module docstring).

    ``decls``: the option names (default ``--<name-with-dashes>``); ``overrides`` replace any
    click keyword (``default``, ``help``, ``type``, ...). The parameter is always called ``name``.
    """
    f = _field(cls, name)
    flag = "--" + name.replace("_", "-")
    annotation = str(f.type).replace(" ", "")
    kind = _TYPES.get(annotation.split("|")[0])
    kw: dict[str, Any] = {"show_default": True, "help": help_text(field_docs(cls).get(name, ""))}
    default = default_of(cls, name)
    if default is not dataclasses.MISSING:
        kw["default"] = default
    if kind is bool and default is False:
        decls = decls or (flag,)
        kw["is_flag"] = True
    elif kind is bool:
        decls = decls or (f"{flag}/--no-{flag[2:]}",)
    else:
        decls = decls or (flag,)
        allowed, bounds = f.metadata.get(CHOICES), f.metadata.get(RANGE)
        if allowed is not None:
            kw["type"] = click.Choice(list(allowed))
        elif bounds is not None and kind in (int, float):
            lo, hi, lo_open, hi_open = bounds
            kw["type"] = (click.IntRange(lo, hi) if kind is int
                          else FiniteFloatRange(lo, hi, min_open=bool(lo_open), max_open=bool(hi_open)))
        else:
            kw["type"] = FiniteFloatRange() if kind is float else kind
    kw.update(overrides)
    return click.option(*decls, name, **kw)


def config_options(cls: type, *, exclude: Iterable[str] = (), **per_field: dict[str, Any]) -> Callable:
    """One ``field_option`` per field of ``cls`` (declaration order), but ``exclude``; ``per_field[name]`` overrides."""
    skip = set(exclude)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]

    def apply(fn: Callable) -> Callable:
        for name in reversed(names):  # click lists options in decoration order, outermost first
            fn = field_option(cls, name, **per_field.get(name, {}))(fn)
        return fn

    return apply


def config_from(cls: type, values: dict[str, Any], **extra: Any) -> Any:
    """An instance of ``cls`` from the command's parameter values that name its fields (plus ``extra``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names}, **extra)
