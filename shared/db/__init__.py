"""The database: the embedded PostgreSQL, migrations, the pool, the shared rate store."""
