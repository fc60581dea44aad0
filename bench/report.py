"""Render the results table (bench/results/*.json) into docs/performance.md, between markers."""

from __future__ import annotations

import json
import sys
from typing import Any

from common import RESULTS, ROOT, SMOKE

DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:table:begin -->", "<!-- bench:table:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}{'-smoke' if SMOKE else ''}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ms(p: dict[str, Any] | None, key: str) -> str:
    if not p or p.get(key) is None:
        return "—"
    v = p[key]
    return f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:.0f} ms"


def _per_service_table(title: str, steps: list[dict[str, Any]], total: str) -> list[str]:
    """A table of ``total`` and ``<total>_per_service`` for each step that has them."""
    have = [s for s in steps if s.get(total) and s.get(f"{total}_per_service")]
    if not have:
        return []
    services = list(have[0][f"{total}_per_service"])
    rows = [
        f"| {title} | rate | total | " + " | ".join(services) + " |",
        "| --- " * (3 + len(services)) + "|",
    ]
    for s in have:
        per = s[f"{total}_per_service"]
        cells = " | ".join(str(per.get(svc, "")) for svc in services)
        rows.append(f"| | {s['rate_per_s']:g}/s | {s[total]} | {cells} |")
    return [*rows, ""]


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def table() -> str:
    rows: list[str] = []
    machine: dict[str, Any] | None = None
    s2s = _load("scan_to_start")
    if s2s:
        machine = s2s["machine"]
        rows.append(
            "| Scan to start (distributed) | rate | started/scans | p50 | p95 | p99 | max "
            "| floor p50 / p99 | p50 ÷ floor | load |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in s2s["steps"]:
            p = s["scan_to_start_ms"]
            rows.append(
                f"| | {s['rate_per_s']:g}/s × {s['duration_s']:g} s "
                f"| {s['started']}/{int(s['rate_per_s'] * s['duration_s'])} "
                f"| {_ms(p, 'p50')} | {_ms(p, 'p95')} | {_ms(p, 'p99')} | {_ms(p, 'max')} "
                f"| {_ms(s['floor_ms'], 'p50')} / {_ms(s['floor_ms'], 'p99')} "
                f"| {str(s['p50_vs_floor']) + '×' if s.get('p50_vs_floor') else '—'} "
                f"| {s['load_before_step'][0]} |"
            )
        rows.append("")
    ses = _load("sessions")
    if ses:
        machine = machine or ses["machine"]
        rows.append(
            "| Whole sessions | rate | billed/scans | scan→start p99 | scan→billed p50 "
            "| scan→billed p99 | sustained | busiest CPU (s) |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in ses["steps"]:
            cpu = s.get("cpu_s_per_service", {})
            top = max(cpu, key=cpu.get) if cpu else "—"
            rows.append(
                f"| | {s['rate_per_s']:g}/s × {s['duration_s']:g} s "
                f"| {s['billed']}/{int(s['rate_per_s'] * s['duration_s'])} "
                f"| {_ms(s['scan_to_start_ms'], 'p99')} | {_ms(s['scan_to_billed_ms'], 'p50')} "
                f"| {_ms(s['scan_to_billed_ms'], 'p99')} | {'yes' if s['sustained'] else 'no'} "
                f"| {top} {cpu.get(top, '')} |"
            )
        rows.append(
            f"\nHighest sustained: **{ses['highest_sustained_per_s']:g} sessions/s** "
            f"(first failing step: {ses['breaking_rate_per_s']}/s).\n"
        )
        for title, total in (
            ("CPU-ms per billed session", "cpu_ms_per_billed_session"),
            ("Commits per billed session", "commits_per_billed_session"),
        ):
            rows += _per_service_table(title, ses["steps"], total)
    over = _load("overload")
    if over:
        rows.append(
            "| Overload (whole sessions) | rates | scans | accepted / billed once | lost "
            "| billed twice | busy refusals (p99 time) | p99 before / burst / after "
            "| first-try p99 in burst | back to normal | max consumer lag | CPU-ms/billed |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        phases = over["per_phase"]
        rates = " → ".join(f"{p['rate_per_s']:g}/s" for p in phases)
        seconds = " + ".join(f"{p['seconds']:g}" for p in over["phases"])
        p99s = " / ".join(_ms(p["scan_to_start_ms"], "p99") for p in phases)
        back = over["recovered_after_burst_s"]
        rows.append(
            f"| | {rates} ({seconds} s) | {over['scans']} "
            f"| {over['accepted']} / {over['accepted_billed']} "
            f"| {over['lost']} | {over['billed_twice']} "
            f"| {over['busy_refusals']} ({_ms(over['busy_refusal_ms'], 'p99')}) | {p99s} "
            f"| {_ms(phases[1].get('first_try_scan_to_start_ms'), 'p99')} "
            f"| {'not within the run' if back is None else f'{back:g} s'} "
            f"| {over['max_consumer_lag']} | {over['cpu_ms_per_billed_session']} |"
        )
        rows.append(f"\n![overload](../{over['plot']})\n" if over.get("plot") else "")
    storm = _load("storm")
    if storm:
        rows.append(
            "| Reconnect storm (two gateway processes) | stations / charging | window "
            "| messages answered | p50 | p99 | all back after | stations told to retry (most) "
            "| sessions billed once / twice | gateway CPU-ms/message |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        back = storm["all_back_after_s"]
        rows.append(
            f"| | {storm['stations']} / {storm['charging']} | {storm['reconnect_window_s']:g} s "
            f"| {storm['answered']}/{storm['messages']} "
            f"| {_ms(storm['latency_ms'], 'p50')} | {_ms(storm['latency_ms'], 'p99')} "
            f"| {'not all' if back is None else f'{back:g} s'} "
            f"| {storm['stations_told_to_retry']} ({storm['most_retries_one_station']}) "
            f"| {storm['sessions_billed_once']} / {storm['sessions_billed_twice']} "
            f"| {storm['cpu_ms_per_message']} |"
        )
        rows.append(
            "\n"
            + ", ".join(
                f"{name} p99 {_ms(p, 'p99')}" for name, p in storm["latency_ms_by_type"].items()
            )
            + f"; handshake p99 {_ms(storm['handshake_ms'], 'p99')}.\n"
        )
        profile = (storm.get("profile_station_gateway") or {}).get("summary") or {}
        if profile.get("ours"):
            rows.append(
                "Where one gateway process spent the storm (py-spy, share of its samples in and"
                " under each function, [flame graph](../bench/results/"
                "profile-station-gateway-storm.svg)): "
                + ", ".join(f"`{f}` {pct:g} %" for f, pct in profile["ours"][:8])
                + ".\n"
            )
        rows.append(f"![reconnect storm](../{storm['plot']})\n" if storm.get("plot") else "")
    msgs = _load("messages")
    if msgs:
        rows.append(
            "| OCPP messages (one gateway process) | message | asked | achieved | p50 | p99 "
            "| gateway CPU-ms/message | errors | load |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for m in msgs["steps"]:
            rows.append(
                f"| | {m['message']} | {m['rate_asked_per_s']:g}/s "
                f"| {m['rate_achieved_per_s']:g}/s "
                f"| {_ms(m['latency_ms'], 'p50')} | {_ms(m['latency_ms'], 'p99')} "
                f"| {m['cpu_ms_per_message']} | {sum(m['errors'].values())} | {m['load'][0]} |"
            )
        rows.append("")
    con = _load("connections")
    if con:
        rows.append(
            "| Gateway connections (one process) | target | connected | ramp | RSS "
            "| KB/connection | heartbeats/s | heartbeat p50 | p99 | errors |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in con["steps"]:
            rows.append(
                f"| | {s['target']} | {s['connected']} | {s['ramp_s']} s "
                f"| {s['gateway_rss_mb']} MB "
                f"| {s['kb_per_connection']} | {s['heartbeats_per_s']} "
                f"| {_ms(s['heartbeat_rtt_ms'], 'p50')} | {_ms(s['heartbeat_rtt_ms'], 'p99')} "
                f"| {s['heartbeat_errors']} |"
            )
        rows.append("")
    rep = _load("replay")
    if rep:
        rb, bare = rep["rebuild"], rep["bare_consume"]
        rows.append(
            "| Replay | events | bare aiokafka consume | rebuild overall "
            "| rebuild applying | bare ÷ rebuild |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- |")
        rows.append(
            f"| | {rep['publish']['published']:,} | {bare['events_per_s']:,} ev/s "
            f"| {rb.get('overall_events_per_s', '—'):,} ev/s "
            f"| {rb.get('applying_events_per_s', '—'):,} ev/s "
            f"| {rep['bare_over_rebuild']}× |\n"
        )
    led = _load("ledger")
    if led:
        rows.append("| Ledger (hold + post) | accounts | workers | transfers/s |")
        rows.append("| --- | --- | --- | --- |")
        for r in led["runs"]:
            rows.append(f"| | {r['accounts']} | {r['workers']} | {r['transfers_per_s']:,} |")
        rows.append("")
    emb = _load("embedded")
    if emb:
        p = emb.get("scan_to_start_ms") or {}
        rows.append(
            "| Embedded (`plugpay run`) | cold start → first page | → driver can log in "
            "| scan→start rate | started/scans | p50 | p95 | p99 |"
        )
        rows.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        rows.append(
            f"| | {emb.get('cold_start_to_first_page_s')} s "
            f"| {emb.get('cold_start_to_login_s')} s | {emb['rate_per_s']:g}/s "
            f"| {emb.get('started')}/{emb.get('scans')} | {_ms(p, 'p50')} "
            f"| {_ms(p, 'p95')} | {_ms(p, 'p99')} |\n"
        )
    if machine:
        pk = machine.get("packages", {})
        rows.append(
            f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB, "
            f"Linux {machine['kernel']}, Python {machine['python']}, "
            + ", ".join(f"{k} {v}" for k, v in pk.items())
            + f"; commit {machine.get('git_commit')}. Load average (1 min) is in each row or in "
            "the JSON (`load_before`, `load_after`)."
        )
    return "\n".join(rows)


def main() -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if SMOKE:
        print(table())
        return
    DOC.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    print(f"report: {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
