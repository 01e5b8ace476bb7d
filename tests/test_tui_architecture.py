"""The UI's boundaries: it uses w2s_core's public names only, the core CLI loads it as a plugin
without importing Textual, and bad input to `w2s tui` is one clear message, never a traceback.
Inside it: no import cycles, workers only post Messages, and every id app.tcss styles exists."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from w2s_core import cli
from w2s_core.errors import InputError
from w2s_tui.app import known_binding_ids
from w2s_tui.keymap import load_keymap

ROOT = Path(__file__).resolve().parent.parent
TUI = ROOT / "w2s_tui"


def tui_modules() -> dict[str, Path]:
    """{dotted module name: file} for every module of w2s_tui, subpackages included."""
    modules = {}
    for path in sorted(TUI.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_tui_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The w2s_tui modules `name` imports (relative imports resolved, `from pkg import module` too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def test_tui_imports_only_public_core_names():
    private = []
    for path in TUI.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("w2s_core"):
                names = [node.module, *(a.name for a in node.names)]
                private += [f"{path.name}: {n}" for n in names if any(p.startswith("_") for p in n.split("."))]
    assert private == []


def test_tui_modules_import_no_cycle():
    known = tui_modules()
    graph = {name: imported_tui_modules(name, path, known) for name, path in known.items()}
    assert {"w2s_tui.screens", "w2s_tui.messages"} <= graph["w2s_tui.app"]  # relative imports resolved
    assert "w2s_tui.app" not in graph["w2s_tui.screens.help"]  # the app hands the help screen its rows

    def cycle_from(start: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph[start]:
            if nxt in path:
                return (*path[path.index(nxt) :], nxt)
            found = cycle_from(nxt, (*path, nxt))
            if found:
                return found
        return None

    cycles = [c for name in graph if (c := cycle_from(name, (name,)))]
    assert cycles == []


def test_workers_post_messages_through_one_helper():
    """No widget is touched from a thread: no call_from_thread, and only workers.py starts workers."""
    offenders = []
    for path in TUI.rglob("*.py"):
        text = path.read_text()
        if "call_from_thread" in text:
            offenders.append(f"{path.name}: call_from_thread")
        if path.name != "workers.py" and ("run_worker(" in text or "@work" in text):
            offenders.append(f"{path.name}: starts its own worker")
    assert offenders == []


def test_every_id_styled_in_app_tcss_exists():
    css = (TUI / "app.tcss").read_text()
    styled = set(re.findall(r"#([A-Za-z][\w-]*)", re.sub(r"/\*.*?\*/", "", css, flags=re.S)))
    given = {i for path in TUI.rglob("*.py") for i in re.findall(r'id="([\w-]+)"', path.read_text())}
    assert styled and styled <= given, styled - given


def test_cli_lists_tui_without_loading_textual():
    code = (
        "import sys; from w2s_core import cli; p = cli.parser(); "
        "sub = next(a for a in p._actions if a.dest == 'command'); "
        "print('tui' in sub.choices, 'textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_every_binding_has_an_id():
    from w2s_tui.app import SCREENS_WITH_BINDINGS, W2SApp

    bindings = [b for cls in (W2SApp, *SCREENS_WITH_BINDINGS) for b in cls.BINDINGS]
    assert all(b.id for b in bindings)
    assert len(known_binding_ids()) == len(bindings)  # ids are unique


def test_keymap_file_errors_name_the_binding(tmp_path):
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('[keymap]\n"runs.cancle" = "x"\n"runs.sort" = 3\n')
    with pytest.raises(InputError) as err:
        load_keymap(keymap, known_binding_ids())
    message = str(err.value)
    assert "runs.cancle: unknown binding id (did you mean 'runs.cancel'?)" in message
    assert "runs.sort: expected a key name" in message
    keymap.write_text('"runs.cancel" = "x"\n')
    assert load_keymap(keymap, known_binding_ids()) == {"runs.cancel": "x"}


def test_tui_bad_input_exits_with_one_message(tmp_path, capsys):
    def tui(*args: str) -> tuple[int, str]:
        code = cli.main(["tui", *args])
        return code, capsys.readouterr().err

    bad = tmp_path / "keymap.toml"
    bad.write_text("not toml [")
    code, err = tui(str(tmp_path), "--keymap", str(bad))
    assert code == 2 and "not valid TOML" in err
    (tmp_path / "w2s.db").write_text("this is not a database" * 100)
    code, err = tui(str(tmp_path))
    assert code == 1 and "w2s.db" in err and "damaged" in err
    code, err = tui(str(tmp_path / "w2s.db"))
    assert code == 2 and "not a directory" in err
    code, err = tui(str(tmp_path / "fresh"))  # no terminal: pytest captures stdout
    assert code == 2 and "needs a terminal" in err
