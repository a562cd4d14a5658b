"""Regenerate docs/errors.md from the bad-input suite: ``python tests/make_errors_page.py``.

Runs every case of ``tests/test_bad_input.py`` and writes the message it produces.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snnjax.cli import main  # noqa: E402
from tests import test_bad_input as suite  # noqa: E402

HEADER = """# Errors

Every mistake below is caught **before anything is compiled**, with a message that says
what is wrong and how to fix it. The CLI prints it as one line, `error: …`, exits with
status 2 and leaves no output files behind; the Python API raises a subclass of
`snnjax.errors.SnnjaxError`:

| exception | raised for |
|---|---|
| `ConfigError` (also a `ValueError`) | an invalid config value, key or combination |
| `InputError` (also a `ValueError`) | arrays with a wrong shape or dtype, NaN/inf, negative intensities |
| `PluginError` (also a `LookupError`) | unknown plugin names or parameters, collisions, plugins that fail to import or raise |
| `DataError`, `DataUnavailableError` | unreadable or empty data; a dataset not available on this machine |
| `CheckpointError` | a corrupt checkpoint, or one written by another run |
| `OutputError` (`snnjax.rundir`) | an output path that cannot be written; a run directory in use by another run, or holding another run |
| `MergeError`, `ResultsError` | runs that cannot be merged; a missing or damaged `results.json` or `weights.npz` |

The table is the bad-input suite, `tests/test_bad_input.py`; the messages are the ones
that suite's inputs produce (TMP stands for a scratch directory). Regenerate it with
`python tests/make_errors_page.py`.

| where | case | input | message |
|---|---|---|---|
"""


def _scratch() -> pathlib.Path:
    return suite.make_scratch(pathlib.Path(tempfile.mkdtemp()))


def _clean(msg: str, d: pathlib.Path) -> str:
    return msg.replace(str(d), "TMP").replace("|", "\\|").replace("\n", " ").strip()


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for case, (argv, _) in suite.CLI_CASES.items():
        d = _scratch()
        argv = [a.replace("{tmp}", str(d)) for a in argv]
        shown = " ".join(a.replace(str(d), "TMP") for a in argv)
        if argv[0] == "run" and "--resume" not in argv:
            argv += ["--out", str(d / "out"), "--quiet"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            main(argv)
        out.append(("CLI", case, f"`snnjax {shown}`", _clean(err.getvalue().removeprefix("error: "), d)))
    for case in suite.API_CASE_NAMES:
        fn, _, _ = suite._api_cases()[case]
        d = pathlib.Path(tempfile.mkdtemp())
        try:
            fn(d)
        except Exception as exc:  # noqa: BLE001
            out.append(("Python", case, f"`{type(exc).__name__}`", _clean(str(exc), d)))
    return out


if __name__ == "__main__":
    page = HEADER + "".join(f"| {w} | {c} | {i} | {m} |\n" for w, c, i, m in rows())
    (ROOT / "docs" / "errors.md").write_text(page)
    print(f"wrote docs/errors.md ({page.count(chr(10))} lines)")
