"""``/api/v1/plugins``: the loaded plugins (admin); each plugin's own routes under ``/api/v1/plugins/{name}/``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, FastAPI

from redrive.api.auth import AdminDep, require
from redrive.api.deps import StateDep
from redrive.errors import PluginError
from redrive.plugins import Plugins

router = APIRouter(prefix="/api/v1", tags=["plugins"])


@router.get("/plugins")
async def plugins_list(state: StateDep, caller: AdminDep) -> dict[str, Any]:
    """Every loaded plugin: name, version, the hooks it implements, and whether it is one of redrive's built-ins."""
    return {"items": [asdict(info) for info in state.plugin_set.describe()]}


def mount_plugin_routes(app: FastAPI, plugins: Plugins, *, responses: dict[int | str, dict[str, Any]]) -> None:
    """Serve each plugin's ``redrive_api_routes`` router under ``/api/v1/plugins/{name}``.

    Every route there authenticates (at least a viewer token); a route asks for more with ``OperatorDep`` or
    ``AdminDep`` like redrive's own routes.
    """
    for impl in plugins.manager.hook.redrive_api_routes.get_hookimpls():
        try:
            plugin_router = impl.function()
        except Exception as exc:
            message = f"plugin {impl.plugin_name!r}: redrive_api_routes raised {type(exc).__name__}: {exc}"
            raise PluginError(message) from None
        if plugin_router is None:
            continue
        if not isinstance(plugin_router, APIRouter):
            raise PluginError(f"plugin {impl.plugin_name!r}: redrive_api_routes must return a fastapi.APIRouter")
        app.include_router(
            plugin_router,
            prefix=f"/api/v1/plugins/{impl.plugin_name}",
            dependencies=[require("viewer")],  # type: ignore[list-item]
            responses=responses,
            tags=[f"plugin: {impl.plugin_name}"],
        )
