"""The ``ivr`` command: train, parse, simulate, chat, evaluate, serve, models.

Every failure a user can cause ends in one ``error: ...`` line on stderr and a non-zero exit,
never a traceback (set IVR_DEBUG=1 to see one). The arguments are in ``parser.py``; the
commands, by concern, beside it; their text output in ``printing.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from ivr.cli.common import DEFAULT_LOCALE, EXIT_ERROR
from ivr.cli.parser import build_parser
from ivr.errors import IvrError
from ivr.project import Project


def quiet_cli_warnings() -> None:
    """TensorFlow, JAX and Rasa warn about themselves at every start, and some of them reset
    warning filters: send warnings to a logger that only shows errors instead."""
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("IVR_DEBUG"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        quiet_cli_warnings()
    locale = args.locale or DEFAULT_LOCALE
    args.project_obj = (Project(args.project.resolve(), locale) if args.project
                        else Project.discover(locale))
    try:
        if args.locale and args.locale not in args.project_obj.locales():
            raise IvrError(f"no locale {args.locale!r}: there is no {args.project_obj.config}")
        return asyncio.run(args.fn(args))
    except IvrError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: still one line for the user, the trace with IVR_DEBUG=1
        if debug:
            raise
        print(f"error: internal error ({type(e).__name__}: {e}); rerun with IVR_DEBUG=1",
              file=sys.stderr)
        return EXIT_ERROR
