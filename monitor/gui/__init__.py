"""The desktop monitor window (PyQt6).

The modules without Qt (`present`, `tuning`, `history`) hold every decision the window makes, so
they are tested as plain functions; `worker` runs capture and inference off the GUI thread;
`widgets`, `timeline` and `app` only show and forward clicks. Nothing here is imported by
`--help`: `commands` imports Qt inside its handler.
"""
