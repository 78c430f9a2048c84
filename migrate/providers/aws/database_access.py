"""What needs the Aurora database itself on AWS, built from the writer RDS names and the credentials in
Secrets Manager: the schema store (expand-schema, contract-schema), which asks for the secret on first
use, once per process.

Not the data-verification checksummer yet: the lab's compares writer and standby at one LSN by pausing
the standby's WAL replay (pg_wal_replay_pause), which an Aurora reader does not offer (its replicas
read shared storage, not a WAL stream they replay). Verifying an Aurora secondary needs another
consistency point (e.g. aurora_global_db_status's durable LSN with retried ranges); until then
attach-secondary's verify-data on AWS says so plainly."""

from __future__ import annotations

from functools import cache

from psycopg.conninfo import make_conninfo

from migrate.providers.aws.clients import ClientFactory
from migrate.providers.aws.database_secret import DatabaseCredentials, read_database_secret
from migrate.providers.pg_schema import PgSchemaStore

class DatabaseAccess:
    """Connection names for one game database on Aurora; the password is read lazily and kept in memory."""

    def __init__(self, clients: ClientFactory, region: str, secret_id: str, database: str,
                 writer_address, *, sslmode: str = "require") -> None:
        self._clients, self._region, self._secret_id, self.database = clients, region, secret_id, database
        self._sslmode = sslmode
        self._writer_address = writer_address  # () -> (host, port), asked each time: the writer moves
        self._credentials = cache(self._read)

    def _read(self) -> DatabaseCredentials:
        return read_database_secret(self._clients, self._region, self._secret_id)

    def password(self) -> str:
        return self._credentials().password

    def dsn(self, host: str, port: int = 5432) -> str:
        """A libpq DSN without the password (TLS required: Aurora's endpoints are on the network)."""
        return make_conninfo(host=host, port=port, dbname=self.database, user=self._credentials().username,
                             sslmode=self._sslmode, application_name="migrate")

    def writer_dsn(self) -> str:
        return self.dsn(*self._writer_address())

    def schema_store(self, homes=None) -> PgSchemaStore:
        """The schema at the origin's writer; `homes` () -> {region: () -> DSN} names the promoted home
        writers (cutover), whose schema expand and contract change too."""
        return PgSchemaStore(self.writer_dsn, password=self.password, where="aws schema", homes=homes)

