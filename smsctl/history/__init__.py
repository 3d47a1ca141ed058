"""Storage: the interface and its types (`interface`, `deferred`), the SQLite backend (`sqlite`,
`sqlite_migrations`) and the PostgreSQL one (`postgres`, `postgres_migrations`, `schema` for what
they share), the group-commit writer (`writer`, `scheduling`), the spool of accepted sends not yet
recorded (`spool`), reading (`reading`), `export` and `copy`.

Only this folder imports sqlite3 or psycopg. Nothing is imported here, so importing the package costs
nothing (start-up stays lazy)."""
