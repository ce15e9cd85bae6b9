"""The `factory` command line: thin commands that parse, validate and call the library.

User mistakes (`FactoryError`, bad flags) print one line and exit 2; runtime failures (`RunFailure`, such as a
loss that became non-finite) print one line and exit 1. There is never a traceback for either.
torch and friends are imported inside the commands so that `factory --help` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys

import click

from factory import __version__
from factory.core.errors import DiskFull, FactoryError, RunFailure, disk_failure, os_failure, short_value
from factory.core.launch import is_main_process

# name -> "module:function". Command modules import only click at the top, so `factory --help` stays
# instant; one line here per command.
COMMANDS = {
    "presets": "factory.cli.model:presets",
    "init": "factory.cli.model:init",
    "shards": "factory.cli.shards:shards",
    "pretrain": "factory.cli.pretrain:pretrain",
    "vocab": "factory.cli.vocab:vocab",
    "trim": "factory.cli.derive:trim",
    "transplant": "factory.cli.derive:transplant",
    "eval": "factory.cli.evaluate:eval_group",
    "publish": "factory.cli.publish:publish",
    "run": "factory.cli.run:run",
}


class FactoryGroup(click.Group):
    """Commands from `COMMANDS`; errors are one line (`Error: what is wrong; how to fix it`): exit code 2 for a
    user mistake, 1 for a run that failed (see factory.core.errors)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        command = command_of(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            return self._fail(f"{_short_words(e.format_message())}{hint}", 2, standalone_mode)
        except FactoryError as e:
            return self._fail(str(e), 2, standalone_mode)
        except RunFailure as e:
            return self._fail(failure_line(e, command), 1, standalone_mode)
        except click.ClickException as e:
            return self._fail(e.format_message(), e.exit_code, standalone_mode)
        except click.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort): 128 + SIGINT, as shells expect
            return self._fail(f"interrupted; {rerun(command)}", 130, standalone_mode)
        except OSError as e:  # a path the user gave, or a full disk: one line, never a traceback (errors.os_failure)
            failure = disk_failure(e) or os_failure(e)
            code = 2 if isinstance(failure, FactoryError) else 1
            return self._fail(failure_line(failure, command), code, standalone_mode)
        except Exception as e:  # a library's own error for a full disk (safetensors, torch.save): one line, exit 1
            failure = disk_failure(e)
            if failure is None:
                raise  # anything else is a bug: its traceback is what a report needs
            return self._fail(failure_line(failure, command), 1, standalone_mode)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return rv

    @staticmethod
    def _fail(message: str, code: int, standalone_mode: bool):
        click.echo(f"Error: {message}", err=True)
        if standalone_mode:
            sys.exit(code)
        return code


def _short_words(message: str) -> str:
    """Click's own usage messages quote what was typed (an unknown command or option, an extra argument) whole: a
    word over 100 characters is cut as `short_value` cuts the values factory's own messages name."""
    return re.sub(r"\S{101,}", lambda m: short_value(m.group(), quote=False), message)


# What running the command again does with what an interrupted (Ctrl-C) or failed (a full disk) run of it left,
# said after `interrupted; ` and after a full disk's line. Every command writes its folders whole or not at all
# (outputs.staged_output); only these keep work to continue from (docs/promises.md#resume).
RERUN = {
    "pretrain": "outputs are whole or absent, and `pretrain --resume auto` continues from the last checkpoint",
    "shards": "outputs are whole or absent, and the same command run again resumes the build from its last state",
    "run": "outputs are whole or absent, and the same `factory run` again skips the finished steps and resumes "
    "the shard build and the pre-training where they stopped",
    "eval": "outputs are whole or absent, and the same command run again keeps the tasks of a suite that finished",
    "publish": "the staging folder is whole or absent and the Hub repository gets the whole commit or none; run it "
    "again",
}
START_OVER = "outputs are whole or absent, and there is nothing to resume: run it again to start over"


def command_of(args: list[str] | tuple[str, ...]) -> str | None:
    """The command a `factory` command line runs: its first word that is not an option (factory's own options
    take no value)."""
    return next((str(a) for a in args if not str(a).startswith("-")), None)


def rerun(command: str | None) -> str:
    """What running `command` again keeps of an interrupted or failed run (RERUN)."""
    return RERUN.get(command or "", START_OVER)


def failure_line(failure: RunFailure | FactoryError, command: str | None) -> str:
    """A failure's line; a full disk's says what a rerun of the command keeps (the library cannot know it)."""
    return f"{failure}; {rerun(command)}" if isinstance(failure, DiskFull) else str(failure)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


VERBOSITY = ("HF_HUB_VERBOSITY", "DATASETS_VERBOSITY")  # huggingface_hub's and datasets' own log levels


class EchoHandler(logging.Handler):
    """Log records as plain lines on stderr, looked up at each record (so Click's test runner captures them)."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        click.echo(prefix + record.getMessage(), err=True)


def configure_logging(verbose: int, quiet: bool) -> None:
    """The one output channel of the library: the `factory` logger. -v shows debug lines, -q only warnings
    (and hides progress bars); processes other than the main one (RANK > 0 under torchrun/accelerate) log
    errors only, so N processes print what one prints."""
    logger = logging.getLogger("factory")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, EchoHandler)]
    logger.addHandler(EchoHandler())
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logger.setLevel(level if is_main_process() else logging.ERROR)
    if not verbose:  # the Hub's retries ("Retrying in 2s [Retry 2/5]") and notices: with -v only; both libraries
        for variable in VERBOSITY:  # read these when they are imported (later, inside a command)
            os.environ.setdefault(variable, "error")


@click.group(cls=FactoryGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="factory")
@click.option("-v", "--verbose", count=True, help="Show debug lines too.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
def cli(verbose: int, quiet: bool) -> None:
    """Build DeBERTa-v3 model families: vocabulary -> pre-training -> evaluation -> Hub.

    \b
    Start here:
      factory presets                         the sizes you can build (xsmall ... xxlarge)
      factory init --preset base --out m/     a random model in Hugging Face format

    Every command writes one folder with a factory.json manifest, so each step can be re-run,
    resumed or replaced on its own. Run `factory COMMAND --help` for the details of a step.
    """
    configure_logging(verbose, quiet)
    if "FACTORY_ATTENTION" in os.environ:  # checked before any work, not at the first forward pass
        from factory.model.attention import attention_backend

        attention_backend()


def main() -> None:
    cli(prog_name="factory")


if __name__ == "__main__":
    main()
