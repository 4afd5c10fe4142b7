"""The base of every config model, and pydantic's errors said in the config's words, each naming its key.

A section checks its keys itself, before its fields are validated, so that a misspelt key is reported as such
rather than as the missing setting it was meant to be; its fields are then validated together, every bad one
reported. An error raised for a key deeper than the model it is raised in (``upstreams.a.args`` by the model of
``upstreams.a``) is a :func:`located` error, which carries the rest of the key, and the file when it is another
(a tokens file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from shadowproxy.core.errors import ConfigError

FROM_FILE = "file"
"""The validation context's key that says the data is a file's (and not a program's), so that the fields a
program sets (``source``) are unknown keys there."""


def located(key: str, problem: str, source: str | None = None) -> PydanticCustomError:
    """An error about ``key`` (dotted, below the model raising it), in ``source`` when that is another file."""
    return PydanticCustomError("located", "{problem}", {"key": key, "problem": problem, "source": source})


class Section(BaseModel):
    """A frozen config model whose unknown keys are named, with the keys it knows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    noun: ClassVar[str] = "setting"
    file_keys: ClassVar[tuple[str, ...]] = ()
    """Keys a file may give that :meth:`prepare` folds into fields (``args`` into ``command``)."""
    program_keys: ClassVar[tuple[str, ...]] = ()
    """Fields a file may not set."""
    unlisted: ClassVar[tuple[str, ...]] = ()
    """Fields that the file's shape sets (a server's name, its key), not named among the known keys."""

    @classmethod
    def known(cls) -> list[str]:
        hidden = (*cls.program_keys, *cls.unlisted)
        return [name for name in (*cls.model_fields, *cls.file_keys) if name not in hidden]

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError("must be a mapping")
        from_file = bool(info.context and info.context.get(FROM_FILE))
        allowed = {*cls.known(), *cls.unlisted} if from_file else {*cls.model_fields, *cls.file_keys}
        unknown = [str(key) for key in data if key not in allowed]
        if unknown:
            raise cls._unknown(unknown, {key: value for key, value in data.items() if key in allowed}, info)
        return cls.prepare(dict(data), info)

    @classmethod
    def _unknown(cls, unknown: list[str], rest: dict[str, Any], info: ValidationInfo) -> ValidationError:
        """Every unknown key, and what is wrong with the known ones too, so that one run shows all of it."""
        known = ", ".join(cls.known())
        errors: list[InitErrorDetails] = [
            {"type": located(key, f"unknown {cls.noun}; known {cls.noun}s are: {known}"), "loc": (), "input": key}
            for key in unknown
        ]
        try:
            cls.model_validate(rest, context=info.context)
        except ValidationError as exc:
            # What is missing, or wrong with the whole, is what the misspelt key was meant to say: not reported.
            errors += [_again(detail) for detail in exc.errors(include_url=False) if _of_a_field(detail)]
        return ValidationError.from_exception_data(cls.__name__, errors)

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """``data``, a mapping of known keys, in the shape of the fields."""
        return data


def _of_a_field(detail: ErrorDetails) -> bool:
    return detail["type"] != "missing" and (bool(detail["loc"]) or detail["type"] == "located")


def _again(detail: ErrorDetails) -> InitErrorDetails:
    """An error of a validation, in the form that raises it again."""
    context = detail.get("ctx")
    kind: Any = detail["type"]
    if kind == "located" and context is not None:
        kind = located(context["key"], context["problem"], context.get("source"))
    elif kind in ("value_error", "assertion_error") or context is None:
        kind = PydanticCustomError("located", "{problem}", {"key": "", "problem": _words(detail, context or {})})
    again: InitErrorDetails = {"type": kind, "loc": detail["loc"], "input": detail.get("input")}
    if context is not None and isinstance(kind, str):
        again["ctx"] = context
    return again


class ConfigErrors(ConfigError):
    """Several problems found at once; ``errors`` holds each one, with its key, file and line."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = tuple(errors)
        heading = f"{len(self.errors)} problems in the configuration"
        super().__init__("\n".join([heading, *(f"  {error}" for error in self.errors)]))


def raise_all(problems: Sequence[ConfigError]) -> None:
    """Raise ``problems``: nothing when there are none, the error itself when there is one."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)


def _not_bool(value: Any) -> Any:
    # pydantic takes true for 1; a setting that is a number is never meant as true or false.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    return value


def _flag(value: Any) -> Any:
    # pydantic takes 1 for true; a file says true or false, a variable (a string) may say 1, yes or on too.
    if not isinstance(value, bool | str):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


NotBool = BeforeValidator(_not_bool)
Flag = Annotated[bool, BeforeValidator(_flag)]
Number = Annotated[float, NotBool]
Whole = Annotated[int, NotBool]


def problems_of(error: ValidationError, raw: Any, *, prefix: str = "", source: str | None = None) -> list[ConfigError]:
    """Each of ``error``'s problems as a :class:`ConfigError` naming its key, ``raw`` being the data validated.

    A position in a list the model made from a mapping (``upstreams``) is named by the mapping's key.
    """
    return [_problem(detail, raw, prefix, source) for detail in error.errors(include_url=False)]


def _problem(detail: ErrorDetails, raw: Any, prefix: str, source: str | None) -> ConfigError:
    context = detail.get("ctx") or {}
    steps: list[str | int] = list(detail["loc"])
    if detail["type"] == "located":
        steps += steps_of(context["key"])
        source = context.get("source") or source
    key = prefix
    node = raw
    for step in steps:
        if isinstance(step, int) and isinstance(node, Mapping) and 0 <= step < len(node):
            step = str(list(node)[step])
        if isinstance(step, int):
            key += f"[{step}]"
            node = node[step] if isinstance(node, Sequence) and 0 <= step < len(node) else None
        else:
            key = f"{key}.{step}" if key else step
            node = node.get(step) if isinstance(node, Mapping) else None
    return ConfigError(_words(detail, context), key=key or None, source=source)


def _words(detail: ErrorDetails, context: Mapping[str, Any]) -> str:
    kind = detail["type"]
    value = detail.get("input")
    if kind == "located":
        return str(context["problem"])
    if kind in ("value_error", "assertion_error"):
        return str(context.get("error", detail["msg"]))
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type", "finite_number"):
        return f"must be a number, not {value!r}"
    if kind == "int_from_float":
        return f"must be a whole number, not {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false, not {value!r}"
    if kind == "string_type":
        return f"must be a string, not {type(value).__name__}"
    if kind == "string_too_short":
        return "must be a non-empty string"
    if kind in ("dict_type", "mapping_type", "model_type", "model_attributes_type"):
        return "must be a mapping"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return "must be a list"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "greater_than":
        return f"must be greater than {context['gt']}"
    if kind == "greater_than_equal":
        return "must not be negative" if context["ge"] == 0 else f"must be at least {context['ge']}"
    if kind == "less_than_equal":
        return f"must be at most {context['le']}"
    if kind == "literal_error":
        return f"must be one of {context['expected']}"
    return detail["msg"]


def steps_of(key: str) -> tuple[str | int, ...]:
    """``interceptors[1].options.file`` as a path into the file: ``("interceptors", 1, "options", "file")``."""
    if not key:
        return ()
    return tuple(int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key))


Model = TypeVar("Model", bound=BaseModel)


def options_from(model: type[Model], raw: Any, prefix: str) -> Model:
    """``raw`` validated by ``model``; every problem raised at once, each named under ``prefix``."""
    try:
        return model.model_validate(raw, context={FROM_FILE: True})
    except ValidationError as exc:
        raise_all(problems_of(exc, raw, prefix=prefix))
        raise
