"""Finance reconciliation: statements, matching, queues, unreconcile, dashboard and daily close."""
