"""Scheduled and queued jobs (RQ). Jobs are thin: they take ids and dates, open their own session and
call services. The day-end, reminder, escalation, scoring and backup jobs arrive with their features."""
