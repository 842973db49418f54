"""Django's PostgreSQL backend, with a health check that costs no round trip when there
is nothing to check.

With CONN_HEALTH_CHECKS, Django asks the server `SELECT 1` before a persistent
connection's first query of each request: a round trip that costs the server and the web
process about what the invite redirect's own lookup does. A connection that the server
ended (a restart, a terminated session) has said so already: its last message and the
end of the stream wait in the socket. So an idle connection with nothing to read is taken
as healthy at once, and only one with something to read, or not idle, gets Django's
`SELECT 1`. A connection lost without a word (a network cut) fails its first query
instead, as it could just after any check; Django then drops it at the request's end.

It also gives `prepared_cursor()`: a cursor whose statements are bound and prepared on the
server, once per connection. For the few statements written out by hand on hot paths,
whose planning costs the server as much as running them. Django's own cursors bind on
the client and never prepare, so that connection poolers keep working; behind PgBouncer
in transaction mode, set its max_prepared_statements (PgBouncer 1.21 or later), or
`"prepare_threshold": None` in the database OPTIONS to prepare nothing.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base, operations
from django.db.backends.utils import CursorWrapper
from psycopg.pq import TransactionStatus

# Executions before psycopg prepares a statement of a server-binding cursor by itself.
PREPARE_THRESHOLD = 5


# Django's server-binding cursor (psycopg's Cursor with Django's additions); the type stubs
# do not have it.
_ServerBindingCursor: Any = base.ServerBindingCursor


class PreparedCursor(_ServerBindingCursor):
    """Binds on the server and prepares every statement it runs (psycopg keeps each
    connection's prepared statements, and runs them by name from then on)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs["prepare"] = True
        return super().execute(query, params, **kwargs)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> Any:
        """What the query log (DEBUG, tests) shows: a prepared statement has no text of
        its own in psycopg, so it is shown composed from the statement and parameters."""
        shown = super().last_executed_query(cursor, sql, params)
        if shown is None and params is not None:
            shown = self.compose_sql(sql, params)
        return shown


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    # Set by Django's BaseDatabaseWrapper; declared for the type checker, which its stubs
    # do not tell.
    health_check_enabled: bool
    health_check_done: bool

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if "prepare_threshold" not in self.settings_dict["OPTIONS"]:
            # psycopg prepares nothing while this is None (Django's default), whatever a
            # cursor asks. Client-binding cursors (all of Django's) never prepare anyway;
            # this lets `prepared_cursor()` do what it says.
            params["prepare_threshold"] = PREPARE_THRESHOLD
        return params

    def prepared_cursor(self) -> CursorWrapper:
        """Like `cursor()`, but its statements are prepared: every parameter needs a type
        the server can tell (a cast where the statement does not say it)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        self.validate_thread_sharing()
        with self.wrap_database_errors:
            cursor = PreparedCursor(self.connection)
        return self.make_debug_cursor(cursor) if self.queries_logged else self.make_cursor(cursor)

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and self._idle_and_silent()
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _idle_and_silent(self) -> bool:
        """Open, outside a transaction, and with no message from the server waiting."""
        connection = self.connection
        if (
            connection.closed
            or connection.broken
            or connection.info.transaction_status != TransactionStatus.IDLE
        ):
            return False
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        return not poller.poll(0)
