"""Every shipped cluster config and launch script keeps Ray's ports on loopback unless told
otherwise: the dashboard port carries Ray's job-submission API, which runs any code it is sent."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for d in ("cluster", "launch") for p in (ROOT / d).rglob("*") if p.suffix in (".sh", ".yaml", ".yml"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# "told otherwise": an environment variable the user sets, with a loopback default
OVERRIDABLE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:-(?P<default>[^}]+)\}$")


def _code(path: Path) -> str:
    """The file without comments (a `#` inside `${...}` or quotes is rare enough here)."""
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in path.read_text().splitlines())


def _is_loopback(value: str) -> bool:
    value = value.strip("\"'")
    m = OVERRIDABLE.match(value)
    return (m.group("default") if m else value) in LOOPBACK


def _ray_starts(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
    return [m.group(0) for m in re.finditer(r"ray start[^\n]*", joined)]


def _flag(command: str, name: str) -> str | None:
    m = re.search(rf"--{name}(?:=|\s+)(\S+)", command)
    return m.group(1) if m else None


def test_there_is_something_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert {"cluster/cluster.yaml", "cluster/rayjob.yaml", "cluster/submit.sh", "launch/local.sh"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_ray_ports_bind_to_loopback(path: Path) -> None:
    text = _code(path)
    assert "0.0.0.0" not in text, f"{path.name}: binds to every interface"
    for command in _ray_starts(text):
        dashboard = _flag(command, "dashboard-host")
        if dashboard is not None:
            assert _is_loopback(dashboard), f"{path.name}: {command}"
        if "--head" in command:
            off = _flag(command, "include-dashboard") == "false"
            assert off or dashboard is not None, f"{path.name}: say where the dashboard listens: {command}"
        if path.parent.name == "launch":  # one machine: every port on loopback
            node_ip = _flag(command, "node-ip-address")
            assert node_ip is not None and _is_loopback(node_ip), f"{path.name}: {command}"
    if path.suffix in (".yaml", ".yml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for params in _head_start_params(doc):
                assert _is_loopback(str(params.get("dashboard-host", ""))), f"{path.name}: head rayStartParams {params}"


def _head_start_params(node: object) -> list[dict]:
    """rayStartParams of every KubeRay head group in a manifest."""
    found: list[dict] = []
    if isinstance(node, dict):
        head = node.get("headGroupSpec")
        if isinstance(head, dict):
            found.append(dict(head.get("rayStartParams") or {}))
        for value in node.values():
            found += _head_start_params(value)
    elif isinstance(node, list):
        for value in node:
            found += _head_start_params(value)
    return found


PY_SOURCES = sorted(p for d in ("distnlp", "tests", "launch") for p in (ROOT / d).rglob("*.py"))


def _ray_inits_without_address(path: Path) -> list[int]:
    """Lines of `ray.init(...)` calls that name no address. A bare ray.init() joins whatever
    cluster RAY_ADDRESS or Ray's temp directory names (a stale one, or another user's), and then
    refuses num_cpus: tests and benchmarks must start a private Ray with address="local"."""
    import ast

    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "init":
            target = node.func.value
            if isinstance(target, ast.Name) and target.id == "ray" and not any(k.arg == "address" for k in node.keywords):
                lines.append(node.lineno)
    return lines


def test_every_ray_init_names_its_address() -> None:
    assert any(p.name == "conftest.py" for p in PY_SOURCES)  # the checker sees the tests
    bare = [f"{p.relative_to(ROOT)}:{n}" for p in PY_SOURCES for n in _ray_inits_without_address(p)]
    assert not bare, f"ray.init without address= (joins any running cluster): {bare}"
