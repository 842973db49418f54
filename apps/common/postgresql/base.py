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
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's BaseDatabaseWrapper; declared for the type checker, which its stubs
    # do not tell.
    health_check_enabled: bool
    health_check_done: bool

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
