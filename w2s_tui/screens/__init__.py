"""The app's screens, one module each, and the registry of those that carry bindings (for the help
screen, the keymap check and the command palette)."""

from .help import HelpScreen
from .history import CompareScreen, HistoryScreen
from .live import LiveScreen
from .recipes import RecipesScreen
from .results import ResultsScreen
from .runs import RunsScreen

SCREENS_WITH_BINDINGS = (RecipesScreen, RunsScreen, LiveScreen, ResultsScreen, HistoryScreen, CompareScreen, HelpScreen)

__all__ = ["SCREENS_WITH_BINDINGS", "CompareScreen", "HelpScreen", "HistoryScreen", "LiveScreen", "RecipesScreen",
           "ResultsScreen", "RunsScreen"]
