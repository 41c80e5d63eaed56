"""kvm_protocol.yamlconf: loading, validation, error paths, and garbage in → only ConfigError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kvm_protocol import yamlconf
from kvm_protocol.yamlconf import (
    Anything,
    Bool,
    Check,
    ConfigError,
    Enum,
    Int,
    Invalid,
    ListOf,
    MapOf,
    Maybe,
    Option,
    Section,
    Str,
    format_path,
    load_yaml,
    validate,
)

ID = Str(r"\d{4}", what="a 4-digit ID")
ROOM = Section(
    {
        "port": Option(Int(1, 65535), default=8080),
        "debug": Option(Bool(), default=False),
        "lang": Option(Enum("zh_CN", "en"), default="zh_CN"),
        "name": Option(Maybe(Str(min_len=1, max_len=8)), default=None),
        "tx": Option(
            ListOf(
                Section(
                    {
                        "id": ID,
                        "heads": Option(Int(1, 4), default=1),
                        "sim": Option(Anything(), default=None),
                    }
                )
            ),
            default=(),
        ),
        "hotkeys": Option(
            MapOf(Str(r"[A-Za-z0-9_-]+", what="a hotkey"), ListOf(ID, min_len=1, unique=True)),
            default={},
        ),
    }
)


def problems(schema: yamlconf.Validator[Any], text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(schema, load_yaml(text))
    return [str(p) for p in info.value.problems]


def test_valid_document_gets_defaults_and_typed_values() -> None:
    cfg = validate(
        ROOM, load_yaml("tx:\n  - id: '0001'\n  - {id: 0002, heads: 2}\nhotkeys: {A1: ['0001']}\n")
    )
    assert cfg == {
        "port": 8080,
        "debug": False,
        "lang": "zh_CN",
        "name": None,
        "tx": ({"id": "0001", "heads": 1, "sim": None}, {"id": "0002", "heads": 2, "sim": None}),
        "hotkeys": {"A1": ("0001",)},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port: 0", ["port: 0 is not in 1..65535"]),
        ("port: '80'", ["port: expected an integer, got '80'"]),
        ("port: true", ["port: expected an integer, got true"]),
        ("debug: 1", ["debug: expected true or false, got 1"]),
        ("lang: fr", ["lang: 'fr' is not one of: zh_CN, en"]),
        ("name: ''", ["name: '' is shorter than 1 character(s)"]),
        ("name: abcdefghij", ["name: 'abcdefghij' is longer than 8 characters"]),
        ("tx: {id: '0001'}", ["tx: expected a list, got {'id': '0001'}"]),
        (
            "tx: [{id: '0001'}, {id: '0002'}, {id: '0003'}, {id: '0004', heads: 7}]",
            ["tx[3].heads: 7 is not in 1..4"],
        ),
        ("tx: [{id: abc}]", ["tx[0].id: 'abc' is not a 4-digit ID"]),
        ("tx: [{id: 5001}]", ["tx[0].id: expected a string, got 5001"]),
        ("tx: [{heads: 2}]", ["tx[0].id: missing required key"]),
        ("tx: [{id: '0001', colour: red}]", ["tx[0].colour: unknown key (known: id, heads, sim)"]),
        ("tx: [7]", ["tx[0]: expected a mapping, got 7"]),
        ("hotkeys: {'a b': ['0001']}", ["hotkeys['a b']: 'a b' is not a hotkey"]),
        ("hotkeys: {A1: []}", ["hotkeys.A1: needs at least 1 item(s), got 0"]),
        ("hotkeys: {A1: ['0001', '0001']}", ["hotkeys.A1[1]: '0001' is listed twice"]),
        ("hotkeys: {7: ['0001']}", ["hotkeys[7]: expected a string, got 7"]),
        ("[1, 2]", ["expected a mapping, got [1, 2]"]),
        ("", ["expected a mapping, got null"]),
        ("colour: " + "x" * 100, [f"colour: unknown key (known: {', '.join(ROOM.fields)})"]),
    ],
)
def test_each_error_names_its_key_path_and_value(text: str, expected: list[str]) -> None:
    assert problems(ROOM, text) == expected


def test_all_problems_are_reported_together() -> None:
    found = problems(ROOM, "port: 0\nlang: fr\ntx: [{id: x}, {id: '0001', heads: 0}]\nextra: 1")
    assert found == [
        "extra: unknown key (known: port, debug, lang, name, tx, hotkeys)",
        "port: 0 is not in 1..65535",
        "lang: 'fr' is not one of: zh_CN, en",
        "tx[0].id: 'x' is not a 4-digit ID",
        "tx[1].heads: 0 is not in 1..4",
    ]


def test_problem_count_is_capped() -> None:
    text = "tx: [" + ", ".join(["{id: x}"] * 200) + "]"
    found = problems(ROOM, text)
    assert len(found) == yamlconf.MAX_PROBLEMS + 1
    assert found[-1] == "too many problems, stopped here"


def test_long_values_are_shortened_in_messages() -> None:
    (message,) = problems(ROOM, "lang: " + "y" * 500)
    assert message.startswith("lang: 'yyy") and "..." in message and len(message) < 120


def test_int_bounds_one_sided() -> None:
    assert problems(Section({"n": Int(min=1)}), "n: 0") == ["n: 0 is not in 1.."]
    assert problems(Section({"n": Int(max=9)}), "n: 10") == ["n: 10 is not in ..9"]
    assert validate(Section({"n": Int()}), {"n": -5}) == {"n": -5}


@dataclass(frozen=True)
class Wall:
    rows: int
    cols: int
    tiles: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.tiles) != self.rows * self.cols:
            raise Invalid(f"{len(self.tiles)} tiles for a {self.rows}×{self.cols} wall", "tiles")


WALL = Section({"rows": Int(1, 8), "cols": Int(1, 8), "tiles": ListOf(ID)}, into=Wall)


def test_into_builds_typed_results_and_cross_checks_name_a_sub_path() -> None:
    assert validate(WALL, load_yaml("{rows: 1, cols: 2, tiles: ['5001', '5002']}")) == Wall(
        1, 2, ("5001", "5002")
    )
    walls = Section({"walls": ListOf(WALL)})
    assert problems(walls, "walls: [{rows: 2, cols: 2, tiles: ['5001']}]") == [
        "walls[0].tiles: 1 tiles for a 2×2 wall"
    ]


def test_check_converts_and_reports_at_its_path() -> None:
    def tx_id(n: int) -> str:
        if not 1 <= n <= 4999:
            raise Invalid(f"{n} is not a Tx ID")
        return f"{n:04d}"

    schema = Section({"ids": ListOf(Check(Int(), tx_id))})
    assert validate(schema, {"ids": [1, 12]}) == {"ids": ("0001", "0012")}
    assert problems(schema, "ids: [1, 5001]") == ["ids[1]: 5001 is not a Tx ID"]
    assert problems(schema, "ids: [x]") == ["ids[0]: expected an integer, got 'x'"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("tx", 3, "heads"), "tx[3].heads"),
        (("hotkeys", "a b"), "hotkeys['a b']"),
        ((0, "x"), "[0].x"),
        (("a.b", "c"), "['a.b'].c"),
    ],
)
def test_format_path(path: yamlconf.KeyPath, text: str) -> None:
    assert format_path(path) == text


# --- loading -----------------------------------------------------------------------------


def test_numbers_with_leading_zeros_stay_strings() -> None:
    assert load_yaml("[0001, 0010, 0009, 5001, 0, -3, 0x1f, 1_000, '7', 1.5, 1:30, 0b11]") == [
        "0001",
        "0010",
        "0009",
        5001,
        0,
        -3,
        31,
        1000,
        "7",
        1.5,
        "1:30",
        "0b11",
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("a: [1, 2\n", 2, 1, "expected ',' or ']'"),
        ("a: 1\nb: 2\na: 3\n", 3, 1, "key 'a' appears twice"),
        ("a:\n  b: 1\n c: 2\n", 3, 2, "expected <block end>"),
        ("when: 2024-13-45\n", 1, 7, "bad value '2024-13-45'"),
        ("x: !!python/object/apply:os.system [ls]\n", 1, 4, "could not determine a constructor"),
        ("? [1]\n: 2\n", 1, 3, "unhashable key"),
        ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document"),
    ],
)
def test_yaml_errors_give_line_and_column(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, name="room.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (line, column)
    assert str(problem).startswith(f"room.yaml: line {line}, column {column}: ")
    assert fragment in str(problem)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read: No such file"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r": cannot read: Is a directory"):
        load_yaml(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 9\)"):
        load_yaml(bad)
    good = tmp_path / "bom.yaml"
    good.write_bytes("\ufeffname: 网络正常\n".encode())
    assert load_yaml(good) == {"name": "网络正常"}


def test_too_large_and_too_deep_documents() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml("a: " + "x" * (yamlconf.MAX_BYTES + 1))
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_yaml("[" * 5000 + "]" * 5000)


def test_alias_bomb_stops_at_the_node_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlconf, "MAX_NODES", 10_000)
    lines = ["a0: &a0 ['0001', '0001', '0001', '0001', '0001', '0001', '0001', '0001']"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]" for i in range(1, 9)]
    data = load_yaml("\n".join(lines))
    nested = ListOf(ListOf(ListOf(ListOf(ListOf(ListOf(ListOf(ListOf(ListOf(ID)))))))))
    with pytest.raises(ConfigError, match="document too large"):
        validate(Section({f"a{i}": Anything() for i in range(8)} | {"a8": nested}), data)


def test_recursive_alias_is_only_an_error() -> None:
    data = load_yaml("a: &x [*x]")
    with pytest.raises(ConfigError, match=r"a\[0\]\[0\]: expected a string"):
        validate(Section({"a": ListOf(ListOf(Str()))}), data)


# --- properties ----------------------------------------------------------------------------

yaml_chars = st.sampled_from(
    [
        *"ab01 :-[]{},'\"\n\t#&*!|>?%@`.\\xé网",
        "---",
        "0x",
        "2024-13-45",
        "!!int",
        "!!float",
        "!!timestamp",
        "!!binary",
        "!!omap",
        "!!set",
        "!!str",
        "!!pairs",
        "!!map",
        "!!seq",
        "<<",
        "&a",
        "*a",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(yaml_chars, max_size=60).map("".join))
def test_garbage_text_loads_or_raises_config_error_only(text: str) -> None:
    try:
        data = load_yaml(text)
    except ConfigError as e:
        assert e.problems and all(str(p) for p in e.problems)
        return
    try:
        validate(ROOM, data)
    except ConfigError as e:
        assert e.problems


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 70000) | st.text(max_size=6) | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["port", "tx", "id", "heads", "lang", "hotkeys", "A1", "x"])
            | st.text(max_size=3),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_garbage_documents_validate_or_raise_config_error_only(data: object) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        validate(ROOM, load_yaml(text))
    except ConfigError as e:
        assert e.problems


valid_tx = st.fixed_dictionaries(
    {"id": st.from_regex(r"\d{4}", fullmatch=True)},
    optional={"heads": st.integers(1, 4)},
)


@settings(max_examples=200, deadline=None)
@given(st.lists(valid_tx, max_size=5), st.integers(0, 4), st.sampled_from([0, 5, "x", None]))
def test_one_bad_value_is_reported_at_exactly_its_path(
    tx: list[dict[str, object]], index: int, bad: object
) -> None:
    """A valid document validates; spoil one `heads` and exactly that path is reported."""
    cfg = validate(ROOM, load_yaml(yaml.safe_dump({"tx": tx})))
    assert [t["id"] for t in cfg["tx"]] == [t["id"] for t in tx]
    if not tx:
        return
    index %= len(tx)
    tx[index]["heads"] = bad
    with pytest.raises(ConfigError) as info:
        validate(ROOM, load_yaml(yaml.safe_dump({"tx": tx})))
    assert [p.path for p in info.value.problems] == [f"tx[{index}].heads"]
