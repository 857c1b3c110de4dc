"""Embedded mode (no REDIS_URL) on a real database file/server: the admin screen runs day-end in the request."""
import time

from sqlalchemy import select

from tests.conftest import csrf_token, login
from tests.jobs.helpers import fresh_runtime, scratch_app, scratch_url, seed  # noqa: F401 (fixtures)
from webapp import clock, db
from webapp.models import AuditEntry, CronRun


def test_run_form_runs_dayend_inside_the_request(scratch_url, tmp_path, fresh_runtime):
    app = scratch_app(scratch_url, tmp_path, redis_url="")
    seed(app, loan_count=3)
    client = app.test_client()
    assert login(client, "adm").status_code == 302
    token = csrf_token(client, "/admin/jobs")
    day = clock.last_business_date()
    started = time.monotonic()
    # On SQLite a writing request holds the write lock; the run's own sessions must not wait on it.
    response = client.post("/admin/jobs/run", data={"date": day.isoformat(), "csrf_token": token},
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "succeeded (attempt 1)" in html and "3 loans processed" in html
    assert time.monotonic() - started < 20
    with app.app_context(), db.new_session() as session:
        assert [r.status for r in session.scalars(select(CronRun))] == ["SUCCEEDED"]
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "dayend.requested"))
        assert entry.actor_label == "adm" and entry.entity_id == day.isoformat()
