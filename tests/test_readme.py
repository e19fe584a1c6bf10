"""The README is the front door: its configuration table must list every key with its default."""

from pathlib import Path

from monitor.config import describe

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


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


def test_readme_has_the_two_commands():
    assert "./setup.sh && .venv/bin/python run_monitor.py" in README
    assert "./setup.sh --test && .venv/bin/python -m pytest" in README
