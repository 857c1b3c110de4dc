"""Request bodies are checked against the very schemas the OpenAPI document publishes (webapp/api/openapi.py).

A small validator for the subset of JSON Schema those schemas use (type, const, enum, pattern, min/max
length, minimum/maximum, required, additionalProperties: false, minProperties, anyOf with null). Every
problem is reported under the name of its field, in words a person can act on.
"""
from __future__ import annotations

import re

TYPES = {"string": str, "integer": int, "object": dict, "boolean": bool, "null": type(None), "array": list}
TYPE_WORDS = {"string": "a string", "integer": "a whole number", "object": "an object", "boolean": "true or false",
              "null": "null", "array": "a list"}


def _type_ok(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def problem(value, schema: dict) -> str | None:
    """Why `value` does not fit `schema` (not descending into objects), or None."""
    if "anyOf" in schema:
        found = [problem(value, option) for option in schema["anyOf"]]
        if all(found):
            return next(p for p, o in zip(found, schema["anyOf"]) if o.get("type") != "null")
        return None
    if "const" in schema and value != schema["const"]:
        return f"must be {schema['const']!r}"
    kind = schema.get("type")
    if kind and not _type_ok(value, kind):
        hint = ' (a decimal string like "8791.59", never a JSON number)' if "decimal string" in schema.get("description", "") else ""
        return f"must be {TYPE_WORDS[kind]}{hint}"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {', '.join(str(v) for v in schema['enum'])}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return "is required" if not value else f"must be at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"must be at most {schema['maxLength']} characters"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return _pattern_words(schema)
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be at least {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be at most {schema['maximum']}"
    return None


def _pattern_words(schema: dict) -> str:
    if schema.get("format") == "date":
        return "must be a date as YYYY-MM-DD"
    if "decimal string" in schema.get("description", ""):
        return 'must be rupees as a decimal string with at most 2 decimals, like "8791.59"'
    return schema.get("x-problem", "is not in the expected format")


def object_problems(body: dict, schema: dict) -> dict[str, str]:
    """Field → problem for a JSON object against an object schema (one level, plus nested objects by path)."""
    errors: dict[str, str] = {}
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        for name in body:
            if name not in properties:
                errors[name] = "is not a field of this request"
    for name in schema.get("required", []):
        if body.get(name) is None and name not in errors:
            errors[name] = "is required"
    for name, value in body.items():
        if name in errors or name not in properties:
            continue
        sub = properties[name]
        found = problem(value, sub)
        if found:
            errors[name] = found
        elif isinstance(value, dict) and sub.get("type") == "object":
            errors.update({f"{name}.{k}": v for k, v in object_problems(value, sub).items()})
    if not errors and len(body) < schema.get("minProperties", 0):
        errors["body"] = f"name at least one of {', '.join(properties)}"
    return errors
