"""Command-line options generated from a settings model's fields: name, type, choices, default and help.

``--field-name`` sets ``field_name``; a few fields keep a short alias (``--lr``).
Options that are not given stay None, so a ``--config`` file's values are kept.
A field holding a settings dataclass (``augment``) gets ``--augment``/``--no-augment``
(its ``light()`` preset or all off) and one ``--augment-<part>`` per part.
"""

import argparse
import dataclasses

from tltools.checked import allowed, base_type, choices_of, field_info

# Short names kept from earlier versions of the CLI, besides --field-name.
ALIASES = {
    "learning_rate": ["--lr"],
    "fine_tune_learning_rate": ["--fine-tune-lr"],
    "early_stopping_patience": ["--patience"],
    "val_fraction": ["--val-split"],
    "test_fraction": ["--test-split"],
}


def add_options(parser: argparse.ArgumentParser, model, fields=None, *, title: str | None = None) -> None:
    """Add one option per field of ``model`` (a :class:`tltools.checked.Checked` subclass), or of ``fields``.

    With ``title`` the options are listed under that heading in ``--help``.
    """
    group = parser.add_argument_group(title) if title else parser
    for name in fields or model.model_fields:
        field = model.model_fields[name]
        kind = base_type(field.annotation)
        if dataclasses.is_dataclass(kind):
            _add_dataclass_options(parser, name, kind, field.description)
            continue
        add_option(group, name, model, f"--{name.replace('_', '-')}", *ALIASES.get(name, []), dest=name)


def values_from_args(args: argparse.Namespace, model, base: dict) -> dict:
    """Return ``base`` (plain settings values) overridden by the options of ``model``'s fields that were given."""
    values = dict(base)
    for name, field in model.model_fields.items():
        kind = base_type(field.annotation)
        if dataclasses.is_dataclass(kind):
            preset = getattr(args, f"{name}_preset", None)
            parts = dict(values.get(name) or {})
            if preset is not None:
                parts = dataclasses.asdict(kind.light() if preset else kind())
            for part in dataclasses.fields(kind):
                given = getattr(args, f"{name}_{part.name}", None)
                if given is not None:
                    parts[part.name] = None if given == "none" else given
            if preset is not None or parts:
                values[name] = parts
        elif getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return values


def _add_dataclass_options(parser, name: str, kind, description: str | None) -> None:
    """``--name``/``--no-name`` (the ``light()`` preset or all off) and ``--name-<part>`` per dataclass field."""
    group = parser.add_argument_group(f"{name} ({description})" if description else name)
    switch = group.add_mutually_exclusive_group()
    flag = name.replace("_", "-")
    light = ", ".join(f"{key} {value}" for key, value in dataclasses.asdict(kind.light()).items() if value)
    switch.add_argument(f"--{flag}", dest=f"{name}_preset", action="store_true", default=None,
                        help=f"switch on the light preset ({light})")
    switch.add_argument(f"--no-{flag}", dest=f"{name}_preset", action="store_false",
                        help="switch every one off (default)")
    for part in dataclasses.fields(kind):
        add_option(group, part.name, kind, f"--{flag}-{part.name.replace('_', '-')}", dest=f"{name}_{part.name}")


def add_option(parser, name: str, owner, *flags: str, dest: str) -> None:
    """Add one option ``flags`` for field ``name`` of ``owner`` with its type, choices, default and range in the help.

    Not given, the option is None (the field's default then applies where the value is used).
    """
    field = field_info(owner, name)
    kind = base_type(field.annotation)
    rule = allowed(owner, name)
    default = field.get_default(call_default_factory=True)
    shown = "none" if default is None else default
    help_text = (field.description or name).replace("%", "%%") + f" (default {shown}" + (f"; {rule})" if rule else ")")
    if kind is bool:
        parser.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif choices_of(field.annotation):
        choices = ["none" if choice is None else choice for choice in choices_of(field.annotation)]
        parser.add_argument(*flags, dest=dest, choices=choices, metavar="{" + ",".join(choices) + "}",
                            help=help_text.replace(f"; {rule}", ""))
    else:
        parser.add_argument(*flags, dest=dest, type=kind if kind in (int, float) else str, help=help_text)
