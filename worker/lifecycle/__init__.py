"""The lifecycle mailer: unpaid, paid, shipped, delivered and feedback-request mails, on schedule, once each.

`config` holds the typed per-account settings, `rules` the pure planning and exclusion logic, and
`sweep` the database side (planning on ingest, the beat sweep, approvals). See `sweep`'s docstring
for the scheduling model.
"""
