"""The layers hold: every import-linter contract in pyproject.toml is kept, the CLI starts without torch,
the core never loads the UI, and the registries that live on both sides of the torch line agree."""

import pkgutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import w2s_core
from w2s_core import cli
from w2s_core.spec.losses import LOSS_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "accelerate", "peft")


def _fresh(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter, so modules this test process already loaded do not count."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_every_import_linter_contract_is_kept():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 4  # UI, torch, training -> store, layers
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(contracts)} kept, 0 broken" in out.stdout, out.stdout


def test_cli_imports_no_torch():
    out = _fresh("import w2s_core.cli, sys; assert 'torch' not in sys.modules")
    assert out.returncode == 0, out.stderr


def test_no_cli_command_module_imports_torch():
    # each command's module is imported only when it runs: import them all, as running every command would
    modules = sorted(f"w2s_core.cli.{m.name}" for m in pkgutil.iter_modules(cli.__path__) if m.name != "__main__")
    assert {f"w2s_core.cli.{m}" for m in cli.COMMANDS.values()} <= set(modules)
    out = _fresh(
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_default_results_dir_is_the_stores():
    from w2s_core.store import DEFAULT_RESULTS_DIR

    assert cli.DEFAULT_RESULTS == DEFAULT_RESULTS_DIR


def test_core_modules_do_not_load_textual():
    modules = sorted(
        m.name for m in pkgutil.walk_packages(w2s_core.__path__, "w2s_core.") if not m.name.endswith("__main__")
    )
    assert "w2s_core.cli.run" in modules and "w2s_core.training.loop" in modules  # packages are walked
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint('textual' in sys.modules)"
    out = _fresh(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_loss_names_agree_across_the_torch_line():
    from w2s_core.training.losses import LOSSES

    assert set(LOSS_DEFAULTS) == set(LOSSES)
