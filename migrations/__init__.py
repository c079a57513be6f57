"""The suite's SQL migrations, applied in order by `shared.db.migrate` (shipped inside the installed package)."""
