#!/usr/bin/env python3
"""deskwatch at the size of a large desk: ingest, serve, and measure what a user waits for.

Simulates N events (a history that ends now), ingests them into an embedded log, starts the
service and, while events keep arriving through the API at --rate per second, measures:

- `deskwatch ingest`: events per second and peak RSS;
- the serving process's RSS after start-up, in bytes per event;
- p50 / p99 of every read endpoint the web page calls;
- a help-desk SQL suite on the service, against DuckDB (PyPI `duckdb`) on the same tables
  exported as Parquet and loaded in memory, in the same run: time per query and the ratio.

No figure is asserted: the script prints them, and the README quotes its output.

    python3 scripts/scale.py --bin target/release/deskwatch --events 1000000
"""

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# The queries a help desk runs, in a dialect both engines read.
SQL_SUITE = [
    ("backlog by group",
     "select assignment_group, count(*) as n from tickets "
     "where status not in ('resolved', 'closed', 'cancelled') group by 1 order by 2 desc"),
    ("tickets per day per channel",
     "select date_trunc('day', created_at) as d, channel, count(*) as n from tickets "
     "group by 1, 2 order by 1, 2"),
    ("MTTR by category",
     "select category, avg(date_part('epoch', resolved_at) - date_part('epoch', created_at)) / 3600 as hours "
     "from tickets where resolved_at is not null group by 1 order by 2 desc"),
    ("top CIs by reopens",
     "select configuration_item, sum(reopen_count) as r from tickets "
     "group by 1 order by 2 desc limit 10"),
    ("escalations per week over history",
     "select date_trunc('week', occurred_at) as w, count(*) as n from ticket_events "
     "where event_type = 'ticket.escalated' group by 1 order by 1"),
    ("event-type counts",
     "select event_type, count(*) as n from ticket_events group by 1 order by 2 desc"),
    ("tickets x events join",
     "select t.priority, count(*) as n from ticket_events e join tickets t "
     "on e.ticket_id = t.ticket_id where e.event_type = 'ticket.commented' group by 1 order by 1"),
    ("events per ticket, top 10",
     "select ticket_id, count(*) as n from ticket_events group by 1 order by 2 desc, 1 limit 10"),
    ("median first response by priority",
     "select priority, median(date_part('epoch', first_response_at) - date_part('epoch', created_at)) as s from tickets "
     "where first_response_at is not null group by 1 order by 1"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, timeout=120):
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        payload = r.read()
        status = r.status
    return time.perf_counter() - started, status, payload


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def feeder(base, rate, stop, sent, errors):
    """POSTs new tickets' events at `rate` per second until `stop` is set."""
    n = 0
    interval = 1.0 / rate if rate > 0 else 1.0
    batch = max(1, rate // 10)
    while not stop.is_set() and rate > 0:
        started = time.perf_counter()
        lines = []
        for _ in range(batch):
            n += 1
            at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
            lines.append(json.dumps({
                "event_id": f"scale-{os.getpid()}-{n}", "ticket_id": f"SCALE-{n // 4}",
                "type": "ticket.created" if n % 4 == 0 else "ticket.commented",
                "occurred_at": at, "schema_version": 1,
                "actor": {"id": "scale", "role": "requester" if n % 4 == 0 else "agent"},
                "payload": {"channel": "portal", "priority": "P3", "category": "access",
                            "requester": "scale", "title": "cannot log in"}
                if n % 4 == 0 else {"public": True, "author_role": "agent"},
            }))
        try:
            request(base + "/v1/events", "\n".join(lines))
            sent[0] += batch
        except (urllib.error.URLError, OSError):
            errors[0] += 1
        time.sleep(max(0.0, batch * interval - (time.perf_counter() - started)))


def print_page_load(base, work):
    """The on-call view in headless Chromium: wall time to a DOM with the view drawn (its
    requests answered), minus Chromium's own start on a blank page; best of 3."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("\n5. web page: skipped (no chromium on PATH)")
        return

    def load(url):
        best, dom = math.inf, ""
        for i in range(3):
            t = time.perf_counter()
            out = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--virtual-time-budget=1000",
                 f"--user-data-dir={work}/chromium-{i}", "--dump-dom", url],
                capture_output=True, text=True, timeout=120)
            best, dom = min(best, time.perf_counter() - t), out.stdout
        return best, dom

    blank, _ = load("about:blank")
    page, dom = load(base + "/#/oncall")
    drawn = 'data-loaded="oncall"' in dom
    print(f"\n5. web page: on-call view drawn in headless Chromium in {page:.2f} s, Chromium's own "
          f"start included (a blank page: {blank:.2f} s)"
          + ("" if drawn else "  -- the view was NOT drawn"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/deskwatch")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--per-day", type=float, default=400.0)
    ap.add_argument("--rate", type=int, default=200, help="events/s posted while measuring")
    ap.add_argument("--runs", type=int, default=20, help="requests per endpoint")
    ap.add_argument("--sql-runs", type=int, default=3, help="runs per query (best is kept)")
    ap.add_argument("--work", help="scratch directory (default: a temporary one, removed)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = args.work or tempfile.mkdtemp(prefix="deskwatch-scale-")
    os.makedirs(work, exist_ok=True)
    data, stream = os.path.join(work, "data"), os.path.join(work, "events.ndjson")
    tickets = math.ceil(args.events / 8.45)
    days = tickets / args.per_day
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    server = None
    try:
        print(f"deskwatch scale: {args.events} events (~{tickets} tickets over {days:.0f} days)")
        subprocess.run([binary, "simulate", "--tickets", str(tickets), "--out", stream,
                        "--per-day", str(args.per_day),
                        "--start", start.isoformat(timespec="seconds")],
                       check=True, stdout=subprocess.DEVNULL)
        events = sum(1 for _ in open(stream, "rb"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        subprocess.run([binary, "ingest", "--data-dir", data, stream], check=True,
                       stdout=subprocess.DEVNULL)
        ingest_s = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"\n1. ingest {events} events: {ingest_s:.1f} s, {events / ingest_s:,.0f} events/s, "
              f"peak RSS {max(peak, before) / 1024:,.0f} MiB")

        parquet = os.path.join(work, "parquet")
        subprocess.run([binary, "export", "--data-dir", data, "--parquet", parquet], check=True,
                       stdout=subprocess.DEVNULL)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        server = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen",
                                   f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(work, "serve.log"), "w"))
        ready = False
        for _ in range(3000):
            try:
                if request(base + "/readyz", timeout=5)[1] == 200:
                    ready = True
                    break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None:
                break
            time.sleep(0.2)
        if not ready:
            sys.exit(f"the service did not become ready; see {work}/serve.log")
        startup_s = time.perf_counter() - t
        rss = rss_bytes(server.pid)
        print(f"\n2. serve: ready in {startup_s:.1f} s, RSS {rss / 2**20:,.0f} MiB "
              f"= {rss / events:.0f} bytes/event")

        stop, sent, errors = threading.Event(), [0], [0]
        feed = threading.Thread(target=feeder, args=(base, args.rate, stop, sent, errors))
        feed.start()
        time.sleep(1.0)
        tickets_json = json.loads(request(base + "/v1/query", json.dumps(
            {"sql": "select ticket_id from tickets order by created_at desc limit 1"}))[2])
        ticket = tickets_json["rows"][0]["ticket_id"] if tickets_json.get("rows") else "none"
        endpoints = [
            ("GET /v1/sla/at-risk?limit=50", "/v1/sla/at-risk?limit=50", None),
            ("GET /v1/sla/breaches?limit=50", "/v1/sla/breaches?limit=50", None),
            ("GET /v1/cost", "/v1/cost", None),
            ("GET /v1/staffing", "/v1/staffing", None),
            ("GET /v1/recurring?limit=25", "/v1/recurring?limit=25", None),
            ("GET /v1/recurring?candidates=problem", "/v1/recurring?candidates=problem&limit=20",
             None),
            ("GET /v1/top-calls?n=10", "/v1/top-calls?n=10", None),
            ("GET /v1/tickets/{id}", f"/v1/tickets/{ticket}", None),
            ("page: tickets per day (35 days)", "/v1/query", json.dumps({"sql":
                "select cast(date_trunc('day', created_at) as date) as day, count(*) as n, "
                "count(*) filter (where reopen_count > 0) as reopened from tickets where "
                "created_at > (select max(created_at) from tickets) - interval '35 days' "
                "group by 1 order by 1"})),
            ("page: open clocks by level", "/v1/query", json.dumps({"sql":
                "select level, count(*) as n from sla_clocks where stopped_at is null and "
                "level >= 50 group by level order by level"})),
            ("select count(*) from sla_clocks", "/v1/query",
             json.dumps({"sql": "select count(*) as n from sla_clocks"})),
        ]
        print(f"\n3. endpoints while {args.rate} events/s are posted ({args.runs} requests each)")
        print(f"   {'endpoint':<40} {'p50 s':>8} {'p99 s':>8}")
        for name, path, body in endpoints:
            times, failed = [], 0
            for _ in range(args.runs):
                try:
                    s, status, _ = request(base + path, body)
                    times.append(s)
                except (urllib.error.URLError, OSError):
                    failed += 1
            note = f"  ({failed} failed)" if failed else ""
            if times:
                print(f"   {name:<40} {percentile(times, 0.5):>8.3f} "
                      f"{percentile(times, 0.99):>8.3f}{note}")
            else:
                print(f"   {name:<40} {'-':>8} {'-':>8}{note}")

        import duckdb  # PyPI `duckdb`: the reference.
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for table in ("tickets", "ticket_events"):
            con.execute(f"create table {table} as select * from "
                        f"read_parquet('{os.path.join(parquet, table + '.parquet')}')")
        print(f"\n4. SQL suite: deskwatch service (HTTP, JSON answer) against DuckDB in memory "
              f"(best of {args.sql_runs})")
        print(f"   {'query':<36} {'deskwatch s':>12} {'DuckDB s':>10} {'ratio':>7}")
        ratios = []
        for name, q in SQL_SUITE:
            ours = min(request(base + "/v1/query", json.dumps({"sql": q}))[0]
                       for _ in range(args.sql_runs))
            ref = math.inf
            for _ in range(args.sql_runs):
                t = time.perf_counter()
                con.execute(q).fetchall()
                ref = min(ref, time.perf_counter() - t)
            ratios.append(ours / ref)
            print(f"   {name:<36} {ours:>12.3f} {ref:>10.3f} {ours / ref:>6.2f}x")
        geomean = math.exp(statistics.fmean(math.log(r) for r in ratios))
        print(f"   geomean deskwatch / DuckDB: {geomean:.2f}x")
        floor = min(request(base + "/v1/query", json.dumps({"sql": "select 1"}))[0]
                    for _ in range(10))
        print(f"   (a request's floor on the service, `select 1` over HTTP: {floor * 1000:.1f} ms)")
        print_page_load(base, work)
        stop.set()
        feed.join()
        print(f"\n   events posted while measuring: {sent[0]} ({errors[0]} failed requests)")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
