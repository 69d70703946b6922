"""HTML tables for the report: every cell escaped, with the raw value a column sorts by and a class for its colour."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from sweep.analysis.report import fmt


@dataclass(frozen=True)
class Cell:
    text: str  # shown, escaped when written
    sort: Any = None  # what the column sorts by (a number sorts as one); None: the text
    css: str = ""  # class names, e.g. "verdict verdict-plateau"


def cell(value: Any, css: str = "") -> Cell:
    """A value as a cell: numbers shown as the text report writes them and sorted by their full value."""
    if isinstance(value, Cell):
        return value
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return Cell("-", "", css)  # an empty sort key: the JS puts missing values last either way
    if isinstance(value, bool):
        return Cell("yes" if value else "no", int(value), css)
    if isinstance(value, (int, float)):
        return Cell(fmt(value), value, css)
    return Cell(str(value), None, css)


def count_cell(count: int, total: int, rate: float | None = None, interval: list | None = None) -> Cell:
    """"3 of 10 (30%, 95% CI 11%–60%)", sorted by the rate."""
    text = f"{count} of {total}"
    if rate is None and total:
        rate = count / total
    if rate is not None:
        text += f" ({rate:.0%}" + (f", 95% CI {interval[0]:.0%}–{interval[1]:.0%})" if interval else ")")
    return Cell(text, "" if rate is None else rate)


def verdict_cell(verdict: str | None) -> Cell:
    return Cell(verdict or "-", verdict or "", f"verdict verdict-{verdict}" if verdict else "")


def _td(value: Any) -> str:
    item = cell(value)
    attributes = ""
    if item.sort is not None:
        sort = repr(item.sort) if isinstance(item.sort, (int, float)) else str(item.sort)
        attributes += f' data-sort="{html.escape(sort)}"'
    if item.css:
        attributes += f' class="{html.escape(item.css)}"'
    return f"<td{attributes}>{html.escape(item.text)}</td>"


def table(table_id: str, headers: list[str], rows: list[list], *, sortable: bool = False,
          caption: str | None = None) -> str:
    """One table; with ``sortable`` a click on a header sorts the rows by that column (the page's script)."""
    css = ' class="sortable"' if sortable else ""
    focus = ' tabindex="0"' if sortable else ""  # a header sorts from the keyboard too
    head = "".join(f'<th scope="col"{focus}>{html.escape(h)}</th>' for h in headers)
    body = "\n".join("<tr>" + "".join(_td(value) for value in row) + "</tr>" for row in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table id="{html.escape(table_id)}"{css}>{title}<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table>")


# Sorting by a header click, written by hand: a few lines, and the page must work offline without a library.
SORT_SCRIPT = """
function sortKey(row, column) {
  const cell = row.cells[column];
  return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
}
function compareKeys(a, b) {
  if (a === "" || b === "") return (a === "") - (b === "");
  const x = Number(a), y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : a.localeCompare(b);
}
document.querySelectorAll("table.sortable th").forEach(header => {
  const sort = () => {
    const table = header.closest("table"), column = header.cellIndex;
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(other => other.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(table.tBodies[0].rows);
    rows.sort((a, b) => {
      const x = sortKey(a, column), y = sortKey(b, column);
      if (x === "" || y === "") return (x === "") - (y === "");  // missing values last in either order
      return ascending ? compareKeys(x, y) : compareKeys(y, x);
    });
    table.tBodies[0].append(...rows);
  };
  header.addEventListener("click", sort);
  header.addEventListener("keydown", event => { if (event.key === "Enter") sort(); });
});
"""
