"""Typed YAML configuration: load safely, validate against a declared schema (after kvmd yamlconf).

    SCHEMA = Section({"port": Option(Int(1, 65535), default=8080),
                      "tx": ListOf(Section({"id": Str(r"\\d{4}", what="a 4-digit ID"),
                                            "heads": Option(Int(1, 4), default=1)}))})
    cfg = validate(SCHEMA, load_yaml(Path("room.yaml")))   # cfg["tx"][0]["heads"]

Every problem names its key path and the bad value (``tx[3].heads: 7 is not in 1..4``);
unknown keys are errors; all problems are reported together in one ``ConfigError``.
``Section(fields, into=SomeDataclass)`` builds typed results. Unlike ``yaml.safe_load``,
numbers with leading zeros stay strings (``id: 0010`` is ``"0010"``, not octal 8),
sexagesimal/binary integers are not numbers, and a key repeated in a mapping is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar, overload

import yaml

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

MAX_BYTES = 4 * 1024 * 1024     # a control room's config is a few KiB
MAX_PROBLEMS = 50               # report this many, then stop
MAX_NODES = 1_000_000           # values visited by one validation (guards alias bombs)

KeyPath = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: KeyPath) -> str:
    """``("tx", 3, "heads")`` → ``tx[3].heads``; odd keys are quoted: ``hotkeys['a b']``."""
    out = ""
    for part in path:
        if isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _key(key: object) -> str | int:
    """A YAML mapping key as a key path part (YAML keys may be numbers, null, ...)."""
    return key if isinstance(key, str | int) and not isinstance(key, bool) else show(key)


def show(value: object) -> str:
    """A value as error messages quote it: YAML-ish, at most 60 characters."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: where (key path) and what."""

    path: str
    message: str
    line: int | None = None      # 1-based; only for YAML syntax errors
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """The only error this module raises for bad input; ``str()`` lists every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Invalid(Exception):
    """Raised by a leaf validator or a check function; ``at`` is a key path below the value."""

    def __init__(self, message: str, *at: str | int) -> None:
        super().__init__(message)
        self.message, self.at = message, at


def _or(bound: int | None) -> str:
    return "" if bound is None else str(bound)


class _Failed(Exception):
    """A problem was recorded below; unwinds to the nearest container."""


class Context:
    """Problems found so far in one validation, and the node budget left."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.budget = MAX_NODES

    def note(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(format_path(path), message))
        if len(self.problems) >= MAX_PROBLEMS:
            raise ConfigError([*self.problems, Problem("", "too many problems, stopped here")])

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        self.note(path, message)
        raise _Failed

    def step(self, path: KeyPath) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise ConfigError([Problem(format_path(path), "document too large")])


class Validator(Generic[T]):
    """A schema node. Leaves override ``convert`` (raising ``Invalid``); containers ``check``."""

    def convert(self, value: object) -> T:
        raise NotImplementedError

    def check(self, value: object, path: KeyPath, ctx: Context) -> T:
        ctx.step(path)
        try:
            return self.convert(value)
        except Invalid as e:
            ctx.fail(path + e.at, e.message)


class Anything(Validator[object]):
    """Any value, unchecked (e.g. hints meant for another program)."""

    def convert(self, value: object) -> object:
        return value


class Bool(Validator[bool]):
    def convert(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"expected true or false, got {show(value)}")
        return value


class Int(Validator[int]):
    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max

    def convert(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {show(value)}")
        lo, hi = self.min, self.max
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Invalid(f"{value} is not in {_or(self.min)}..{_or(self.max)}")
        return value


class Str(Validator[str]):
    """A string; ``pattern`` must match all of it, ``what`` names it in errors."""

    def __init__(self, pattern: str | None = None, *, what: str | None = None,
                 min_len: int = 0, max_len: int | None = None) -> None:
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.what = what or f"matching /{pattern}/"
        self.min_len, self.max_len = min_len, max_len

    def convert(self, value: object) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, got {show(value)}")
        if len(value) < self.min_len:
            raise Invalid(f"{show(value)} is shorter than {self.min_len} character(s)")
        if self.max_len is not None and len(value) > self.max_len:
            raise Invalid(f"{show(value)} is longer than {self.max_len} characters")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise Invalid(f"{show(value)} is not {self.what}")
        return value


class Enum(Validator[str]):
    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def convert(self, value: object) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise Invalid(f"{show(value)} is not one of: {', '.join(self.choices)}")
        return value


class Maybe(Validator[T | None]):
    """``null`` or what ``inner`` accepts."""

    def __init__(self, inner: Validator[T]) -> None:
        self.inner = inner

    def check(self, value: object, path: KeyPath, ctx: Context) -> T | None:
        return None if value is None else self.inner.check(value, path, ctx)


class ListOf(Validator[tuple[T, ...]]):
    """A YAML list, returned as a tuple; ``unique`` rejects repeated items."""

    def __init__(self, item: Validator[T], *, min_len: int = 0, max_len: int | None = None,
                 unique: bool = False) -> None:
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def check(self, value: object, path: KeyPath, ctx: Context) -> tuple[T, ...]:
        ctx.step(path)
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list, got {show(value)}")
        if len(value) < self.min_len:
            ctx.fail(path, f"needs at least {self.min_len} item(s), got {len(value)}")
        if self.max_len is not None and len(value) > self.max_len:
            ctx.fail(path, f"takes at most {self.max_len} item(s), got {len(value)}")
        out: list[T] = []
        failed = False
        for i, raw in enumerate(value):
            try:
                item = self.item.check(raw, (*path, i), ctx)
            except _Failed:
                failed = True
                continue
            if self.unique and item in out:
                ctx.note((*path, i), f"{show(item)} is listed twice")
                failed = True
            out.append(item)
        if failed:
            raise _Failed
        return tuple(out)


class MapOf(Validator[dict[K, V]]):
    """A mapping with free keys (e.g. hotkey → devices)."""

    def __init__(self, key: Validator[K], value: Validator[V]) -> None:
        self.key, self.value = key, value

    def check(self, value: object, path: KeyPath, ctx: Context) -> dict[K, V]:
        ctx.step(path)
        if not isinstance(value, dict):
            ctx.fail(path, f"expected a mapping, got {show(value)}")
        out: dict[K, V] = {}
        failed = False
        for raw_key, raw_value in value.items():
            at = (*path, _key(raw_key))
            try:
                key = self.key.check(raw_key, at, ctx)
                out[key] = self.value.check(raw_value, at, ctx)
            except _Failed:
                failed = True
        if failed:
            raise _Failed
        return out


_REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class Option(Generic[T]):
    """A key of a ``Section``; without a default it is required. Defaults must be immutable."""

    validator: Validator[T]
    default: T = _REQUIRED


Fields = Mapping[str, "Option[Any] | Validator[Any]"]


class Section(Validator[T]):
    """A mapping with declared keys, unknown keys are errors; gives a dict or ``into(**keys)``.

    ``into`` may raise ``Invalid(message, *key_path)`` for checks across keys.
    """

    @overload
    def __init__(self: Section[dict[str, Any]], fields: Fields) -> None: ...
    @overload
    def __init__(self, fields: Fields, into: Callable[..., T]) -> None: ...
    def __init__(self, fields: Fields, into: Callable[..., Any] = dict) -> None:
        self.fields = {k: f if isinstance(f, Option) else Option(f) for k, f in fields.items()}
        self.into = into

    def check(self, value: object, path: KeyPath, ctx: Context) -> T:
        ctx.step(path)
        if not isinstance(value, dict):
            ctx.fail(path, f"expected a mapping, got {show(value)}")
        failed = False
        for key in value:
            if key not in self.fields:
                ctx.note((*path, _key(key)), f"unknown key (known: {', '.join(self.fields)})")
                failed = True
        out: dict[str, Any] = {}
        for key, option in self.fields.items():
            if key in value:
                try:
                    out[key] = option.validator.check(value[key], (*path, key), ctx)
                except _Failed:
                    failed = True
            elif option.default is _REQUIRED:
                ctx.note((*path, key), "missing required key")
                failed = True
            else:
                out[key] = option.default
        if failed:
            raise _Failed
        try:
            result: T = self.into(**out)
        except Invalid as e:
            ctx.fail(path + e.at, e.message)
        return result


class Check(Validator[R]):
    """Validate with ``inner``, then convert or check with ``fn``, which raises ``Invalid``."""

    def __init__(self, inner: Validator[T], fn: Callable[[T], R]) -> None:
        self.inner: Validator[Any] = inner
        self.fn: Callable[[Any], R] = fn

    def check(self, value: object, path: KeyPath, ctx: Context) -> R:
        checked = self.inner.check(value, path, ctx)
        try:
            return self.fn(checked)
        except Invalid as e:
            ctx.fail(path + e.at, e.message)


def validate(schema: Validator[T], data: object) -> T:
    """Check `data` (as loaded from YAML) against `schema`; ``ConfigError`` lists every problem."""
    ctx = Context()
    try:
        return schema.check(data, (), ctx)
    except _Failed:
        raise ConfigError(ctx.problems) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader with decimal/hex ints only and no repeated keys; bad values keep their line."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):   # e.g. `!!set a`: the base class says so
            return super().construct_mapping(node, deep=deep)
        seen: list[object] = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {show(key)} appears twice", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as e:  # constructors fail in many ways: 2024-13-45, !!int "", ...
            raise yaml.constructor.ConstructorError(
                None, None, f"bad value {show(node.value)}: {e}", node.start_mark) from None


_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$"), list("-+0123456789"))


def _error(message: str, line: int | None = None, column: int | None = None) -> ConfigError:
    return ConfigError([Problem("", message, line, column)])


def load_yaml(source: Path | str, *, name: str | None = None) -> object:
    """Parse one YAML document: a ``Path`` is read as UTF-8, a ``str`` is the YAML text itself."""
    if isinstance(source, Path):
        name = name or str(source)
        try:
            with source.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise _error(f"{name}: cannot read: {e.strerror or e}") from None
        try:
            source = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _error(f"{name}: not UTF-8 text (byte {e.start})") from None
    name = name or "<text>"
    if len(source) > MAX_BYTES:
        raise _error(f"{name}: larger than {MAX_BYTES} bytes")
    try:
        return yaml.load(source, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = ", ".join(filter(None, [e.context, e.problem])) or "invalid YAML"
        if mark is None:
            raise _error(f"{name}: {what}") from None
        line, col = mark.line + 1, mark.column + 1
        raise _error(f"{name}: line {line}, column {col}: {what}", line, col) from None
    except yaml.YAMLError as e:
        raise _error(f"{name}: {e}") from None
    except RecursionError:
        raise _error(f"{name}: nested too deeply") from None
    except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as e:
        # A constructor that failed outside construct_object (deferred ones); no position.
        raise _error(f"{name}: invalid YAML: {e}") from None
