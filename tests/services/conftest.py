"""Services tier: real PostgreSQL and Redis. The fixtures live in tests/conftest.py (pg_url, pg_engine,
pg_settings, pg_empty_url, redis_url); every test in this folder gets the `services` marker there, so
`pytest -m "not services"` runs the fast tier alone."""
