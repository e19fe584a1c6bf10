"""The README is the front door: its configuration table must list every key with its default.

`python -m tests.test_readme` rewrites the table from monitor/config.py.
"""

import re
from pathlib import Path

from monitor.config import describe

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
README = README_PATH.read_text(encoding="utf-8")
TABLE = re.compile(r"(<!-- config-table[^\n]*-->\n).*?(\n<!-- /config-table -->)", re.S)


def config_rows() -> list[str]:
    rows = []
    for section, key, default, lo, hi, help_text in describe():
        value = str(default).lower() if isinstance(default, bool) else repr(default)
        allowed = "" if lo is None else f"{lo} – {hi}"
        meaning = help_text.replace("|", "\\|")
        rows.append(f"| `{section}.{key}` | {value} | {allowed} | {meaning} |")
    return rows


def test_readme_lists_every_configuration_key():
    missing = [row for row in config_rows() if row not in README]
    assert not missing, "README configuration table is stale; regenerate it:\n" + "\n".join(missing)


def test_readme_lists_no_removed_key():
    table = TABLE.search(README)
    assert table, "README has lost its config-table markers"
    listed = {line for line in table.group(0).splitlines() if line.startswith("| `")}
    stale = listed - set(config_rows())
    assert not stale, "README lists keys that are gone or changed:\n" + "\n".join(sorted(stale))


def test_readme_has_the_two_commands():
    assert "./setup.sh && .venv/bin/python run_monitor.py" in README
    assert "./setup.sh --test && .venv/bin/python -m pytest" in README


def render_table() -> str:
    return "| key | default | allowed | meaning |\n| --- | --- | --- | --- |\n" + "\n".join(config_rows())


if __name__ == "__main__":
    README_PATH.write_text(TABLE.sub(lambda m: m.group(1) + render_table() + m.group(2), README), encoding="utf-8")
