"""Entry point: ``crossnas <command> ...``.

Every subcommand lives in its own module with a ``register(app)`` function. User
errors (:class:`CrossnasError`, pydantic validation errors) become one line on
stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import logging
import sys

import typer

from crossnas import __version__
from crossnas.errors import CrossnasError, format_validation_error

app = typer.Typer(
    name="crossnas",
    help="Cross-layer NAS for analog processing-in-memory accelerators: network, bits and hardware searched together.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crossnas {__version__}")
        raise typer.Exit()


OPTUNA_COMMANDS = frozenset({"run", "search", "compare"})
"""Commands that run an Optuna study (only they pay for importing Optuna to quiet it)."""


def configure_optuna_logging(verbose: bool) -> None:
    """Optuna logs every trial at INFO through its own handler: the CLI shows those lines
    only with ``--verbose``. Process-wide, so it is set here at the top level and never by
    library code (a program using crossnas as a library keeps its own Optuna setting)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if ctx.invoked_subcommand in OPTUNA_COMMANDS:
        configure_optuna_logging(verbose)


def _register_all() -> None:
    from crossnas.cli import commands

    for module in commands.MODULES:
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    from pydantic import ValidationError

    _register_all()
    try:
        app(args=argv, standalone_mode=False)
    except CrossnasError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except ValidationError as exc:
        typer.echo(f"error: {format_validation_error(exc)}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to continue", err=True)
        return 130
    except Exception as exc:
        # Usage errors (bad flag, missing argument) arrive here in non-standalone mode.
        # Duck-typed: typer vendors click in recent versions and depends on it in older ones.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        raise
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
