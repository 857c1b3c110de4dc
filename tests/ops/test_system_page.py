"""The admin system page: CPU, memory, disk, database connections, queues, last day-end, last backup."""
from datetime import timedelta

from webapp import clock
from webapp.models import CronRun


def test_admin_sees_the_system_page(app, db, login_as, tmp_path, backend):
    started = clock.now() - timedelta(hours=2)
    db.add(CronRun(job="dayend", business_date=clock.last_business_date(), attempt=1, status="SUCCEEDED",
                   started_at=started, finished_at=started + timedelta(seconds=5), loans_processed=77))
    db.flush()
    app.config["BACKUP_DIR"] = str(tmp_path / "none-yet")
    try:
        html = login_as("adm").get("/admin/system").get_data(as_text=True)
    finally:
        app.config["BACKUP_DIR"] = str(tmp_path)
    for text in ("CPU", "Memory", "Disk", "backups", "Last successful day-end", "77 loans", "Last backup",
                 "none in", "never", "embedded mode"):
        assert text in html, text
    assert ("server connections in use" in html) is (backend == "postgresql")


def test_only_admins_see_it(login_as):
    for user in ("col", "mgr", "fin", "leg"):
        assert login_as(user).get("/admin/system").status_code == 403
