"""``plugpay-analytics report``: an HTML report with PNG charts from an export, queried with DuckDB.

What an operator asks of the log (the monitoring seed: charging patterns, peak hours,
utilisation, billing): sessions and energy per day, per station and per hour of the week;
utilisation (time charging vs occupied but not charging vs free); the funnel from code issued to
billed with the denial reasons; revenue to the cent; how long sessions last.

Definitions (also in docs/analytics.md):

- every event is counted once by ``event_id`` and every session step once per ``session_id``
  (delivery is at-least-once, so the log may hold a republished event twice);
- a *session* is a charging session that completed (``SessionCompleted``); its day and hour are
  those of ``started_at`` in the report's time zone (default: the stations' own, from
  ``SessionPriced.time_zone``);
- *energy* is ``SessionCompleted.energy_wh``; *revenue* is ``SessionBilled.charged`` (captured),
  in integer minor units per currency, shown with the currency's decimals; *cost* is
  ``SessionCostCalculated.total``;
- *utilisation* comes from ``ConnectorStatusChanged``: Charging is charging; Preparing,
  SuspendedEV/EVSE, Finishing, Occupied are occupied-idle; Available is free; Reserved,
  Unavailable, Faulted are unavailable. Each status lasts until the connector's next one, the
  last until the end of the period. Without status events it falls back to the session events.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, select_autoescape
from plugpay_tariffs.currencies import MINOR_UNIT_EXPONENT

from plugpay_analytics.dataset import open_dataset

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
STATUS_CATEGORY = {
    "Charging": "charging",
    "Preparing": "occupied_idle",
    "SuspendedEV": "occupied_idle",
    "SuspendedEVSE": "occupied_idle",
    "Finishing": "occupied_idle",
    "Occupied": "occupied_idle",
    "Available": "free",
    "Reserved": "unavailable",
    "Unavailable": "unavailable",
    "Faulted": "unavailable",
}
CATEGORY_COLOURS = {
    "charging": "#2e7d32",
    "occupied_idle": "#f9a825",
    "free": "#90caf9",
    "unavailable": "#9e9e9e",
}

SESSION_STEPS = {
    "issued": "session_code_issued",
    "scanned": "session_code_scanned",
    "priced": "session_priced",
    "denied": "session_denied",
    "authorized": "session_authorized",
    "abandoned": "session_abandoned",
    "started": "charging_started",
    "completed": "session_completed",
    "cost": "session_cost_calculated",
    "billed": "session_billed",
    "expired": "session_code_expired",
}


def format_minor(amount_minor: int, currency: str) -> str:
    """``123456, EUR`` → ``1,234.56 EUR`` (exact: integer arithmetic only)."""
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exponent)
    text = f"{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "")
    return f"{sign}{text} {currency}"


def prepare(db: duckdb.DuckDBPyConnection) -> None:
    """Deduplicated per-session step tables and the ``facts`` table (one row per session)."""
    for step, table in SESSION_STEPS.items():
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE s_{step} AS SELECT * FROM {table}"  # noqa: S608  (constant names)
            " QUALIFY row_number() OVER (PARTITION BY session_id"
            " ORDER BY occurred_at, log_topic, log_partition, log_offset) = 1"
        )
    db.execute(
        """
        CREATE OR REPLACE TEMP TABLE facts AS
        WITH ids AS (
            SELECT session_id FROM s_issued UNION SELECT session_id FROM s_scanned
            UNION SELECT session_id FROM s_completed UNION SELECT session_id FROM s_billed
            UNION SELECT session_id FROM s_denied UNION SELECT session_id FROM s_authorized
        )
        SELECT
            ids.session_id,
            coalesce(i.station_id, s.station_id, c.station_id, d.station_id, a.station_id,
                     k.station_id) AS station_id,
            coalesce(i.connector_id, s.connector_id, c.connector_id, d.connector_id,
                     a.connector_id) AS connector_id,
            i.session_started_at AS issued_at,
            s.scanned_at, s.code_kind,
            p.priced_at, p.time_zone, p.tariff_id, p.free_of_charge,
            d.reason AS denial_reason, d.denied_by,
            a.authorized_at, a.funding,
            ab.reason AS abandon_reason,
            st.started_at AS charging_started_at,
            c.energy_wh, c.started_at, c.charging_ended_at, c.ended_at, c.stop_reason,
            k.total_amount_minor AS cost_minor, k.total_currency AS cost_currency,
            b.charged_amount_minor AS revenue_minor, b.charged_currency AS revenue_currency,
            e.expired_at,
            (i.session_id IS NOT NULL) AS was_issued,
            (s.session_id IS NOT NULL) AS was_scanned,
            (p.session_id IS NOT NULL) AS was_priced,
            (a.session_id IS NOT NULL) AS was_authorized,
            (st.session_id IS NOT NULL OR c.session_id IS NOT NULL) AS was_started,
            (c.session_id IS NOT NULL) AS was_completed,
            (b.session_id IS NOT NULL) AS was_billed
        FROM ids
        LEFT JOIN s_issued i USING (session_id)
        LEFT JOIN s_scanned s USING (session_id)
        LEFT JOIN s_priced p USING (session_id)
        LEFT JOIN s_denied d USING (session_id)
        LEFT JOIN s_authorized a USING (session_id)
        LEFT JOIN s_abandoned ab USING (session_id)
        LEFT JOIN s_started st USING (session_id)
        LEFT JOIN s_completed c USING (session_id)
        LEFT JOIN s_cost k USING (session_id)
        LEFT JOIN s_billed b USING (session_id)
        LEFT JOIN s_expired e USING (session_id)
        """
    )
    db.execute(
        "CREATE OR REPLACE TEMP TABLE statuses AS SELECT * FROM connector_status_changed"
        " WHERE connector_id > 0"
        " QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY log_offset) = 1"
    )


def default_time_zone(db: duckdb.DuckDBPyConnection) -> str:
    row = db.execute(
        "SELECT time_zone FROM facts WHERE time_zone IS NOT NULL"
        " GROUP BY time_zone ORDER BY count(*) DESC, time_zone LIMIT 1"
    ).fetchone()
    return str(row[0]) if row else "UTC"


def _rows(
    db: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class ReportResult:
    html: Path
    charts: list[Path]
    summary: dict[str, Any]


def compute(db: duckdb.DuckDBPyConnection, tz: str | None = None) -> dict[str, Any]:
    """Every number of the report (also written as summary.json)."""
    prepare(db)
    tz = tz or default_time_zone(db)

    def q(sql: str, *p: Any) -> list[dict[str, Any]]:
        return _rows(db, sql, list(p))

    totals = q(
        """
        SELECT
            count(*) FILTER (WHERE was_completed) AS sessions,
            coalesce(sum(energy_wh) FILTER (WHERE was_completed), 0)::BIGINT AS energy_wh,
            count(*) FILTER (WHERE was_issued) AS codes_issued,
            count(*) FILTER (WHERE was_scanned) AS scanned,
            count(*) FILTER (WHERE was_priced) AS priced,
            count(*) FILTER (WHERE was_authorized) AS authorized,
            count(*) FILTER (WHERE was_started) AS started,
            count(*) FILTER (WHERE was_billed) AS billed,
            count(*) FILTER (WHERE expired_at IS NOT NULL) AS expired,
            count(*) FILTER (WHERE denial_reason IS NOT NULL) AS denied,
            count(*) FILTER (WHERE abandon_reason IS NOT NULL) AS abandoned,
            count(*) FILTER (WHERE free_of_charge AND was_completed) AS free_sessions,
            coalesce(sum(epoch(charging_ended_at - started_at)), 0)::BIGINT AS charging_s,
            count(DISTINCT station_id) FILTER (WHERE was_completed) AS stations
        FROM facts
        """
    )[0]
    revenue = q(
        "SELECT revenue_currency AS currency, sum(revenue_minor)::BIGINT AS revenue_minor,"
        " count(*) AS billed FROM facts WHERE was_billed GROUP BY 1 ORDER BY 1"
    )
    cost = q(
        "SELECT cost_currency AS currency, sum(cost_minor)::BIGINT AS cost_minor"
        " FROM facts WHERE cost_currency IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    for row in revenue:
        row["formatted"] = format_minor(row["revenue_minor"], row["currency"])
    per_day = q(
        """
        WITH d AS (
            SELECT CAST(timezone(?, started_at) AS DATE) AS day, energy_wh, revenue_minor
            FROM facts WHERE was_completed
        )
        SELECT day, count(*) AS sessions, sum(energy_wh)::BIGINT AS energy_wh,
               coalesce(sum(revenue_minor), 0)::BIGINT AS revenue_minor
        FROM d GROUP BY day ORDER BY day
        """,
        tz,
    )
    per_station = q(
        """
        SELECT station_id, count(*) AS sessions, sum(energy_wh)::BIGINT AS energy_wh,
               coalesce(sum(revenue_minor), 0)::BIGINT AS revenue_minor,
               round(avg(epoch(ended_at - started_at)) / 60, 1) AS avg_minutes
        FROM facts WHERE was_completed GROUP BY station_id ORDER BY station_id
        """
    )
    heatmap = q(
        """
        SELECT isodow(timezone(?, started_at)) AS dow, hour(timezone(?, started_at)) AS hour,
               count(*) AS sessions, sum(energy_wh)::BIGINT AS energy_wh
        FROM facts WHERE was_completed GROUP BY ALL ORDER BY ALL
        """,
        tz,
        tz,
    )
    funnel = [
        {"step": "code issued", "sessions": totals["codes_issued"]},
        {"step": "scanned", "sessions": totals["scanned"]},
        {"step": "authorised", "sessions": totals["authorized"]},
        {"step": "started", "sessions": totals["started"]},
        {"step": "billed", "sessions": totals["billed"]},
    ]
    losses = q(
        """
        SELECT 'denied' AS outcome, denial_reason AS reason, denied_by AS step, count(*) AS sessions
        FROM facts WHERE denial_reason IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'abandoned', abandon_reason, 'start', count(*) FROM facts
        WHERE abandon_reason IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'expired', 'code_expired', 'scan', count(*) FROM facts
        WHERE expired_at IS NOT NULL GROUP BY ALL
        ORDER BY sessions DESC, reason
        """
    )
    durations = q(
        """
        SELECT epoch(ended_at - started_at) / 60.0 AS minutes,
               epoch(charging_ended_at - started_at) / 60.0 AS charging_minutes
        FROM facts WHERE was_completed
        """
    )
    duration_stats = q(
        """
        SELECT round(quantile_cont(epoch(ended_at - started_at) / 60, 0.5), 1) AS p50_minutes,
               round(quantile_cont(epoch(ended_at - started_at) / 60, 0.9), 1) AS p90_minutes,
               round(avg(epoch(ended_at - started_at)) / 60, 1) AS mean_minutes,
               round(quantile_cont(epoch(charging_ended_at - started_at) / 60, 0.5), 1)
                   AS p50_charging_minutes
        FROM facts WHERE was_completed
        """
    )[0]
    utilisation, per_station_util, util_source = _utilisation(db)
    period = q(
        """
        WITH b AS (
            SELECT least((SELECT min(changed_at) FROM statuses), (SELECT min(issued_at) FROM facts),
                         (SELECT min(started_at) FROM facts)) AS t0,
                   greatest((SELECT max(changed_at) FROM statuses),
                            (SELECT max(ended_at) FROM facts),
                            (SELECT max(occurred_at) FROM session_billed)) AS t1
        )
        SELECT strftime(timezone(?, t0), '%Y-%m-%d %H:%M') AS start,
               strftime(timezone(?, t1), '%Y-%m-%d %H:%M') AS end
        FROM b
        """,
        tz,
        tz,
    )[0]
    undecodable = db.execute("SELECT count(*) FROM _undecodable").fetchone()
    return {
        "time_zone": tz,
        "period": period,
        "totals": totals,
        "revenue": revenue,
        "cost": cost,
        "per_day": [{**r, "day": r["day"].isoformat()} for r in per_day],
        "per_station": per_station,
        "heatmap": heatmap,
        "funnel": funnel,
        "losses": losses,
        "durations": durations,
        "duration_stats": duration_stats,
        "utilisation": utilisation,
        "utilisation_per_station": per_station_util,
        "utilisation_source": util_source,
        "undecodable": int(undecodable[0]) if undecodable else 0,
    }


def _utilisation(
    db: duckdb.DuckDBPyConnection,
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    mapping = ", ".join(f"('{k}', '{v}')" for k, v in STATUS_CATEGORY.items())
    count = db.execute("SELECT count(*) FROM statuses").fetchone()
    if count and count[0]:
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE status_intervals AS
            WITH ends AS (
                SELECT greatest(max(changed_at), (SELECT max(ended_at) FROM facts)) AS period_end
                FROM statuses
            ),
            ordered AS (
                SELECT station_id, connector_id, status, changed_at AS t0,
                       lead(changed_at) OVER (PARTITION BY station_id, connector_id
                                              ORDER BY changed_at, log_offset) AS t1
                FROM statuses
            )
            SELECT o.station_id, o.connector_id, m.category,
                   epoch(coalesce(o.t1, ends.period_end) - o.t0) AS seconds
            FROM ordered o CROSS JOIN ends
            JOIN (VALUES {mapping}) m(status, category) ON m.status = o.status
            """  # noqa: S608  (a constant mapping)
        )
        source = "ConnectorStatusChanged"
    else:
        # No status events exported: charging and occupied time from the session events.
        db.execute(
            """
            CREATE OR REPLACE TEMP TABLE status_intervals AS
            WITH bounds AS (
                SELECT min(coalesce(issued_at, started_at)) AS t0, max(ended_at) AS t1 FROM facts
            ),
            per_connector AS (
                SELECT station_id, connector_id,
                       sum(epoch(charging_ended_at - started_at)) AS charging,
                       sum(epoch(coalesce(ended_at, started_at) - coalesce(issued_at, started_at)))
                           - sum(epoch(charging_ended_at - started_at)) AS occupied
                FROM facts WHERE was_completed GROUP BY ALL
            )
            SELECT station_id, connector_id, 'charging' AS category, charging AS seconds
            FROM per_connector
            UNION ALL SELECT station_id, connector_id, 'occupied_idle', occupied FROM per_connector
            UNION ALL SELECT station_id, connector_id, 'free',
                   epoch(bounds.t1 - bounds.t0) - charging - occupied
            FROM per_connector CROSS JOIN bounds
            """
        )
        source = "session events (no ConnectorStatusChanged in the export)"
    overall = {
        r["category"]: r["seconds"]
        for r in _rows(
            db,
            "SELECT category, sum(seconds)::BIGINT AS seconds FROM status_intervals GROUP BY 1",
        )
    }
    total = sum(overall.values()) or 1
    shares = {
        c: {"seconds": int(overall.get(c, 0)), "share": overall.get(c, 0) / total}
        for c in CATEGORY_COLOURS
    }
    per_station = _rows(
        db,
        """
        SELECT station_id,
               sum(seconds) FILTER (WHERE category = 'charging') / sum(seconds) AS charging,
               sum(seconds) FILTER (WHERE category = 'occupied_idle') / sum(seconds)
                   AS occupied_idle,
               sum(seconds) FILTER (WHERE category = 'free') / sum(seconds) AS free,
               sum(seconds) FILTER (WHERE category = 'unavailable') / sum(seconds) AS unavailable
        FROM status_intervals GROUP BY station_id ORDER BY station_id
        """,
    )
    for row in per_station:
        for c in CATEGORY_COLOURS:
            row[c] = float(row[c] or 0.0)
    return shares, per_station, source


# --- charts ---------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def charts(data: dict[str, Any], out: Path) -> list[Path]:
    """The PNG charts of the report, in ``out``."""
    files = []
    # Dates go through matplotlib's unit converters; its stubs accept only numbers.
    days: list[Any] = [dt.date.fromisoformat(r["day"]) for r in data["per_day"]]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.bar(days, [r["sessions"] for r in data["per_day"]], color="#1565c0", label="sessions")
    ax.set_ylabel("sessions")
    ax2 = ax.twinx()
    ax2.plot(
        days,
        [r["energy_wh"] / 1000 for r in data["per_day"]],
        color="#e65100",
        marker="o",
        label="energy (kWh)",
    )
    ax2.set_ylabel("energy (kWh)")
    # Head-room at the top for the legend; both axes from 0 so the line does not exaggerate.
    ax.set_ylim(0, max([r["sessions"] for r in data["per_day"]], default=1) * 1.3)
    ax2.set_ylim(0, max([r["energy_wh"] / 1000 for r in data["per_day"]], default=1) * 1.3)
    ax.set_title(f"Sessions and energy per day ({data['time_zone']})")
    fig.autofmt_xdate()
    fig.legend(loc="upper left", bbox_to_anchor=(0.07, 0.9), ncols=2)
    files.append(_save(fig, out / "sessions_energy_per_day.png"))

    stations = data["per_station"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, max(3, 0.35 * len(stations) + 1)), sharey=True)
    names = [r["station_id"] for r in stations]
    a1.barh(names, [r["sessions"] for r in stations], color="#1565c0")
    a1.set_xlabel("sessions")
    a1.invert_yaxis()
    a2.barh(names, [r["energy_wh"] / 1000 for r in stations], color="#e65100")
    a2.set_xlabel("energy (kWh)")
    fig.suptitle("Per station")
    files.append(_save(fig, out / "per_station.png"))

    grid = [[0] * 24 for _ in range(7)]
    for r in data["heatmap"]:
        grid[int(r["dow"]) - 1][int(r["hour"])] = r["sessions"]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    image = ax.imshow(grid, aspect="auto", cmap="YlOrRd")
    ax.set_yticks(range(7), DAYS)
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
    ax.set_xlabel(f"hour of day ({data['time_zone']})")
    ax.set_title("Sessions started per hour of the week")
    for d in range(7):
        for h in range(24):
            if grid[d][h]:
                ax.text(h, d, str(grid[d][h]), ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="sessions")
    files.append(_save(fig, out / "hour_of_week_heatmap.png"))

    util = data["utilisation_per_station"]
    fig, ax = plt.subplots(figsize=(11, max(3, 0.35 * len(util) + 1.5)))
    labels = ["all stations"] + [r["station_id"] for r in util]
    left = [0.0] * len(labels)
    for category, colour in CATEGORY_COLOURS.items():
        values = [data["utilisation"][category]["share"]] + [r[category] for r in util]
        ax.barh(labels, values, left=left, color=colour, label=category.replace("_", "-"))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title("Utilisation: share of connector time")
    ax.legend(loc="lower right", ncols=4, fontsize=8)
    files.append(_save(fig, out / "utilisation.png"))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = data["funnel"]
    a1.barh([s["step"] for s in steps], [s["sessions"] for s in steps], color="#00897b")
    a1.invert_yaxis()
    first = steps[0]["sessions"] or 1
    for i, s in enumerate(steps):
        a1.text(s["sessions"], i, f" {s['sessions']} ({s['sessions'] / first:.0%})", va="center")
    a1.set_title("Funnel")
    a1.set_xlim(0, first * 1.3)
    losses = data["losses"]
    a2.barh(
        [f"{r['reason']} ({r['outcome']})" for r in losses],
        [r["sessions"] for r in losses],
        color="#c62828",
    )
    a2.invert_yaxis()
    a2.set_title("Lost sessions by reason")
    files.append(_save(fig, out / "funnel.png"))

    fig, ax = plt.subplots(figsize=(11, 4))
    exponent = MINOR_UNIT_EXPONENT.get(data["revenue"][0]["currency"], 2) if data["revenue"] else 2
    currency = data["revenue"][0]["currency"] if data["revenue"] else ""
    ax.bar(days, [r["revenue_minor"] / 10**exponent for r in data["per_day"]], color="#6a1b9a")
    ax.set_ylabel(f"revenue ({currency})")
    total = ", ".join(r["formatted"] for r in data["revenue"]) or "none"
    ax.set_title(f"Revenue per day (captured); total {total}")
    fig.autofmt_xdate()
    files.append(_save(fig, out / "revenue_per_day.png"))

    fig, ax = plt.subplots(figsize=(11, 4))
    minutes = [r["minutes"] for r in data["durations"]]
    charging = [r["charging_minutes"] for r in data["durations"]]
    top = max(minutes, default=60)
    bins = [i * 10 for i in range(int(min(top, 720) // 10) + 2)]
    ax.hist(minutes, bins=bins, alpha=0.6, label="plugged in (start to unplug)", color="#1565c0")
    ax.hist(charging, bins=bins, alpha=0.6, label="charging", color="#2e7d32")
    ax.set_xlabel("minutes")
    ax.set_ylabel("sessions")
    stats = data["duration_stats"]
    ax.set_title(
        f"Session duration: median {stats['p50_minutes']} min, p90 {stats['p90_minutes']} min"
    )
    ax.legend()
    files.append(_save(fig, out / "session_duration.png"))
    return files


def build_report(input_path: Path, out: Path, *, time_zone: str | None = None) -> ReportResult:
    """Query the export at ``input_path`` and write ``index.html``, the PNGs and summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    db = open_dataset(input_path)
    try:
        data = compute(db, time_zone)
    finally:
        db.close()
    files = charts(data, out)
    summary = {k: v for k, v in data.items() if k not in {"durations"}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    env = Environment(
        loader=PackageLoader("plugpay_analytics", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["money"] = lambda minor, currency: format_minor(int(minor), currency)
    env.filters["pct"] = lambda v: f"{v:.1%}"
    env.filters["kwh"] = lambda wh: f"{wh / 1000:,.1f}"
    html = env.get_template("report.html.j2").render(
        data=data,
        charts=[f.name for f in files],
        source=str(input_path),
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        days=DAYS,
    )
    (out / "index.html").write_text(html)
    return ReportResult(out / "index.html", files, summary)
