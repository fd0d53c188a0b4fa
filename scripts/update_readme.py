"""Regenerate the README's demo block from the shipped store (numbers are never typed by hand).

.venv/bin/python scripts/update_readme.py          # rewrite README.md
.venv/bin/python scripts/update_readme.py --check  # exit 1 if the README is stale
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robust_core.demo import markdown_report  # noqa: E402
from robust_core.store import open_store  # noqa: E402

START, END = "<!-- demo-report:start (scripts/update_readme.py) -->", "<!-- demo-report:end -->"


def render(readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown_report(open_store(ROOT / 'cache' / 'demo'))}\n{END}{tail}"


def main() -> int:
    path = ROOT / "README.md"
    text = path.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md's demo block is stale: run .venv/bin/python scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
