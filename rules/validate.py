"""Check a parsed rules file against the published JSON Schema (``rules/schema.json``).

jsonschema's own messages are precise but written for schema authors; this
module turns each error into a sentence for a policy author (``unknown key
'matc' -- did you mean 'match'?``) at the line of the offending key.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowproxy.rules.source import Document, Problem

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_PATH = Path(__file__).with_name("schema.json")

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing (null)",
}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published schema."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


ACTIONS: tuple[str, ...] = tuple(schema()["$defs"]["action"]["anyOf"][1]["properties"])
"""Every action, in the schema's order."""
BARE_ACTIONS: tuple[str, ...] = tuple(schema()["$defs"]["action"]["anyOf"][0]["enum"])
"""The actions that may be written as a name alone; the others need their settings."""
ACTIONS_HELP = (
    f"actions are: {', '.join(ACTIONS)} ({', '.join(BARE_ACTIONS)} may stand alone as a name;"
    " the others take settings, as in {respond: {text: ...}})"
)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    # Imported with the first rules file checked: jsonschema and referencing cost every start about 60 ms.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def check(document: Document) -> list[Problem]:
    """Every schema problem in ``document``, in file order."""
    problems = [problem for error in _validator().iter_errors(document.data) for problem in _explain(document, error)]
    return sorted(set(problems), key=lambda problem: (problem.line or 0, problem.message))


def _explain(document: Document, error: ValidationError) -> Iterator[Problem]:
    path = list(error.absolute_path)
    if error.validator in ("anyOf", "oneOf"):
        yield from _explain_union(document, error)
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        for key in error.instance:
            if key in known:
                continue
            hint = _did_you_mean(key, known)
            where = "" if not path else f" in {_name(path)}"
            message = f"unknown key {key!r}{where}{hint}"
            if _is_action_path(path):
                message = f"unknown action {key!r}{hint}; {ACTIONS_HELP}"
            yield document.problem([*path, key], message)
        return
    if error.validator == "enum" and _is_action_path(path):
        yield document.problem(path, _bad_action_name(str(error.instance)))
        return
    if error.validator == "maxProperties" and _is_action_path(path) and isinstance(error.instance, dict):
        names = ", ".join(map(str, error.instance))
        yield document.problem(path, f"an action mapping holds one action, not {len(error.instance)} ({names})")
        return
    if error.validator == "enum":
        choices = [str(choice) for choice in error.validator_value]
        hint = _did_you_mean(str(error.instance), choices)
        what = "action" if _is_action_path(path) else _name(path)
        expected = ", ".join(choices)
        yield document.problem(path, f"{error.instance!r} is not a valid {what}{hint}; expected one of: {expected}")
        return
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        known = error.schema.get("properties", {})
        strays = [key for key in error.instance if key not in known] if isinstance(error.instance, dict) else []
        if difflib.get_close_matches(missing, strays, n=1, cutoff=0.6):
            return  # the misspelt key is reported as unknown, with this name as the suggestion
        yield document.problem(path, f"{_name(path) or 'the file'} is missing required key {missing!r}")
        return
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " or ".join(_TYPE_NAMES.get(name, name) for name in wanted)
        yield document.problem(path, f"{_name(path)} must be {names}, not {_describe(error.instance)}")
        return
    if error.validator == "pattern" and path and path[-1] == "id":
        yield document.problem(path, f"rule id {error.instance!r} may hold only letters, digits and _ . : -")
        return
    if error.validator == "pattern" and path and path[-1] in ("set", "remove"):
        yield document.problem(path, f"path {error.instance!r} must start with 'params.' or 'result.'")
        return
    if error.validator == "propertyNames":
        yield document.problem(path, f"{_name(path)}: every path must start with 'params.' or 'result.'")
        return
    yield document.problem(path, f"{_name(path) or 'the file'}: {error.message}")


def _explain_union(document: Document, error: ValidationError) -> Iterator[Problem]:
    """Explain only the alternatives whose type fits the value: their errors are the real ones."""
    fitting = [sub for sub in error.context or () if _fits(sub, error.instance)]
    if fitting:
        for sub in fitting:
            yield from _explain(document, sub)
        return
    path = list(error.absolute_path)
    if _is_action_path(path):
        message = f"an action is a name or a mapping of one action to its settings, not {_describe(error.instance)}"
        yield document.problem(path, f"{message}; {ACTIONS_HELP}")
        return
    allowed = sorted(
        {
            _TYPE_NAMES.get(sub.validator_value, str(sub.validator_value))
            for sub in error.context or ()
            if sub.validator == "type" and isinstance(sub.validator_value, str)
        }
    )
    wanted = " or ".join(allowed) if allowed else "another form"
    yield document.problem(path, f"{_name(path)} must be {wanted}, not {_describe(error.instance)}")


def _fits(sub: ValidationError, instance: Any) -> bool:
    """Whether an alternative failed on the value's content rather than on its type."""
    if sub.relative_path:
        return True
    if sub.validator == "type":
        return False
    if sub.validator == "enum":
        return any(type(choice) is type(instance) for choice in sub.validator_value)
    return True


def _bad_action_name(name: str) -> str:
    if name in ACTIONS:
        return f"{name!r} is not a valid action on its own: it takes settings ({{{name}: ...}}); {ACTIONS_HELP}"
    return f"{name!r} is not a valid action{_did_you_mean(name, ACTIONS)}; {ACTIONS_HELP}"


def _is_action_path(path: Sequence[Any]) -> bool:
    return bool(path) and path[-1] == "action"


def _name(path: Sequence[Any]) -> str:
    if not path:
        return ""
    parts = [f"[{step}]" if isinstance(step, int) else step for step in path]
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(path[1], int):
        parts = parts[2:] or ["rule"]
    return ".".join(parts).replace(".[", "[")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
