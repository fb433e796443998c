"""Two executed books, table by table: the proof that a change of code kept every number.

    python scripts/compare_books.py BEFORE AFTER

BEFORE and AFTER are folders of executed chapters (``mifgsm book`` writes them to ``<out>/_build/executed/book``;
the quick book of ``scripts/test.sh`` to ``.mifgsm/book-quick/_build/executed/book``), run with the same
profile and seed. For every chapter the script reads the tables it displays (their caption, headings and cells),
the numbers it glues into its prose and its markdown outputs, and prints, per chapter, how many are the same and
every one that differs (its caption and its first differing cell). Tables of run times differ from run to run
and are listed as such. Exit status 1 where anything else differs.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

#: Captions of tables whose cells are measured run times (never equal across runs).
TIMING_WORDS = ("seconds", "run time", "time taken", "timings")


def _cells(table_html: str) -> tuple[str, list[str]]:
    """The caption and the text of every heading and cell of one table, in order."""
    caption = re.search(r"<caption>(.*?)</caption>", table_html, re.S)
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", table_html, re.S)]
    return (html.unescape(caption.group(1)).strip() if caption else ""), cells


def outputs(notebook: Path) -> dict[str, list]:
    """A chapter's tables (caption, cells), glued values (name, text) and markdown outputs, in order."""
    found: dict[str, list] = {"tables": [], "glue": [], "markdown": []}
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = "".join(data.get("text/html", ""))
            for table in re.findall(r"<table.*?</table>", text, re.S):
                found["tables"].append(_cells(table))
            if "application/papermill.record/text/plain" in data:
                name = out.get("metadata", {}).get("scrapbook", {}).get("name", "")
                found["glue"].append((name, "".join(data["application/papermill.record/text/plain"])))
            if "text/markdown" in data:
                found["markdown"].append("".join(data["text/markdown"]))
    return found


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"cell {i}: {x!r} -> {y!r}"
    return f"{len(a)} cells -> {len(b)} cells"


def compare(before: Path, after: Path) -> bool:
    """Print the comparison of every chapter in both folders; True when nothing but run times differs."""
    same_everywhere = True
    chapters = sorted(p.name for p in before.glob("*.ipynb") if (after / p.name).exists())
    missing = sorted({p.name for p in before.glob("*.ipynb")} ^ {p.name for p in after.glob("*.ipynb")})
    if missing:
        print(f"chapters in one folder only: {missing}")
        same_everywhere = False
    for chapter in chapters:
        old, new = outputs(before / chapter), outputs(after / chapter)
        lines, equal, timing = [], 0, 0
        for (cap_a, a), (cap_b, b) in zip(old["tables"], new["tables"]):
            if (cap_a, a) == (cap_b, b):
                equal += 1
            elif any(w in cap_a.lower() for w in TIMING_WORDS):
                timing += 1
            else:
                lines.append(f"  table {cap_a!r}: {_first_difference(a, b) if cap_a == cap_b else repr(cap_b)}")
        if len(old["tables"]) != len(new["tables"]):
            lines.append(f"  {len(old['tables'])} tables -> {len(new['tables'])}")
        glue_same = sum(a == b for a, b in zip(old["glue"], new["glue"]))
        lines += [f"  glued {a[0]}: {a[1]!r} -> {b[1]!r}" for a, b in zip(old["glue"], new["glue"]) if a != b]
        prose_same = sum(a == b for a, b in zip(old["markdown"], new["markdown"]))
        lines += [f"  prose output {i}: {_first_difference(a.split(), b.split())}"
                  for i, (a, b) in enumerate(zip(old["markdown"], new["markdown"])) if a != b]
        print(f"{chapter}: tables {equal}/{len(old['tables'])} the same"
              + (f" ({timing} of run times)" if timing else "")
              + f", glued values {glue_same}/{len(old['glue'])}, prose outputs {prose_same}/{len(old['markdown'])}")
        print("\n".join(lines)) if lines else None
        same_everywhere &= not lines
    return same_everywhere


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(a).is_dir() for a in argv):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        print(f"expected two folders of executed chapters, got {argv}", file=sys.stderr)
        return 2
    return 0 if compare(Path(argv[0]), Path(argv[1])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
