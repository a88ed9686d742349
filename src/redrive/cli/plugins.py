"""`redrive plugins ls`: the loaded plugins, their versions and hooks; and the commands plugins add to the CLI."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from redrive.cli.common import JsonOpt, fail, group, plugins_or_exit
from redrive.cli.output import out, print_table

if TYPE_CHECKING:
    import pluggy

app = group("Inspect plugins.")


@app.command("ls")
def plugins_ls(as_json: JsonOpt = False) -> None:
    """List the loaded plugins (built-ins first): name, version and the hooks each implements."""
    infos = plugins_or_exit().describe()
    if as_json:
        out.print_json(data=[asdict(info) for info in infos])
        return
    print_table(
        ("name", "version", "hooks"),
        (
            (f"{info.name} (built-in)" if info.builtin else info.name, info.version or "-", ", ".join(info.hooks))
            for info in infos
        ),
    )


def add_plugin_commands(cli: typer.Typer, manager: pluggy.PluginManager) -> None:
    """Let every plugin add its commands (``redrive_cli_commands``); one that raises stops with one line."""
    for impl in manager.hook.redrive_cli_commands.get_hookimpls():
        try:
            impl.function(*(cli for _ in impl.argnames))  # the hook has one argument, which an impl may omit
        except Exception as exc:
            fail(f"plugin {impl.plugin_name!r}: redrive_cli_commands raised {type(exc).__name__}: {exc}")
