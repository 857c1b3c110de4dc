"""/metrics: who may read it, what it says, and that the figures follow the database and Redis."""
import re
from datetime import timedelta

import pytest
import redis
from rq import Queue

from webapp import clock, create_app
from webapp.models import CronRun

REDIS_OPS_URL = "redis://127.0.0.1:6379/12"  # this folder's Redis database, flushed by its tests


def value(body: str, name: str, labels: str = "") -> float | None:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.M)
    return float(match.group(1)) if match else None


def scrape(client, **kwargs) -> str:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_are_refused_outside_the_allowed_addresses_without_the_token(app, client):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    response = client.get("/metrics", environ_base=outside)
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.get_json()["error"]["message"]
    app.config["METRICS_TOKEN"] = "t" * 8 + "0123456789abcdefghijklmnopqrstuv"
    try:
        assert client.get("/metrics", environ_base=outside,
                          headers={"Authorization": "Bearer wrong-token"}).status_code == 403
        assert client.get("/metrics", environ_base=outside,
                          headers={"Authorization": f"Bearer {app.config['METRICS_TOKEN']}"}).status_code == 200
    finally:
        app.config["METRICS_TOKEN"] = ""
    app.config["METRICS_ALLOW"] = "10.0.0.0/8"
    try:
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"}).status_code == 200
        assert client.get("/metrics").status_code == 403  # 127.0.0.1 is no longer listed
    finally:
        app.config["METRICS_ALLOW"] = "127.0.0.1/32,::1/128"


def test_request_latency_and_counts_per_endpoint(client):
    client.get("/healthz")
    client.get("/no-such-page")
    body = scrape(client)
    assert value(body, "kisht_http_requests_total", '{endpoint="health.healthz",method="GET",status="200"}') >= 1
    assert value(body, "kisht_http_requests_total", '{endpoint="unmatched",method="GET",status="404"}') >= 1
    assert value(body, "kisht_http_request_duration_seconds_bucket",
                 '{endpoint="health.healthz",le="0.5",method="GET"}') >= 1
    for name in ("kisht_host_cpu_seconds_total", "kisht_host_memory_available_bytes", "kisht_app_resident_memory_bytes",
                 'kisht_disk_free_bytes{path="data"}', 'kisht_disk_free_bytes{path="backups"}',
                 'kisht_dependency_up{dependency="database"} 1.0', "kisht_db_pool_size", "kisht_errors_total"):
        assert name in body, name


def test_payments_and_dayend_figures_come_from_the_database(client, db, make_loan, users, backend):
    from webapp.services import payments

    loan = make_loan(loan_number="KLMET1")
    before = value(scrape(client), "kisht_payments_booked_today")
    payments.record_payment(db, users["col"], loan.loan_number, {
        "amount": "1234.50", "mode": "CASH", "receipt_number": "RMET0001", "value_date": clock.today_ist().isoformat()})
    yesterday = clock.last_business_date()
    started = clock.now() - timedelta(minutes=3)
    db.add(CronRun(job="dayend", business_date=yesterday, attempt=1, status="SUCCEEDED", started_at=started,
                   finished_at=started + timedelta(seconds=42), loans_processed=1234))
    db.add(CronRun(job="scoring", business_date=yesterday, attempt=1, status="FAILED", started_at=started))
    db.flush()
    body = scrape(client)
    assert value(body, "kisht_payments_booked_today") == before + 1
    assert value(body, "kisht_payments_booked_today_rupees") >= 1234.50
    assert value(body, "kisht_dayend_last_loans_processed") == 1234
    assert value(body, "kisht_dayend_last_duration_seconds") == 42
    assert value(body, "kisht_dayend_last_success_business_date_seconds") == \
        clock.start_of_ist_day(yesterday).timestamp()
    assert value(body, "kisht_job_runs_failed_24h", '{job="scoring"}') == 1
    if backend == "postgresql":
        assert value(body, "kisht_db_connections") >= 1 and value(body, "kisht_db_max_connections") >= 10


@pytest.fixture()
def redis_ops():
    client = redis.Redis.from_url(REDIS_OPS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_queue_depth_and_failed_jobs_come_from_redis(database_url, redis_ops):
    app = create_app({"APP_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": REDIS_OPS_URL})
    try:
        queue = Queue("default", connection=redis_ops)
        queue.enqueue("jobs.tasks.backup_daily")
        queue.enqueue("jobs.tasks.backup_daily")
        body = scrape(app.test_client())
        assert value(body, "kisht_queue_depth", '{queue="default"}') == 2
        assert value(body, "kisht_queue_depth", '{queue="dayend"}') == 0
        assert value(body, "kisht_queue_failed_jobs", '{queue="default"}') == 0
        assert value(body, "kisht_dependency_up", '{dependency="redis"}') == 1
    finally:
        app.extensions["kisht.engine"].dispose()


def test_an_unreachable_redis_is_reported_not_raised(database_url):
    app = create_app({"APP_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        body = scrape(app.test_client())
        assert value(body, "kisht_dependency_up", '{dependency="redis"}') == 0
    finally:
        app.extensions["kisht.engine"].dispose()
