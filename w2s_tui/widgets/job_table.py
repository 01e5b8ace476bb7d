"""The job table of the Runs and History screens: a virtual table over every job that matches a filter.

Only a window of rows around the view is loaded (a page of `w2s_core.store.queries.job_rows`); the
scrollbar and the cursor span all `total` rows, and a view that nears the window's edge asks the
screen for the window around it (`JobTable.WindowWanted`). So a key costs the same with 100 jobs or
100,000: the lines on screen are drawn from a cache of strips, and a refresh re-reads only the window.

Cells are compared with the cells as drawn (not with the previous row), so a running job's clock
moves every refresh. Column widths follow the loaded values, so a growing ETA or loss is never cut;
columns the terminal has no room for are dropped, the least needed first (`Column.drop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from w2s_core.status import JobStatus

from ..messages import JobsLoaded

STATUS_STYLE = {
    JobStatus.QUEUED: "cyan",
    JobStatus.RUNNING: "bold yellow",
    JobStatus.DONE: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.CANCELLED: "magenta",
    JobStatus.SKIPPED: "dim",
    JobStatus.PLANNED: "dim",
}
MARGIN = 50  # rows loaded above and below the view
EDGE = 15  # a view this close to the window's edge asks for the window around it
FIRST_WINDOW = 100  # rows asked for before the table knows its height
PAD = 1  # blank cells either side of a column, as DataTable draws them
MIN_WIDTH = 5  # a column is never squeezed below this (an ellipsis and a few characters)


def slurm_text(row: dict) -> str:
    """Where Slurm has a job: "slurm 1234 RUNNING" (its executor, Slurm job id and Slurm state); "" for
    a local job, so a table of local jobs reads as before executors."""
    if row.get("executor") != "slurm" or not row.get("slurm_job_id"):
        return ""
    return f"slurm {row['slurm_job_id']} {row.get('slurm_state') or '?'}"


def status_text(status: str, wait_reason: str | None = None, slurm: str = "") -> Text:
    """A job's status cell; a queued job that cannot be placed yet says why after it ("queued: needs 2
    GPUs at once ..."; w2s_core.supervision.placement), dimmed, so the cell alone explains the wait; a
    job on Slurm says where (`slurm_text`: "running · slurm 1234 PENDING")."""
    text = Text(status, style=STATUS_STYLE.get(status, ""))
    if wait_reason and status == JobStatus.QUEUED:
        text.append(f": {wait_reason}", style="dim")
    if slurm:
        text.append(f" · {slurm}", style="dim")
    return text


def cell_width(cell: str | Text) -> int:
    """The terminal cells a table cell takes."""
    return Text(cell).cell_len if isinstance(cell, str) else cell.cell_len


@dataclass(frozen=True)
class Column:
    """A column: its header, whether numbers align right, and when it goes on a narrow terminal
    (0: never; otherwise the higher goes first)."""

    name: str
    drop: int = 0
    right: bool = False


def fit(columns: tuple[Column, ...], natural: list[int], width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown in `width` cells: drop the most droppable until
    they fit, then narrow the widest of the rest (never below MIN_WIDTH)."""
    shown = list(range(len(columns)))
    widths = {i: natural[i] for i in shown}

    def total() -> int:
        return sum(widths[i] + 2 * PAD for i in shown)

    while total() > width and any(columns[i].drop for i in shown):
        worst = max((i for i in shown if columns[i].drop), key=lambda i: (columns[i].drop, i))
        shown.remove(worst)
    while total() > width:
        widest = max(shown, key=lambda i: widths[i])
        if widths[widest] <= MIN_WIDTH:
            break
        widths[widest] -= 1
    return [(i, widths[i]) for i in shown]


class JobTable(ScrollView, can_focus=True):
    """Rows from `job_rows`; `cells(row)` gives one row's cells in column order (str or Text, never
    markup: a model or recipe name is shown as written)."""

    DEFAULT_CSS = """
    JobTable {
        height: 1fr;
        overflow-x: hidden;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .job-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        &:dark > .job-table--even-row { background: $surface-darken-1 40%; }
        & > .job-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .job-table--even-row { background: $surface-lighten-1 50%; }
        & > .job-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .job-table--pending { color: $text-muted; }
    }
    """
    COMPONENT_CLASSES = {"job-table--header", "job-table--even-row", "job-table--cursor", "job-table--pending"}
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First row", show=False),
        Binding("end", "jump(-1)", "Last row", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    @dataclass
    class WindowWanted(Message):
        """The view neared the edge of the loaded rows: load the window in `table.wanted`."""

        table: JobTable

    @dataclass
    class Selected(Message):
        """Enter, or a click on the cursor's row: the job under the cursor."""

        table: JobTable
        job: dict

    def __init__(self, columns: tuple[Column, ...], cells: Callable[[dict], tuple], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.cells = cells
        self.total = 0
        self.start = 0  # the table index of window[0]
        self.window: list[dict] = []
        self.shown: list[tuple] = []  # the cells of each window row, as drawn
        self.wanted = (0, FIRST_WINDOW)  # (offset, limit) of the window to load (and to refresh)
        self.cursor_row = 0
        self._layout: list[tuple[int, int]] = []
        self._strips: dict[int, Strip] = {}  # table index -> its drawn line (-1: the header)
        self._pending: int | None = None  # the start of a window asked for and not yet shown
        self.moved_at = 0.0  # when the cursor last moved (monotonic): a refresh waits while keys come
        self.loaded = False  # whether `total` is known: a window under the current filter has been shown
        self._end_wanted = False  # `end` came before that: the cursor goes to the last row once it is known

    # -- what the screens and tests read -------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows in the table: every job matching the filter, loaded or not."""
        return self.total

    @property
    def jobs(self) -> dict[str, dict]:
        """The loaded jobs by hash, in table order."""
        return {r["hash"]: r for r in self.window}

    def get_row_at(self, index: int) -> list[str]:
        """The cells of a loaded row as drawn (IndexError when it is not loaded)."""
        if not self.start <= index < self.start + len(self.shown):
            raise IndexError(f"row {index} is not loaded (rows {self.start}-{self.start + len(self.shown) - 1} are)")
        return [str(c) for c in self.shown[index - self.start]]

    def current(self) -> dict | None:
        """The job under the cursor (None while its page loads)."""
        i = self.cursor_row - self.start
        return self.window[i] if 0 <= i < len(self.window) else None

    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    # -- data ---------------------------------------------------------------------------------

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        self.show(message.offset, message.rows, message.total)

    def reset(self) -> None:
        """A new filter or sort: the cursor to the top, the first window wanted."""
        self.cursor_row = 0
        self.scroll_to(y=0, animate=False, immediate=True)
        self.wanted, self._pending = (0, self._window_size()), 0
        self.loaded = self._end_wanted = False

    def show(self, offset: int, rows: list[dict], total: int) -> None:
        """Take a loaded window: keep the cursor on its job, redraw the lines whose cells changed."""
        keep = self.current()
        self._pending = None
        cells = [self.cells(r) for r in rows]
        moved = offset != self.start or [r["hash"] for r in rows] != [r["hash"] for r in self.window]
        changed = {offset + i for i, c in enumerate(cells) if moved or i >= len(self.shown) or c != self.shown[i]}
        self.start, self.window, self.shown, self.total = offset, rows, cells, total
        self.virtual_size = Size(self.scrollable_content_region.width, total + 1)
        self.loaded = True
        index = next((offset + i for i, r in enumerate(rows) if keep and r["hash"] == keep["hash"]), None)
        if self._end_wanted:
            self._end_wanted = False
            self.key_moved(total - 1)  # and the window holding it is asked for
        elif index is not None and index != self.cursor_row:
            self.move_cursor(row=index)
        elif self.cursor_row >= total:
            self.move_cursor(row=max(0, total - 1))
        layout = fit(self.columns, self._natural_widths(), self.scrollable_content_region.width)
        if layout != self._layout or moved:
            self._layout = layout
            self._strips.clear()
            self.refresh()
        else:
            for i in changed:
                self._strips.pop(i, None)
                self.refresh_line(i + 1)
        self._ensure_window()

    def redraw(self, job_hash: str) -> None:
        """Redraw one loaded row whose cells changed without a reload (a History mark)."""
        for i, row in enumerate(self.window):
            if row["hash"] == job_hash:
                self.shown[i] = self.cells(row)
                self._strips.pop(self.start + i, None)
                self.refresh_line(self.start + i + 1)

    def _natural_widths(self) -> list[int]:
        widths = [len(c.name) for c in self.columns]
        for cells in self.shown:
            for i, cell in enumerate(cells):
                widths[i] = max(widths[i], cell_width(cell))
        return widths

    def _window_size(self) -> int:
        return self.visible_rows() + 2 * MARGIN if self.size.height else FIRST_WINDOW

    def _covers(self, lo: int, hi: int) -> bool:
        """Whether rows lo..hi hold the view and EDGE rows either side of it (or reach the table's ends)."""
        top = round(self.scroll_y)
        bottom = min(self.total, top + self.visible_rows())
        return (top - EDGE >= lo or lo == 0) and (bottom + EDGE <= hi or hi >= self.total)

    def _ensure_window(self) -> None:
        """Ask for the window around the view when the view nears the loaded window's edge (once: not
        again while the window asked for would hold it), with most of it ahead of the scrolling."""
        if not self.total or self._covers(self.start, self.start + len(self.window)):
            return
        size = self._window_size()
        if self._pending is not None and self._covers(self._pending, self._pending + size):
            return
        top = round(self.scroll_y)
        start = top + self.visible_rows() + EDGE - size if top < self.start else top - EDGE
        start = max(0, min(start, self.total - size))
        self.wanted, self._pending = (start, size), start
        self.post_message(self.WindowWanted(self))

    # -- cursor and scrolling -----------------------------------------------------------------

    def move_cursor(self, row: int, animate: bool = False) -> None:  # noqa: ARG002 (DataTable's signature)
        row = max(0, min(row, self.total - 1)) if self.total else 0
        old, self.cursor_row = self.cursor_row, row
        for index in {old, row}:
            self._strips.pop(index, None)
            self.refresh_line(index + 1)
        visible = self.visible_rows()
        # force: right after a window grew the table, its scrollbar shows only at the next layout, and
        # until then Textual refuses to scroll: the cursor would sit below the view, its window unloaded
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False, immediate=True, force=True)
        elif row >= self.scroll_y + visible:
            self.scroll_to(y=row - visible + 1, animate=False, immediate=True, force=True)
        self._ensure_window()

    def key_moved(self, row: int) -> None:
        """The user moved the cursor (a key or a click): noted, so refreshes wait while keys come."""
        self.moved_at = time.monotonic()
        self.move_cursor(row)

    def action_move(self, step: int) -> None:
        self.key_moved(self.cursor_row + step)

    def action_page(self, step: int) -> None:
        self.key_moved(self.cursor_row + step * self.visible_rows())

    def action_jump(self, row: int) -> None:
        """`home` (0) or `end` (-1: the last row of every job matching the filter, not of the loaded
        window; pressed before the table knows how many there are, it takes effect when it does)."""
        self._end_wanted = row < 0 and not self.loaded
        if not self._end_wanted:
            self.key_moved(row if row >= 0 else self.total - 1)

    def action_select(self) -> None:
        job = self.current()
        if job is not None:
            self.post_message(self.Selected(self, job))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._ensure_window()

    def on_click(self, event: events.Click) -> None:
        y = event.y
        if y < 1:
            return
        row = round(self.scroll_y) + y - 1
        if row >= self.total:
            return
        if row == self.cursor_row or event.chain > 1:
            self.action_select()
        self.key_moved(row)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.total + 1)
        self._layout = fit(self.columns, self._natural_widths(), self.scrollable_content_region.width)
        self._strips.clear()
        self._ensure_window()

    def on_focus(self) -> None:
        self._strips.clear()
        self.refresh()

    on_blur = on_focus

    # -- drawing ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = -1 if y == 0 else round(self.scroll_y) + y - 1
        strip = self._strips.get(index)
        if strip is None or strip.cell_length != width:
            strip = self._strips[index] = self._draw(index, width)
        return strip

    def _draw(self, index: int, width: int) -> Strip:
        base = self.rich_style
        if index < 0:
            style = base + self.get_component_rich_style("job-table--header")
            return self._line([Text(c.name) for c in self.columns], style, width)
        if index >= self.total:
            return Strip.blank(width, base)
        style = base
        if index % 2:
            style += self.get_component_rich_style("job-table--even-row")
        if index == self.cursor_row:
            style += self.get_component_rich_style("job-table--cursor")
        i = index - self.start
        if not 0 <= i < len(self.shown):  # its page is loading
            style += self.get_component_rich_style("job-table--pending")
            return self._line([Text("…")] + [Text("")] * (len(self.columns) - 1), style, width)
        return self._line([c if isinstance(c, Text) else Text(c) for c in self.shown[i]], style, width)

    def _line(self, cells: list[Text], style: Style, width: int) -> Strip:
        line = Text(no_wrap=True, end="")
        pad = " " * PAD
        for column_index, w in self._layout or fit(self.columns, self._natural_widths(), width):
            cell = cells[column_index].copy()
            cell.truncate(w, overflow="ellipsis")
            gap = " " * (w - cell.cell_len)
            line.append(pad)
            if self.columns[column_index].right:
                line.append(gap)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(gap)
            line.append(pad)
        segments = [seg for seg in line.render(self.app.console) if seg.text != "\n"]
        return Strip(segments).apply_style(style).crop_extend(0, width, style)
