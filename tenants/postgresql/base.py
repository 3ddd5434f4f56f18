"""Django's PostgreSQL backend, plus row-level security's two duties (see tenants.rls):
with TENANT_RLS on, a new connection takes the app role (unless the owner is at work), and each
cursor first brings the connection's `app.tenant` / `app.cross_tenant` into line with the context."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from tenants import rls

# django-stubs leave out the backend's private hooks overridden here.


class DatabaseWrapper(base.DatabaseWrapper):
    def _configure_role(self, connection: Any) -> bool:
        rls.forget(self)
        if rls.enforcing() and not rls.owner_mode():
            with connection.cursor() as cursor:
                cursor.execute(f'SET ROLE "{rls.app_role()}"')
            return True
        return bool(super()._configure_role(connection))  # type: ignore[misc]

    def create_cursor(self, name: str | None = None) -> Any:
        if rls.enforcing():
            rls.sync(self)
        return super().create_cursor(name)

    # A rollback may undo settings applied inside the transaction: forget them once it is done (the
    # savepoint's rollback opens a cursor, which may apply them first).
    def _rollback(self) -> Any:
        try:
            return super()._rollback()  # type: ignore[misc]
        finally:
            rls.forget(self)

    def _savepoint_rollback(self, sid: str) -> None:
        try:
            super()._savepoint_rollback(sid)  # type: ignore[misc]
        finally:
            rls.forget(self)

    def _close(self) -> Any:
        try:
            return super()._close()  # type: ignore[misc]
        finally:
            rls.forget(self)
