"""Two executed books, table by table: the proof that a change of code kept every number.

    python scripts/compare_books.py BEFORE AFTER

BEFORE and AFTER are folders of executed chapters (``mifgsm book`` writes them to ``<out>/_build/executed/book``;
the quick book of ``scripts/test.sh`` to ``.mifgsm/book-quick/_build/executed/book``), run with the same
profile and seed. For every chapter the script reads the tables it displays (matched by caption), the numbers it
glues into its prose and its markdown outputs (in order), and prints, per chapter, how many are the same and
every one that differs, with its first differing cell or words. Measured run times differ from run to run and are
left out: table rows and columns headed by a unit of time, glued values named after one, and a number followed by
a unit of time in prose. Tables found in one book only are listed. Exit status 1 where anything differs.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

#: A heading or glued name that holds a measured run time.
TIME_HEADING = re.compile(r"\bseconds?\b|\bms\b|\bminutes?\b|run time|time taken|\(s\)", re.I)
#: A run time in prose: a number or a range followed by a unit of time ("**18 s**", "in 11 s,", "1.4 to 2.0 ms").
TIME_IN_PROSE = re.compile(r"\d[\d,.]*( to \d[\d,.]*)?(\*\*)?\s*(ms|s|seconds|min|minutes)\b")
MASKED = "<time>"


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def _table(table_html: str) -> tuple[str, list[list[str]]]:
    """The caption and the rows (heading rows first) of one table, run-time cells masked."""
    caption = re.search(r"<caption>(.*?)</caption>", table_html, re.S)
    head = re.search(r"<thead>(.*?)</thead>", table_html, re.S)
    body = re.search(r"<tbody>(.*?)</tbody>", table_html, re.S)

    def rows(part: re.Match | None) -> list[list[str]]:
        return [[_text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)]
                for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", part.group(1), re.S)] if part else []

    heads, cells = rows(head), rows(body)
    width = max((len(row) for row in heads), default=0)
    timed = {j for row in heads for j, h in enumerate(row) if TIME_HEADING.search(h.replace("_", " "))}

    def is_time(row: list[str], j: int) -> bool:
        """A run time: its column's heading (rows under a spanning row heading are shorter: aligned from the right)
        or its row's heading names a unit of time."""
        return j > 0 and ((j + width - len(row)) in timed or bool(TIME_HEADING.search(row[0].replace("_", " "))))

    masked = [[MASKED if is_time(row, j) else c for j, c in enumerate(row)] for row in cells]
    return (_text(caption.group(1)) if caption else ""), heads + masked


def outputs(notebook: Path) -> dict[str, list]:
    """A chapter's tables (caption, rows), glued values (name, text) and markdown outputs, in order."""
    found: dict[str, list] = {"tables": [], "glue": [], "markdown": []}
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for table in re.findall(r"<table.*?</table>", "".join(data.get("text/html", "")), re.S):
                found["tables"].append(_table(table))
            if "application/papermill.record/text/plain" in data:
                name = out.get("metadata", {}).get("scrapbook", {}).get("name", "")
                value = "".join(data["application/papermill.record/text/plain"])
                found["glue"].append((name, MASKED if TIME_HEADING.search(name.replace("_", " ")) else value))
            if "text/markdown" in data:
                found["markdown"].append(TIME_IN_PROSE.sub(MASKED, "".join(data["text/markdown"])))
    return found


def _by_caption(tables: list[tuple[str, list[list[str]]]]) -> dict[tuple[str, int], list[list[str]]]:
    """Tables keyed by caption and occurrence (the second table captioned alike is (caption, 1))."""
    seen: dict[str, int] = defaultdict(int)
    keyed = {}
    for caption, rows in tables:
        keyed[(caption, seen[caption])] = rows
        seen[caption] += 1
    return keyed


def _first_difference(a: list[str], b: list[str], context: int = 0) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            if context:
                return f"{' '.join(a[max(0, i - context):i + context])!r} -> {' '.join(b[max(0, i - context):i + context])!r}"
            return f"cell {i}: {x!r} -> {y!r}"
    return f"{len(a)} -> {len(b)} items"


def compare_chapter(old: dict[str, list], new: dict[str, list]) -> tuple[str, list[str]]:
    """A one-line summary of one chapter and a line for every difference."""
    before, after = _by_caption(old["tables"]), _by_caption(new["tables"])
    lines = [f"  table {caption!r}: {_first_difference(sum(before[(caption, k)], []), sum(after[(caption, k)], []))}"
             for caption, k in before if (caption, k) in after and before[(caption, k)] != after[(caption, k)]]
    lines += [f"  table only before: {key[0]!r}" for key in before if key not in after]
    lines += [f"  table only after: {key[0]!r}" for key in after if key not in before]
    same_tables = sum(before[key] == after.get(key) for key in before)
    lines += [f"  glued {a[0]}: {a[1]!r} -> {b[1]!r}" for a, b in zip(old["glue"], new["glue"]) if a != b]
    same_glue = sum(a == b for a, b in zip(old["glue"], new["glue"]))
    lines += [f"  prose output {i}: {_first_difference(a.split(), b.split(), context=6)}"
              for i, (a, b) in enumerate(zip(old["markdown"], new["markdown"])) if a != b]
    if len(old["markdown"]) != len(new["markdown"]):
        lines.append(f"  {len(old['markdown'])} prose outputs -> {len(new['markdown'])}")
    same_prose = sum(a == b for a, b in zip(old["markdown"], new["markdown"]))
    summary = (f"tables {same_tables}/{len(before)} the same, glued values {same_glue}/{len(old['glue'])}, "
               f"prose outputs {same_prose}/{len(old['markdown'])} (run times left out)")
    return summary, lines


def compare(before: Path, after: Path) -> bool:
    """Print the comparison of every chapter in both folders; True when nothing differs."""
    names = {p.name for p in before.glob("*.ipynb")}, {p.name for p in after.glob("*.ipynb")}
    same_everywhere = names[0] == names[1]
    if not same_everywhere:
        print(f"chapters in one folder only: {sorted(names[0] ^ names[1])}")
    for chapter in sorted(names[0] & names[1]):
        summary, lines = compare_chapter(outputs(before / chapter), outputs(after / chapter))
        print(f"{chapter}: {summary}")
        for line in lines:
            print(line)
        same_everywhere &= not lines
    return same_everywhere


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(a).is_dir() for a in argv):
        print("usage: python scripts/compare_books.py BEFORE AFTER (two folders of executed chapters), got "
              f"{argv}", file=sys.stderr)
        return 2
    return 0 if compare(Path(argv[0]), Path(argv[1])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
