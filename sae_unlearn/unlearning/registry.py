"""The registry of unlearning methods: the pipeline, demo, recipes, widgets and benchmarks list
what it holds, so adding a method edits none of them.

A method registers itself with the decorator, in its own module (the package imports its
built-in methods once, in :mod:`sae_unlearn.unlearning`); a method from outside the package, a
notebook or a test file, registers the same way::

    @register("my_method")
    class MyMethod(GradientMethod):
        ...
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable

from sae_unlearn.models.zoo import ZOO, is_reasoning_model, zoo_model_refuses
from sae_unlearn.unlearning.base import UnlearningMethod

METHODS: dict[str, type[UnlearningMethod]] = {}
"""Registered methods by name, in registration order."""


def register(name: str, replace: bool = False) -> Callable[[type[UnlearningMethod]], type[UnlearningMethod]]:
    """Class decorator: register an :class:`~sae_unlearn.unlearning.base.UnlearningMethod` under ``name``.

    A name already taken by another class raises unless ``replace=True`` (re-running a notebook
    cell that defines the same class replaces it quietly).
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"method name {name!r} must be a lower-case identifier, e.g. 'grad_ascent'.")

    def decorate(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
            raise TypeError(f"@register({name!r}) decorates an UnlearningMethod subclass, not {cls!r}.")
        old = METHODS.get(name)
        same = old is not None and (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
        if old is not None and not (replace or same):
            raise ValueError(f"method name {name!r} is taken by {old.__module__}.{old.__qualname__}; pick another.")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorate


def get_method(name: str) -> type[UnlearningMethod]:
    """The method class registered under ``name`` (an unknown name raises with the close match)."""
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown unlearning method {name!r}; registered: {', '.join(METHODS)}.{hint}")
    return METHODS[name]


def settings_for(name: str, settings: dict) -> dict:
    """``settings`` shared by several methods, as the method ``name`` takes them.

    The training budget (``steps``, ``lr``, ``batch_size``, the guard, ``seed``, ``params``: the
    fields of :class:`~sae_unlearn.unlearning.base.TrainConfig`) is dropped for a method whose
    config has no such field (a weight-free SAE intervention trains nothing); every other key is
    kept, so a misspelt one still fails in the method's config with the close match.
    """
    from dataclasses import fields

    from sae_unlearn.unlearning.base import TrainConfig

    own = {f.name for f in fields(get_method(name).config_class)}  # type: ignore[arg-type]  # configs are dataclasses
    budget = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in settings.items() if k in own or k not in budget}


def method_label(name: str) -> str:
    """How tables and plots name a registered method (its class's ``label``, else the name upper-cased)."""
    cls = METHODS.get(name)
    return (cls.label if cls is not None and cls.label else "") or name.upper()


def method_runs_on(method: str, name: str) -> bool:
    """Whether registered method ``method`` can run on zoo entry ``name``: a reasoning method needs
    a reasoning model, a method that calls on the model's own refusal (UniErase) a model trained to
    refuse; every other method runs everywhere."""
    cls = get_method(method)
    if cls.reasoning and not is_reasoning_model(name):
        return False
    return not cls.needs_refusal or zoo_model_refuses(name)


def why_method_cannot_run(method: str, name: str) -> str:
    """The reason :func:`method_runs_on` is false, with the fix ("" when the method runs)."""
    if method_runs_on(method, name):
        return ""
    if get_method(method).reasoning:
        return f"{method!r} unlearns reasoning traces and needs a reasoning model (zoo model 'secrets-reasoning')"
    can = []
    for n in ZOO:
        with contextlib.suppress(OSError, ValueError):  # an entry whose data is not here (TOFU) is no suggestion
            if not ZOO[n].full_model_of and zoo_model_refuses(n):
                can.append(n)
    return (
        f'{method!r} needs a model that can already refuse ("I don\'t know"); zoo model {name!r} was never trained '
        f"to. Use zoo model {' or '.join(repr(n) for n in can)}, or a model fine-tuned on refusals"
    )


def methods_table() -> dict:
    """Every registered method as one table (name, label, what it does, whether it changes weights,
    which zoo models it runs on), in the results-table format of ``benchmarks/tables.py``: the
    README's list of methods is generated from it (``make tables``), so registering a method is
    what adds its row, and a test fails until the README shows it."""
    rows = []
    for name, cls in METHODS.items():
        # from the class alone (no zoo data is read: the table is the same with or without TOFU)
        where = (
            "a reasoning model (`secrets-reasoning`)"
            if cls.reasoning
            else "a model that can refuse (`secrets-idk`)"
            if cls.needs_refusal
            else "any model"
        )
        rows.append([f"`{name}`", method_label(name), cls.description, "yes" if cls.changes_weights else "no", where])
    return {
        "columns": ["name", "method", "what it does", "changes weights", "runs on"],
        "align": ["left"] * 5,
        "formats": [None] * 5,
        "rows": rows,
    }
