"""The approval queue: a web UI and a JSON API where people review, edit and approve drafts.

`create_app()` in `worker.web.app` builds the FastAPI application; `queue`, `review` and `stats` hold
the queries and operations both the pages and the API use, and import nothing from FastAPI.
"""
