"""Admin system page: CPU, memory, disk, database connections, queues, last day-end, backups."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from webapp import db
from webapp.permissions import Perm, requires
from webapp.services import backup, system

bp = Blueprint("system", __name__, url_prefix="/admin")


@bp.get("/system")
@requires(Perm.ADMINISTER)
def status():
    config = current_app.config
    session = db.session()
    runs = system.last_runs(session)
    backups = backup.status(config)
    return render_template("admin/system.html", host=system.host(), disks=system.disks(config),
                           database=system.database(db.engine()), queues=system.queues(config["REDIS_URL"]),
                           dayend=runs, failed=system.failed_runs_since(session, 24), backups=backups,
                           recent_backups=backups["backups"][:10], backup_dir=config["BACKUP_DIR"])
