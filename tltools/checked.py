"""``Checked``: a pydantic model whose every field declares its type, default, range and help, once.

Settings models (:class:`tltools.training.TrainConfig`, :class:`tltools.data.split.SplitSettings`)
derive from it. A bad value is refused when the model is built or a field is assigned,
as a one-line :class:`~tltools.errors.TLToolsError` naming the field, the value and what is
allowed. The CLI's options and the app's widget bounds are read from the same fields
(:meth:`Checked.bounds`, :meth:`Checked.help`).
"""

import types
import typing

import pydantic
import pydantic.fields

from tltools.errors import TLToolsError


class Checked(pydantic.BaseModel):
    """A validated settings model; see the module docstring."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    def __init__(self, **values):
        """Build and validate the settings.

        Raises:
            TLToolsError: A value is out of range, of the wrong kind, or unknown (one line).
        """
        try:
            super().__init__(**values)
        except pydantic.ValidationError as error:
            raise TLToolsError(error_line(type(self), error)) from None

    def __setattr__(self, name, value):
        try:
            super().__setattr__(name, value)
        except pydantic.ValidationError as error:
            raise TLToolsError(error_line(type(self), error)) from None

    def replace(self, **changes) -> typing.Self:
        """Return a validated copy with ``changes`` applied (``dataclasses.replace`` for settings).

        Raises:
            TLToolsError: A changed value is out of range or unknown.
        """
        return type(self)(**{**dict(self), **changes})

    @classmethod
    def bounds(cls, name: str) -> tuple:
        """Return ``(low, high)`` of a numeric field as declared (``None`` where it is open)."""
        return bounds(cls, name)

    @classmethod
    def help(cls, name: str) -> str:
        """Return a field's one-line help."""
        return cls.model_fields[name].description or ""


def bounds(owner, name: str) -> tuple:
    """Return ``(low, high)`` of numeric field ``name`` of ``owner`` (see :func:`field_info`); None where open."""
    low = high = None
    for rule in field_info(owner, name).metadata:
        for key in ("ge", "gt"):
            low = getattr(rule, key, None) if getattr(rule, key, None) is not None else low
        for key in ("le", "lt"):
            high = getattr(rule, key, None) if getattr(rule, key, None) is not None else high
    return low, high


def field_info(owner, name: str) -> pydantic.fields.FieldInfo | None:
    """Return the declaration (type, default, ranges, help) of field ``name`` of a pydantic model or of a
    dataclass whose fields are ``Annotated[type, Field(...)]``; None when there is no such field."""
    if isinstance(owner, type) and issubclass(owner, pydantic.BaseModel):
        return owner.model_fields.get(name)
    hints = typing.get_type_hints(owner, include_extras=True)
    if name not in hints:
        return None
    info = pydantic.fields.FieldInfo.from_annotation(hints[name])
    info.default = owner.__dataclass_fields__[name].default
    return info


def allowed(owner, name: str) -> str:
    """Describe what field ``name`` of ``owner`` (see :func:`field_info`) accepts, e.g. ``"a number from 0 to 1"``."""
    field = field_info(owner, name)
    if field is None:
        return ""
    choices = choices_of(field.annotation)
    if choices:
        return "one of " + ", ".join("none" if c is None else str(c) for c in choices)
    rules = {}
    for rule in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(rule, key, None) is not None:
                rules[key] = getattr(rule, key)
    low = _number(rules["ge"]) if "ge" in rules else (f"above {_number(rules['gt'])}" if "gt" in rules else None)
    high = _number(rules["le"]) if "le" in rules else (f"below {_number(rules['lt'])}" if "lt" in rules else None)
    kind = "a whole number" if base_type(field.annotation) is int else "a number"
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}" if "ge" in rules and "le" in rules else f"{kind} {low}..{high}"
    if low is not None:
        return f"{kind} >= {low}" if "ge" in rules else f"{kind} {low}"
    return ""


def error_line(model: type[pydantic.BaseModel], error: pydantic.ValidationError) -> str:
    """Turn pydantic's report into one line: ``field=value is not allowed; use <range>``."""
    problems = error.errors(include_url=False)
    unknown = [str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"]
    if unknown:
        return (f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(model.model_fields)}")
    problem = problems[0]
    if not problem["loc"]:  # a rule across fields (a model validator): its own message
        return _plain(problem["msg"])
    name = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
    value = problem.get("input")
    if problem["type"] in ("value_error", "assertion_error"):
        return f"{name}={value!r}: {_plain(problem['msg'])}"
    owner, field = model, str(problem["loc"][0])
    if len(problem["loc"]) == 2 and field in model.model_fields:  # a field of a nested settings dataclass
        owner, field = base_type(model.model_fields[field].annotation), str(problem["loc"][1])
    rule = allowed(owner, field) if len(problem["loc"]) <= 2 else ""
    return f"{name}={value!r} is not allowed; use {rule or _plain(problem['msg']).lower()}"


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ").replace("\n", " ")


def choices_of(annotation) -> tuple:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) annotation, else ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    args = typing.get_args(annotation)
    literals = [a for a in args if typing.get_origin(a) is typing.Literal]
    if literals and type(None) in args:
        return (*typing.get_args(literals[0]), None)
    return ()


def base_type(annotation):
    """``int`` for ``int`` and ``int | None``, and so on; the annotation itself otherwise."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation
