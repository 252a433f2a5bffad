"""The operator's status page (`GET /admin`): one self-contained HTML document.

Input: the gateway's status (`/admin/status`'s body), its per-project outcome totals and the
last hour of samples (`appliance.history`). Output: HTML with inline CSS and inline SVG charts;
no script, font, image or stylesheet from anywhere (an offline site renders it as well as any),
enforced by the answer's Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
import itertools
from html import escape
from typing import Any

from appliance.history import Sample
from appliance.humanize import byte_size, duration

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
_WIDTH, _HEIGHT = 480, 120

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:12px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
.state{padding:2px 8px;border-radius:4px;font-weight:600}
.healthy{background:#2e7d32}.degraded{background:#ef6c00}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px;padding:16px 20px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg{background:#fbfcfd;border:1px solid #eef0f3}
.reasons{color:#b71c1c;margin:0;padding-left:20px}
small{color:#5b6573}
"""


def render(status: dict[str, Any], outcomes: dict[str, dict[str, float]], samples: list[Sample],
           now_seconds: float) -> str:
    """The page for `status`; `outcomes` is project → outcome → events since start."""
    health = status.get("health", {})
    state = health.get("state", "healthy")
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in health.get("reasons", []))
    rate = _per_minute(samples, now_seconds, lambda sample: sample.accepted, window_seconds=300)
    upstream = status.get("upstream_health") or {}
    last = status.get("last_sync") or {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(str(status.get("gateway_id", "")))} · edge gateway</title><style>{_STYLE}</style></head>
<body>
<header><h1 id="gateway-id">{escape(str(status.get("gateway_id", "")))}</h1>
<span>version <b id="version">{escape(str(status.get("version", "")))}</b></span>
<span>up <b id="uptime">{duration(status.get("uptime_seconds"), " ")}</b></span>
<span class="state {escape(state)}" id="state">{escape(state)}</span>
<span>ingest <b id="ingest-rate">{rate:.0f}</b> events/min (last 5 min)</span></header>
{f'<ul class="reasons" id="reasons">{reasons}</ul>' if reasons else ''}
<main>
<section id="ingest"><h2>Events accepted per minute, last hour</h2>
{_chart(samples, now_seconds, lambda sample: sample.accepted, per_minute=True, label="accepted-chart")}
<h2>Rejected per minute (validation, internal)</h2>
{_chart(samples, now_seconds, lambda sample: sample.rejected, per_minute=True, label="rejected-chart")}</section>
<section id="outcomes"><h2>Outcomes since start</h2>{_outcomes(outcomes)}</section>
<section id="upstream"><h2>Upstream {escape(str(status.get("upstream") or "none"))}</h2>
<p>Last successful pass: <b id="last-success">{_ago(upstream.get("silent_seconds"))}</b>;
last pass: <b id="last-sync">{_last_sync(last)}</b></p>
{_backlog(status.get("backlog", {}))}
<h2>Backlog rows, last hour</h2>
{_chart(samples, now_seconds, lambda sample: sample.backlog_rows, per_minute=False, label="backlog-chart")}
<p>Quarantined rows: <b id="quarantine">{int(status.get("quarantined_rows", 0))}</b></p></section>
<section id="storage"><h2>Storage</h2><table>
<tr><th>Readiness</th><td id="ready">{escape(str(status.get("ready", "")))}</td></tr>
<tr><th>Store size</th><td id="storage-bytes">{byte_size(status.get("storage_bytes", 0))}</td></tr>
<tr><th>Free disk</th><td id="disk-free">{byte_size(status.get("disk_free_bytes", 0))}</td></tr>
<tr><th>Open sessions</th><td id="open-sessions">{int(status.get("open_sessions", 0))}</td></tr>
</table></section>
</main>
<footer style="padding:0 20px 16px"><small>Rendered {_clock(now_seconds)} UTC from this gateway's own numbers;
refreshes every 30 s. Charts start again when the gateway restarts.</small></footer>
</body></html>"""


def _per_minute(samples: list[Sample], now_seconds: float, value: Any, window_seconds: float) -> float:
    recent = [sample for sample in samples if sample.at_seconds >= now_seconds - window_seconds]
    if len(recent) < 2 or recent[-1].at_seconds <= recent[0].at_seconds:
        return 0.0
    return float(value(recent[-1]) - value(recent[0])) * 60 / (recent[-1].at_seconds - recent[0].at_seconds)


def _chart(samples: list[Sample], now_seconds: float, value: Any, *, per_minute: bool, label: str) -> str:
    """A line over the last hour; counters are drawn as steps of their per-minute increase."""
    points: list[tuple[float, float]] = []
    if per_minute:
        for before, after in itertools.pairwise(samples):
            seconds = after.at_seconds - before.at_seconds
            if seconds > 0:  # a step per interval: its rate from one sample to the next
                rate = max(0.0, value(after) - value(before)) * 60 / seconds
                points += [(before.at_seconds, rate), (after.at_seconds, rate)]
    else:
        points = [(sample.at_seconds, float(value(sample))) for sample in samples]
    start = now_seconds - 3600
    points = [(at, y) for at, y in points if at >= start]
    top = max((y for _, y in points), default=0.0) or 1.0
    coordinates = " ".join(f"{(at - start) / 3600 * _WIDTH:.1f},{_HEIGHT - 4 - y / top * (_HEIGHT - 12):.1f}"
                           for at, y in points)
    line = (f'<polyline points="{coordinates}" fill="none" stroke="#1565c0" stroke-width="2"/>'
            if len(points) >= 2 else
            f'<text x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle" fill="#8a94a3">collecting…</text>')
    return (f'<svg id="{label}" role="img" width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}">'
            f'<title>{label}: peak {top:.0f}</title>'
            f'<text x="4" y="12" font-size="10" fill="#5b6573">{top:.0f}</text>'
            f'<text x="4" y="{_HEIGHT - 2}" font-size="10" fill="#5b6573">-60 min</text>'
            f'<text x="{_WIDTH - 4}" y="{_HEIGHT - 2}" font-size="10" fill="#5b6573" text-anchor="end">now</text>'
            f'{line}</svg>')


def _outcomes(outcomes: dict[str, dict[str, float]]) -> str:
    if not outcomes:
        return "<p>No events since start.</p>"
    names = ("accepted", "duplicate", "validation", "internal", "bot")
    head = "".join(f'<th class="n">{name}</th>' for name in names)
    rows = "".join(
        f'<tr data-project="{escape(project)}"><td>{escape(project)}</td>'
        + "".join(f'<td class="n" data-outcome="{name}">{int(counts.get(name, 0))}</td>' for name in names) + "</tr>"
        for project, counts in sorted(outcomes.items()))
    return f'<table id="outcome-table"><tr><th>project</th>{head}</tr>{rows}</table>'


def _backlog(backlog: dict[str, Any]) -> str:
    rows = "".join(f'<tr data-table="{escape(table)}"><td>{escape(table)}</td><td class="n">{int(entry["rows"])}</td>'
                   f'<td>{escape(str(entry.get("oldest_pending_batch") or "-"))}</td></tr>'
                   for table, entry in backlog.items())
    return (f'<table id="backlog-table"><tr><th>table</th><th class="n">rows waiting</th>'
            f'<th>oldest pending batch</th></tr>{rows}</table>')


def _last_sync(last: dict[str, Any]) -> str:
    if not last:
        return "none yet"
    sent = sum((last.get("sent_rows") or {}).values())
    when = _clock(last["finished_at_ms"] / 1000) if last.get("finished_at_ms") else "?"
    if last.get("error"):
        return f"failed at {when}: {escape(str(last['error']).splitlines()[0][:160])}"
    return f"ok at {when}, {sent} rows in {float(last.get('seconds', 0)):.1f}s"


def _clock(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(seconds: float | None) -> str:
    return "no upstream" if seconds is None else f"{duration(seconds, ' ')} ago"
