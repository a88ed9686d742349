"""`redrive plugins ls`: the loaded plugins, their versions and hooks; and the commands plugins add to the CLI."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.markup import escape
from rich.table import Table

from redrive.cli.common import JsonOpt, fail, out, plugins_or_exit
from redrive.plugins import Plugins

app = typer.Typer(no_args_is_help=True, help="Inspect plugins.")


@app.command("ls")
def plugins_ls(as_json: JsonOpt = False) -> None:
    """List the loaded plugins (built-ins first): name, version and the hooks each implements."""
    infos = plugins_or_exit().describe()
    if as_json:
        out.print_json(data=[asdict(info) for info in infos])
        return
    table = Table("name", "version", "hooks", box=None, highlight=False)
    for info in infos:
        name = f"{info.name} (built-in)" if info.builtin else info.name
        table.add_row(escape(name), escape(info.version or "-"), escape(", ".join(info.hooks)))
    out.print(table)


def add_plugin_commands(cli: typer.Typer, plugins: Plugins) -> None:
    """Let every plugin add its commands (``redrive_cli_commands``); one that raises stops with one line."""
    for impl in plugins.manager.hook.redrive_cli_commands.get_hookimpls():
        try:
            impl.function(*(cli for _ in impl.argnames))  # the hook has one argument, which an impl may omit
        except Exception as exc:
            fail(f"plugin {impl.plugin_name!r}: redrive_cli_commands raised {type(exc).__name__}: {exc}")
