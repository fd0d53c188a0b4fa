"""Load benchmark: N concurrent browser sessions moving the alpha slider and switching methods, on loopback.

Starts the real app (``python -m dashboard.serve``, bound to 127.0.0.1, on the embedded demo store) and opens
N sessions in headless chromium. For ``--duration`` seconds each session repeatedly moves the sidebar's alpha
slider (1-3 arrow-key steps sent back to back, so the widget often changes while the rerun of the previous step
is still running) or switches the fine-tuning method (25% of moves), on the Tradeoff page, pausing ``--think``
seconds between moves. After every move it waits until the server has finished the run of the session's last
rerun request (seen on the session's websocket: BackMsg ``rerun_script`` out, ForwardMsg ``script_finished``
and session status in) and the page shows that session's (method, alpha) in the title and the first card's
label; then the four metric cards must equal the numbers computed from the store's summary table for that pair
(ID and OOD-avg accuracy, and both minus the fine-tuned endpoint, to the cards' 0.1 rounding). A wrong number
or another session's numbers leaking in is counted as a wrong value, not as slowness.

Not used as a signal: Streamlit's "Running..." status widget. The frontend mounts it only after a run has lasted
500 ms and keeps it 200 ms after, so a waiter that needs it to appear hangs until its timeout on every short run
(a session alone on the server has mostly short runs), and one that only needs it absent reads a page whose run
has not started. The bench counts, per move, whether it ever appeared (``running_shown``).

Recorded: moves, wrong values, timeouts (a move not settled within ``--move-timeout``, with where it stood:
input not yet delivered, run queued or running, or page not yet showing the finished run; then up to
``--grace`` more seconds to see whether it lands late and right), errors (``stException`` elements, page errors,
console errors, websocket closes and reconnects), latency percentiles per move (first key/click to settled page)
and per run (last rerun request to ``script_finished``), time to deliver the input, and every second the
RSS and CPU of the server (process and children, from /proc) and of the browsers, the CPU used by other
processes on the machine and the load average. Results go to ``--out`` as JSON and a short table is printed.

    python bench/load.py                                   # 20 sessions, 120 s -> bench/results/load_cpu.json
    python bench/load.py --sessions 5 --duration 30 --out bench/out/load.json

One chromium with one browser context per session, driven from one asyncio loop: contexts share no cookies or
storage and each opens its own websocket, hence its own Streamlit session, which is what is under test; N
separate browsers would add N browser processes on a 2-core machine and measure chromium more than the app.
The sync Playwright API cannot drive one browser from several threads, so the async API is used. Sessions open
the page ``--load-concurrency`` at a time (20 first loads at once starve each other past any timeout on 2
cores); the moves start when all are open. The browsers run on the same cores as the server: the JSON says how
much CPU each side used per move, and ``--client-nice`` can lower the browsers' priority.

Bounded: moves stop after ``--duration``, a move waits at most ``--move-timeout`` (+ ``--grace`` once it has
timed out), and a watchdog thread kills the server and the browsers and writes what it has at ``--deadline``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robust_core.store import open_store  # noqa: E402

try:
    from playwright.async_api import TimeoutError as PlaywrightTimeout
except ImportError:  # reported by main() when it launches the browser
    PlaywrightTimeout = TimeoutError

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-proxy-server",  # loopback only, whatever the environment's proxy variables say
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # every session is a foreground user: no timer throttling of pages chromium considers hidden
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
SLIDER = '[data-testid="stSidebar"] input[type="range"]'
METHOD_BOX = '[data-testid="stSidebar"] input[aria-label="Fine-tuning method"]'
SNAPSHOT_JS = """() => {
  const q = s => document.querySelector(s);
  const text = e => (e ? e.innerText.trim() : null);
  const status = q('[data-testid="stStatusWidget"]');
  return {
    title: text(q('h1')),
    label: text(q('[data-testid="stMetricLabel"]')),
    values: [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(e => e.innerText.trim()),
    running: !!status,
    status: text(status),
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText.slice(0, 400)),
    slider: q('[data-testid="stSidebar"] input[type="range"]')?.getAttribute('aria-valuetext') ?? null,
    method: q('[data-testid="stSidebar"] input[aria-label="Fine-tuning method"]')?.value ?? null,
    url: location.pathname + location.search,
    runningShown: window.__runningShown ?? null,
  };
}"""
# Counts how often the "Running..." status widget appeared: the frontend mounts it only once a run has lasted
# 500 ms, so a waiter that needs it to appear hangs on every shorter run (recorded per move as running_shown).
WATCH_STATUS_JS = """(() => {
  window.__runningShown = 0;
  let shown = false;
  const check = () => {
    const now = !!document.querySelector('[data-testid="stStatusWidget"]');
    if (now && !shown) window.__runningShown += 1;
    shown = now;
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true});
})()"""
PROBE_404 = re.compile(r"/[^/]+/_stcore/(health|host-config)$")
STATUS_NAMES = {0: "success", 1: "compile_error", 2: "early_for_rerun", 3: "fragment_success"}


# --------------------------------------------------------------------------- expected numbers (from the store)
def expected_table(store_path: Path) -> dict:
    """(method, alpha index) -> what the Tradeoff page must show, computed from summary.parquet alone."""
    store = open_store(store_path)
    manifest = store.manifest
    id_set, shifts = manifest["run"]["id"], manifest["run"]["shifts"]
    summary = store.summary()
    wise = summary[summary.kind == "wise"]
    table, labels, alphas = {}, {}, None
    for method in store.wise_methods:
        rows = wise[wise.method == method]
        grid = sorted(float(a) for a in rows.alpha.unique())
        alphas = alphas or grid
        if grid != alphas:
            raise SystemExit(f"method {method} has another alpha grid; the bench assumes one grid")
        acc = rows.pivot_table(index="alpha", columns="dataset", values="accuracy")
        idacc, ood = acc[id_set], acc[shifts].mean(axis=1)
        label = manifest["methods"][method].get("label", method.upper())
        labels[method] = label
        for i, a in enumerate(grid):
            table[method, i] = {
                "title": f"ID / OOD tradeoff · {label}",
                "label": f"ID ({id_set}) at α={a:.2f}",
                # percent and points, as the four cards show them (ID, ID vs FT, OOD avg, OOD avg vs FT)
                "values": [
                    100 * idacc.iloc[i],
                    100 * (idacc.iloc[i] - idacc.iloc[-1]),
                    100 * ood.iloc[i],
                    100 * (ood.iloc[i] - ood.iloc[-1]),
                ],
            }
    return {"table": table, "labels": labels, "alphas": alphas, "methods": list(store.wise_methods)}


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def values_match(shown: list[str], want: list[float]) -> bool:
    """The cards round to 0.1; allow the rounding (and float noise) but nothing more."""
    if len(shown) < len(want):
        return False
    for text, value in zip(shown, want):
        m = _NUMBER.search(text.replace("−", "-"))
        if m is None or abs(float(m.group()) - value) > 0.05 + 1e-6:
            return False
    return True


# --------------------------------------------------------------------------- /proc sampling (psutil is not installed)
def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds) for every process."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _tree(pid: int, table: dict) -> list[int]:
    kids = collections.defaultdict(list)
    for p, (pp, _) in table.items():
        kids[pp].append(p)
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        if p in table:
            out.append(p)
        stack.extend(kids.get(p, []))
    return out


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _cpu_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class Sampler(threading.Thread):
    """Every ``period`` s: RSS and CPU of the server (process and children) and of the clients (this driver, the
    Playwright driver, chromium), CPU used by everything else on the machine, and the load average."""

    COLUMNS = ["t_s", "server_rss_mb", "server_cpu_cores", "clients_rss_mb", "clients_cpu_cores", "other_cpu_cores", "load1"]

    def __init__(self, server_pid: int, period: float, t0: float):
        super().__init__(daemon=True)
        self.server_pid, self.period, self.t0 = server_pid, period, t0
        self.rows: list[list] = []
        self.cpu_s: list[tuple[float, float, float, float]] = []  # t, cumulative server / clients / driver CPU seconds
        self.stop = threading.Event()

    def cumulative_between(self, a: float, b: float) -> tuple[float, ...] | None:
        """Server, clients and driver CPU seconds used between monotonic times a and b (nearest samples)."""
        inside = [row for row in self.cpu_s if a - self.t0 <= row[0] <= b - self.t0]
        if len(inside) < 2:
            return None
        return tuple(inside[-1][k] - inside[0][k] for k in (1, 2, 3))

    def run(self) -> None:
        last = None
        ncpu = os.cpu_count() or 1
        while not self.stop.is_set():
            now = time.monotonic()
            table = _proc_table()
            server = _tree(self.server_pid, table)
            clients = [p for p in _tree(os.getpid(), table) if p not in server]
            driver = [p for p in clients if p == os.getpid() or _comm(p) == "node"]  # this process, Playwright's node
            cpu = (sum(table[p][1] for p in server), sum(table[p][1] for p in clients), sum(table[p][1] for p in driver))
            busy = _cpu_busy()
            t = round(now - self.t0, 1)
            self.cpu_s.append((t, *cpu))
            row = [t, round(_rss_mb(server), 1), None, round(_rss_mb(clients), 1), None, None, round(os.getloadavg()[0], 2)]
            if last is not None:
                dt = now - last[0]
                row[2] = round((cpu[0] - last[1][0]) / dt, 2)
                row[4] = round((cpu[1] - last[1][1]) / dt, 2)
                machine = ncpu * (busy[0] - last[2][0]) / max(busy[1] - last[2][1], 1e-9)
                row[5] = round(max(machine - row[2] - row[4], 0.0), 2)
            self.rows.append(row)
            last = (now, cpu, busy)
            self.stop.wait(self.period)


def classify(report: dict, want_widgets: dict) -> str:
    """Where a timed-out move was when the move timeout hit, from the session's websocket traffic."""
    if not report["rerun_sent_after_input"]:
        return "input not delivered: the page had sent no rerun request since the move's first key/click"
    if report["last_sent_widgets"] != want_widgets:
        return "input partly delivered: the last rerun request carried an intermediate widget value"
    if report["server_running"] or not report["finished_after_last_request"]:
        return "run: the page had not yet seen the script_finished of its last request"
    return "page: it had seen the right run finish but did not show it yet (or did not answer)"


# --------------------------------------------------------------------------- one browser session
class Session:
    def __init__(self, index: int, expected: dict, rng: random.Random, t0: float):
        self.i, self.exp, self.rng, self.t0 = index, expected, rng, t0
        self.method = rng.choice(expected["methods"])
        self.alpha_i = rng.randrange(len(expected["alphas"]))
        self.page = self.context = None
        self.loaded = False
        self.load_s = None
        self.moves = []  # dicts: kind, latency_s, run_s, outcome
        self.timeouts, self.wrong, self.errors = [], [], []
        self.page_errors, self.console_errors = [], []
        self.ws_opens = self.ws_closes = self.reruns_sent = self.reloads = self.probe_404s = 0
        self.finished = collections.Counter()
        self.log = collections.deque(maxlen=30)  # recent websocket events, for timeout reports
        self.sent_t = 0.0  # time of the last rerun request the page sent
        self.sent_widgets: dict = {}
        self.finish_t = 0.0  # time of the last script_finished (any status)
        self.finish_status = None
        self.ws_running = False
        self.running_shown = 0  # the page's count of "Running..." appearances, at the last snapshot
        self.changed = asyncio.Event()

    # websocket listeners: BackMsg rerun_script out, ForwardMsg script_finished / session status in
    def _on_ws(self, ws) -> None:
        self.ws_opens += 1
        self._event("ws-open", ws.url.rsplit("/", 1)[-1])
        ws.on("framesent", self._sent)
        ws.on("framereceived", self._received)
        ws.on("close", lambda _: (setattr(self, "ws_closes", self.ws_closes + 1), self._event("ws-close", "")))

    def _event(self, kind: str, detail) -> None:
        self.log.append((round(time.monotonic() - self.t0, 2), kind, detail))

    def _sent(self, payload) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if isinstance(payload, str):
            return
        msg = BackMsg.FromString(payload)
        if msg.WhichOneof("type") != "rerun_script":
            return
        widgets = {}
        for w in msg.rerun_script.widget_states.widgets:
            key = w.id.rsplit("-", 1)[-1]
            if key == "alpha":
                widgets["alpha"] = list(w.string_array_value.data) or list(w.int_array_value.data)
            elif key == "method":
                widgets["method"] = w.string_value
        self.sent_t, self.sent_widgets = time.monotonic(), widgets
        self.reruns_sent += 1
        self._event("rerun-sent", widgets)
        self.changed.set()

    def _received(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str) or len(payload) > 4096:  # deltas (charts, tables) are not needed
            return
        msg = ForwardMsg.FromString(payload)
        kind = msg.WhichOneof("type")
        if kind == "script_finished":
            status = STATUS_NAMES.get(msg.script_finished, str(msg.script_finished))
            self.finish_t, self.finish_status = time.monotonic(), status
            self.finished[status] += 1
            self._event("finished", status)
            self.changed.set()
        elif kind == "session_status_changed":
            self.ws_running = msg.session_status_changed.script_is_running
            self._event("running" if self.ws_running else "idle", "")
            self.changed.set()
        elif kind == "new_session":
            self._event("new-session", "")

    def _console(self, text: str, url: str) -> None:
        # On a deep link (/tradeoff) the frontend first probes /tradeoff/_stcore/{health,host-config}, gets 404, then
        # finds the server at /_stcore: expected once per page load, counted apart from real console errors.
        if PROBE_404.search(url) and "404" in text:
            self.probe_404s += 1
        else:
            self.console_errors.append(f"{time.monotonic() - self.t0:.1f}s {text[:300]} {url}")

    def want(self) -> dict:
        return self.exp["table"][self.method, self.alpha_i]

    async def open(self, browser, base: str, deadline: float) -> None:
        start = time.monotonic()
        try:
            await self._open(browser, base, deadline, start)
        except Exception as exc:  # noqa: BLE001 - recorded; the session takes no part in the moves
            self.load_s = round(time.monotonic() - start, 2)
            self.errors.append({"phase": "load", "error": repr(exc)[:400], "recent_events": list(self.log)[-10:]})
            await self._discard()

    async def _discard(self) -> None:
        """Close a session that failed to load: a page still loading would take CPU from the others."""
        if self.context is not None:
            try:
                await asyncio.wait_for(self.context.close(), 30)
            except Exception:  # noqa: BLE001
                pass

    async def _open(self, browser, base: str, deadline: float, start: float) -> None:
        self.context = await browser.new_context(viewport={"width": 1400, "height": 1000}, reduced_motion="reduce")
        await self.context.add_init_script(WATCH_STATUS_JS)
        self.page = page = await self.context.new_page()
        page.on("websocket", self._on_ws)
        page.on("pageerror", lambda e: self.page_errors.append(f"{time.monotonic() - self.t0:.1f}s {str(e)[:300]}"))
        page.on(
            "console",
            lambda m: self._console(m.text, m.location.get("url", "")) if m.type == "error" else None,
        )
        alpha = self.exp["alphas"][self.alpha_i]
        await page.goto(f"{base}/tradeoff?run=demo&method={self.method}&alpha={alpha:g}", timeout=max(deadline - start, 1) * 1000)
        outcome = await self.settle(start, deadline, needs_rerun=False)
        self.load_s = round(time.monotonic() - start, 2)
        self.running_shown = outcome["snapshot"].get("runningShown") or 0
        self.loaded = outcome["outcome"] != "timeout"  # the page is up: a wrong value or an exception is counted, then moves go on
        if outcome["outcome"] == "wrong":
            self.wrong.append({"session": self.i, "phase": "load", "want": [self.method, alpha], "snapshot": outcome["snapshot"]})
        elif outcome["outcome"] != "ok":
            self.errors.append({"phase": "load", **outcome})
        if not self.loaded:
            await self._discard()

    async def settle(self, t0: float, deadline: float, needs_rerun: bool = True) -> dict:
        """Wait for: a rerun requested after t0 (when ``needs_rerun``), finished after the last request, and the
        page showing this session's (method, alpha) with no run in progress. Then check the cards' values."""
        want = self.want()
        snap = None
        while True:
            # the server finished a run after the last request and is idle (the status widget is no signal: it only
            # shows once a run has lasted 500 ms, so short runs never show it, and it lingers 200 ms after a run)
            ws_done = not self.ws_running and self.finish_t > self.sent_t and (self.sent_t >= t0 or not needs_rerun) and self.finish_t >= t0
            if ws_done:
                try:
                    snap = await asyncio.wait_for(self.page.evaluate(SNAPSHOT_JS), max(deadline - time.monotonic(), 0) + 5)
                except asyncio.TimeoutError:
                    return {"outcome": "timeout", "ws": self.ws_state(t0), "snapshot": {"error": "page did not answer evaluate()"}}
                if snap["title"] == want["title"] and snap["label"] == want["label"]:
                    if snap["exceptions"]:
                        return {"outcome": "error", "snapshot": snap}
                    if not values_match(snap["values"], want["values"]):
                        return {"outcome": "wrong", "snapshot": snap}
                    return {"outcome": "ok", "snapshot": snap}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ws = self.ws_state(t0)  # at the deadline; the snapshot may take a while on a starved renderer
                return {"outcome": "timeout", "ws": ws, "snapshot": await self._snapshot()}
            self.changed.clear()
            try:  # re-check on every websocket event, and at least every 0.25 s (rendering lags the message)
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.25 if ws_done else 1.0))
            except asyncio.TimeoutError:
                pass

    def ws_state(self, t0: float) -> dict:
        return {
            "rerun_sent_after_input": self.sent_t >= t0,
            "last_sent_widgets": self.sent_widgets,
            "last_finished": self.finish_status,
            "finished_after_last_request": self.finish_t > self.sent_t,
            "server_running": self.ws_running,
        }

    async def _snapshot(self) -> dict:
        try:
            return await asyncio.wait_for(self.page.evaluate(SNAPSHOT_JS), 10)
        except Exception as exc:  # noqa: BLE001 - a dead page is itself the finding
            return {"error": repr(exc)[:300]}

    async def move(self, move_timeout: float, grace: float, shots: Path | None) -> None:
        page, n = self.page, len(self.exp["alphas"])
        before, shown_before = (self.method, self.alpha_i), self.running_shown
        t0 = time.monotonic()
        deadline = t0 + move_timeout

        def left_ms() -> float:  # the input shares the move's timeout
            return max(deadline - time.monotonic(), 0.001) * 1000

        try:
            if self.rng.random() < 0.25:
                kind = "method"
                self.method = self.rng.choice([m for m in self.exp["methods"] if m != self.method])
                await page.locator(METHOD_BOX).click(timeout=left_ms())
                await page.get_by_role("option", name=self.exp["labels"][self.method], exact=True).click(timeout=left_ms())
            else:
                kind = "slider"
                steps = self.rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if 0 <= self.alpha_i + d < n])
                self.alpha_i += steps
                thumb = page.locator(SLIDER)
                for _ in range(abs(steps)):
                    await thumb.press("ArrowRight" if steps > 0 else "ArrowLeft", timeout=left_ms())
            input_s = time.monotonic() - t0
            result = await self.settle(t0, deadline)
        except PlaywrightTimeout:  # the page did not take the key/click within the move timeout
            input_s = time.monotonic() - t0
            result = {"outcome": "timeout", "ws": self.ws_state(t0), "snapshot": await self._snapshot()}
        latency = time.monotonic() - t0
        record = {"t_s": round(t0 - self.t0, 1), "kind": kind, "outcome": result["outcome"], "latency_s": round(latency, 3)}
        record["input_s"] = round(input_s, 3)  # keyboard/clicks delivered (Playwright round trips through the renderer)
        if result["outcome"] != "timeout" and self.sent_t >= t0:
            # last request sent -> its script_finished received, as the page saw them: Chromium reports websocket
            # frames from the renderer, so a busy renderer adds to this; the server's own CPU is in the samples
            record["run_s"] = round(self.finish_t - self.sent_t, 3)
        shown = result["snapshot"].get("runningShown")
        if isinstance(shown, int):
            record["running_shown"] = shown > shown_before  # did "Running..." ever appear during this move?
            self.running_shown = shown
        self.moves.append(record)
        if result["outcome"] == "ok":
            return
        want_widgets = {"method": self.exp["labels"][self.method], "alpha": [f"{self.exp['alphas'][self.alpha_i]:.2f}"]}
        report = {
            "session": self.i,
            "move": len(self.moves),
            "at_s": round(t0 - self.t0, 1),
            "kind": kind,
            "from": [before[0], self.exp["alphas"][before[1]]],
            "want": [self.method, self.exp["alphas"][self.alpha_i]],
            "snapshot": result["snapshot"],
            **result.get("ws", self.ws_state(t0)),
            "ws_opens": self.ws_opens,
            "ws_closes": self.ws_closes,
            "recent_events": list(self.log)[-15:],
        }
        if result["outcome"] == "timeout":
            report["cause"] = classify(report, want_widgets)
            # then keep waiting (up to --grace s more): late but right means slow, never means lost
            late = await self.settle(t0, t0 + move_timeout + grace)
            report["late_outcome"] = late["outcome"]
            report["settled_after_s"] = round(time.monotonic() - t0, 1) if late["outcome"] != "timeout" else None
            if late["outcome"] == "timeout":
                report["snapshot_after_grace"] = late["snapshot"]
                report["events_after_grace"] = list(self.log)[-8:]
        {"timeout": self.timeouts, "wrong": self.wrong, "error": self.errors}[result["outcome"]].append(report)
        if shots is not None and len(self.timeouts) + len(self.wrong) <= 3:
            shots.mkdir(parents=True, exist_ok=True)
            try:
                await page.screenshot(path=str(shots / f"s{self.i:02d}-move{len(self.moves)}-{result['outcome']}.png"), timeout=20000)
            except Exception:  # noqa: BLE001
                pass
        await self.resync(move_timeout)

    async def resync(self, timeout: float) -> None:
        """After a failed move, take the widgets' state as the truth (or reload a dead page) and go on."""
        snap = await self._snapshot()
        self.running_shown = snap.get("runningShown") or self.running_shown
        labels = {v: k for k, v in self.exp["labels"].items()}
        alphas = [f"{a:.2f}" for a in self.exp["alphas"]]
        if snap.get("method") in labels and snap.get("slider") in alphas:
            self.method, self.alpha_i = labels[snap["method"]], alphas.index(snap["slider"])
            return
        self.reloads += 1
        try:
            alpha = self.exp["alphas"][self.alpha_i]
            await self.page.goto(f"{self.page.url.split('?')[0]}?run=demo&method={self.method}&alpha={alpha:g}", timeout=timeout * 1000)
            await self.settle(time.monotonic(), time.monotonic() + timeout, needs_rerun=False)
        except Exception as exc:  # noqa: BLE001
            self.errors.append({"phase": "reload", "error": repr(exc)[:300]})

    async def run(self, end: float, move_timeout: float, grace: float, think: float, shots: Path | None) -> None:
        while time.monotonic() < end:
            try:
                await self.move(move_timeout, grace, shots)
            except Exception as exc:  # noqa: BLE001 - a Playwright failure (click/press timed out) is a counted error
                self.moves.append({"kind": "?", "outcome": "error", "latency_s": None})
                self.errors.append({"phase": "move", "error": repr(exc)[:400], "recent_events": list(self.log)[-10:]})
                await self.resync(move_timeout)
            await asyncio.sleep(think * (0.5 + self.rng.random()))


# --------------------------------------------------------------------------- server, summary, main
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, ROBUST_STORE_ROOT=str(ROOT / "cache"), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [sys.executable, "-m", "dashboard.serve", "--server.headless", "true", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    stop_server(proc)
    raise RuntimeError("streamlit did not start:\n" + log_path.read_text()[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def kill_descendants() -> None:
    """Hard stop: SIGKILL every process this bench started (Playwright driver, chromium, server), by pid."""
    table = _proc_table()
    for pid in reversed(_tree(os.getpid(), table)):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)

    def q(p):
        k = (len(v) - 1) * p
        lo = int(k)
        return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (k - lo)

    return {"n": len(v), "p50": round(q(0.5), 2), "p95": round(q(0.95), 2), "max": round(v[-1], 2)}


def cpu_during_moves(sampler: Sampler | None, phase: dict, moves: int) -> dict | None:
    """Mean cores used by the server, the clients and everything else while sessions were moving, and CPU seconds
    per move: what makes a move slow when the machine is short of CPU."""
    if sampler is None or "moves_start" not in phase:
        return None
    a, b = phase["moves_start"], phase.get("moves_end", time.monotonic())
    rows = [r for r in sampler.rows if a - sampler.t0 <= r[0] <= b - sampler.t0 and r[2] is not None]
    used = sampler.cumulative_between(a, b)
    if not rows or used is None:
        return None
    out = {f"{name}_cores_mean": round(sum(r[k] for r in rows) / len(rows), 2) for name, k in (("server", 2), ("clients", 4), ("other", 5))}
    out["cores_on_machine"] = os.cpu_count()
    if moves:
        out["server_cpu_s_per_move"] = round(used[0] / moves, 2)
        out["clients_cpu_s_per_move"] = round(used[1] / moves, 2)
        out["of_which_driver_cpu_s_per_move"] = round(used[2] / moves, 2)  # this script + Playwright's node, not chromium
    return out


def summarize(
    args, sessions: list[Session], sampler: Sampler | None, started: float, server_log: Path, aborted: str | None, phase: dict
) -> dict:
    moves = [m for s in sessions for m in s.moves]
    done = [m for m in moves if m["outcome"] != "timeout" and m["latency_s"] is not None]
    rows = sampler.rows if sampler else []
    log_tail = server_log.read_text(errors="replace")[-3000:] if server_log.exists() else ""
    return {
        "command": "python bench/load.py " + " ".join(sys.argv[1:]),
        "aborted": aborted,
        "config": {
            k: getattr(args, k)
            for k in ("sessions", "duration", "move_timeout", "grace", "think", "load_concurrency", "client_nice", "seed")
        },
        "setup": "one headless chromium, one browser context (own websocket, own Streamlit session) per session; "
        "server on 127.0.0.1 serving cache/demo; Tradeoff page; 75% slider moves of 1-3 arrow steps, 25% method switches",
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": args.loadavg_at_start},
        "wall_s": round(time.monotonic() - started, 1),
        "sessions_loaded": sum(s.loaded for s in sessions),
        "load_s": _percentiles([s.load_s for s in sessions if s.load_s is not None]),
        "moves": len(moves),
        "ok": sum(m["outcome"] == "ok" for m in moves),
        "wrong_values": sum(len(s.wrong) for s in sessions),
        "timeouts": sum(len(s.timeouts) for s in sessions),
        "errors": {
            "exceptions_or_failed_actions": sum(len(s.errors) for s in sessions),
            "page_errors": sum(len(s.page_errors) for s in sessions),
            "console_errors": sum(len(s.console_errors) for s in sessions),
            "deep_link_probe_404s (expected, not errors)": sum(s.probe_404s for s in sessions),
            "ws_closes": sum(s.ws_closes for s in sessions),
            "ws_reconnects": sum(max(s.ws_opens - 1, 0) for s in sessions),
            "reloads": sum(s.reloads for s in sessions),
        },
        "latency_s": {
            "all": _percentiles([m["latency_s"] for m in done]),
            "slider": _percentiles([m["latency_s"] for m in done if m["kind"] == "slider"]),
            "method": _percentiles([m["latency_s"] for m in done if m["kind"] == "method"]),
            "request_to_finished": _percentiles([m["run_s"] for m in done if "run_s" in m]),
            "input": _percentiles([m["input_s"] for m in moves if m.get("input_s") is not None]),
        },
        # a waiter keyed on the "Running..." widget would have hung (until its timeout) on these moves
        "moves_where_running_widget_never_showed": sum(m.get("running_shown") is False for m in done),
        "moves_checked_for_running_widget": sum("running_shown" in m for m in done),
        "longest_run_without_running_widget_s": max(
            (m["run_s"] for m in done if m.get("running_shown") is False and "run_s" in m), default=None
        ),
        "server_rss_mb": {
            "start": rows[0][1] if rows else None,
            "peak": max((r[1] for r in rows), default=None),
            "end": rows[-1][1] if rows else None,
        },
        "browser_and_driver_rss_mb_peak": max((r[3] for r in rows), default=None),
        "cpu_during_moves": cpu_during_moves(sampler, phase, len(moves)),
        "per_session": [
            {
                "session": s.i,
                "moves": len(s.moves),
                "timeouts": len(s.timeouts),
                "wrong": len(s.wrong),
                "errors": len(s.errors),
                "latency_s": _percentiles([m["latency_s"] for m in s.moves if m["outcome"] != "timeout" and m["latency_s"] is not None]),
                "reruns_sent": s.reruns_sent,
                "script_finished": dict(s.finished),
                "ws_opens": s.ws_opens,
                "load_s": s.load_s,
                "moves_log": s.moves,
            }
            for s in sessions
        ],
        "timeout_reports": [r for s in sessions for r in s.timeouts],
        "wrong_reports": [r for s in sessions for r in s.wrong],
        "error_reports": [r for s in sessions for r in s.errors][:40],
        "page_errors": [e for s in sessions for e in s.page_errors][:20],
        "console_errors": [e for s in sessions for e in s.console_errors][:20],
        "samples": {"columns": Sampler.COLUMNS, "rows": rows},
        "server_log_tail": log_tail,
    }


def print_table(result: dict) -> None:
    print(f"\n{'session':>7} {'moves':>5} {'t/o':>4} {'wrong':>5} {'err':>4} {'p50 s':>6} {'max s':>6} {'reruns':>6}  finished")
    for s in result["per_session"]:
        lat = s["latency_s"]
        print(
            f"{s['session']:>7} {s['moves']:>5} {s['timeouts']:>4} {s['wrong']:>5} {s['errors']:>4} "
            f"{lat.get('p50', '-'):>6} {lat.get('max', '-'):>6} {s['reruns_sent']:>6}  {s['script_finished']}"
        )
    lat, rss = result["latency_s"]["all"], result["server_rss_mb"]
    print(
        f"\n{result['sessions_loaded']}/{result['config']['sessions']} sessions, {result['config']['duration']} s: "
        f"{result['moves']} moves, {result['ok']} ok, {result['wrong_values']} wrong values, {result['timeouts']} timeouts, "
        f"errors {result['errors']}"
    )
    cpu = result["cpu_during_moves"]
    if cpu is None:
        return
    print(
        f"latency per move p50 {lat.get('p50')} s, p95 {lat.get('p95')} s, max {lat.get('max')} s; "
        f"request to script_finished p50 {result['latency_s']['request_to_finished'].get('p50')} s; server RSS {rss['start']} -> peak {rss['peak']} MB"
    )
    print(
        f"cores used while moving (of {cpu.get('cores_on_machine')}): server {cpu.get('server_cores_mean')}, "
        f"browsers+driver {cpu.get('clients_cores_mean')}, other processes {cpu.get('other_cores_mean')}; "
        f"CPU s per move: server {cpu.get('server_cpu_s_per_move')}, browsers {cpu.get('clients_cpu_s_per_move')}"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120, help="seconds of moves, after every session has loaded")
    parser.add_argument("--move-timeout", type=float, default=60, help="seconds a move may take to settle")
    parser.add_argument("--grace", type=float, default=60, help="after a timeout, seconds more to see whether the move lands late")
    parser.add_argument("--load-timeout", type=float, default=300, help="seconds for every session to open the page (all of them)")
    parser.add_argument("--think", type=float, default=0.5, help="mean pause between a session's moves (uniform 0.5x-1.5x)")
    parser.add_argument(
        "--deadline", type=float, default=None, help="hard limit on the whole run (default: load+duration+move timeout+120)"
    )
    parser.add_argument("--load-concurrency", type=int, default=4, help="sessions opening the page at the same time")
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="niceness of the browsers and this driver (default 0: they compete with the server on equal terms, as on one shared box)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_cpu.json"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--shots", default=str(ROOT / "bench" / "out" / "load"), help="screenshots of failed moves ('' for none)")
    args = parser.parse_args(argv)
    args.loadavg_at_start = [round(x, 2) for x in os.getloadavg()]
    deadline_s = args.deadline or args.load_timeout + args.duration + args.move_timeout + args.grace + 120
    started = time.monotonic()
    expected = expected_table(ROOT / "cache" / "demo")
    out, server_log = Path(args.out), ROOT / "bench" / "out" / "load_server.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    sessions = [Session(i, expected, random.Random(args.seed * 1000 + i), started) for i in range(args.sessions)]
    state, phase = {"sampler": None, "server": None}, {}

    def write(aborted: str | None) -> dict:
        result = summarize(args, sessions, state["sampler"], started, server_log, aborted, phase)
        out.write_text(json.dumps(result, indent=1, default=str))
        return result

    def watchdog() -> None:  # the hard deadline, whatever the event loop is doing
        try:
            write(f"hard deadline of {deadline_s:.0f} s reached")
        finally:
            if state["server"] is not None:
                try:
                    os.killpg(state["server"].pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            kill_descendants()
            print(f"load.py: hard deadline of {deadline_s:.0f} s reached; killed server and browser", file=sys.stderr)
            os._exit(3)

    timer = threading.Timer(deadline_s, watchdog)
    timer.daemon = True
    timer.start()
    port = _free_port()
    state["server"] = server = start_server(port, server_log)
    base = f"http://127.0.0.1:{port}"
    state["sampler"] = sampler = Sampler(server.pid, 1.0, started)
    sampler.start()
    if args.client_nice:  # after the server started: only the driver and the browsers it launches inherit it
        os.nice(args.client_nice)
    aborted = None
    try:
        asyncio.run(asyncio.wait_for(_drive(args, sessions, base, phase), deadline_s - (time.monotonic() - started) - 10))
    except BaseException as exc:  # noqa: BLE001 - recorded; server and browser are stopped below either way
        aborted = (
            f"stopped {deadline_s - 10:.0f} s into the run (--deadline less 10 s)" if isinstance(exc, TimeoutError) else repr(exc)[:500]
        )
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        sampler.stop.set()
        stop_server(server)
        sampler.join(timeout=5)
        timer.cancel()
        result = write(aborted)
    print_table(result)
    print(f"\nwrote {out}")
    return result


async def _drive(args, sessions: list[Session], base: str, phase: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            gate, load_deadline = asyncio.Semaphore(args.load_concurrency), time.monotonic() + args.load_timeout

            async def open_one(s: Session) -> None:
                async with gate:
                    await s.open(browser, base, load_deadline)

            await asyncio.gather(*(open_one(s) for s in sessions))
            live = [s for s in sessions if s.loaded]
            print(f"{len(live)}/{len(sessions)} sessions loaded; moving for {args.duration:.0f} s", flush=True)
            phase["moves_start"] = time.monotonic()
            end = phase["moves_start"] + args.duration
            shots = Path(args.shots) if args.shots else None
            await asyncio.gather(*(s.run(end, args.move_timeout, args.grace, args.think, shots) for s in live))
            phase["moves_end"] = time.monotonic()
        finally:
            await asyncio.wait_for(browser.close(), 30)


if __name__ == "__main__":
    main()
