"""Browser bench, one session: every page's first render, key press -> charts moved and -> page updated, a method switch.

Starts the app on the demo store (``bench/load.py``'s server helpers) and drives headless chromium with
Playwright. Each timing runs from the user's action (navigation, an ArrowRight on the sidebar's alpha slider,
a pick in the method selectbox) to the first ``script_finished`` ForwardMsg on the session's websocket after it,
plus two animation frames so the browser has painted the result. Streamlit's "Running..." widget is not used
(see load.py).

A key press is timed twice: *key -> charts moved* is measured in the page, from the keydown event to the
moment every chart with alpha frames (dashboard/alpha_sync.py) shows the new grid index, plus two painted
frames; *key -> page updated* is the rerun (numbers, tables, URL) as above. The issue's targets: key press ->
chart updated <= 100 ms median, first render <= 1.5 s, method switch <= 300 ms; this script prints the figures
and writes them as JSON, it does not judge them.

    python bench/pages.py                      # -> bench/results/pages_cpu.json
    python bench/pages.py --moves 10 --out /tmp/pages.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import _free_port, start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["", "tradeoff", "effective_robustness", "diversity", "calibration", "examples", "export", "tour", "feature_distortion", "papers"]
SLIDER = '[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]'
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
# In the page: time from the next keydown until every chart with alpha frames shows grid index `want`, painted.
ARM_CHARTS = """(want) => {
  window.__charts_ms = null;
  const gds = [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.layout.meta && g.layout.meta.robust_alpha);
  if (!gds.length) { window.__charts_ms = -1; return 0; }
  let t0 = null;
  document.addEventListener('keydown', () => { t0 = performance.now(); }, {capture: true, once: true});
  const done = () => gds.every(g => g.getAttribute('data-robust-alpha') === String(want));
  const observer = new MutationObserver(() => {
    if (t0 === null || !done()) return;
    observer.disconnect();
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__charts_ms = performance.now() - t0; }));
  });
  gds.forEach(g => observer.observe(g, {attributes: true, attributeFilter: ['data-robust-alpha']}));
  return gds.length;
}"""


class Finishes:
    """Counts script_finished messages on the page's websockets; ``wait_next`` blocks until a new one."""

    def __init__(self, page):
        self.count = 0
        self.page = page
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str) or len(payload) > 4096:
            return
        if ForwardMsg.FromString(payload).WhichOneof("type") == "script_finished":
            self.count += 1

    def wait_next(self, seen: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count <= seen:
            if time.monotonic() > deadline:
                raise TimeoutError("no script_finished")
            self.page.wait_for_timeout(5)
        self.page.evaluate(PAINTED)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def _ms(t0: float) -> float:
    return round(1000 * (time.perf_counter() - t0), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20, help="slider moves per page")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pages_cpu.json")
    parser.add_argument("--pages", nargs="*", default=None, help="slugs to time (default: every page); '' is the Overview")
    parser.add_argument("--no-switch", action="store_true", help="skip the method-switch timing")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    port = _free_port()
    server = start_server(port, ROOT / "bench" / "out" / "pages-server.log")
    result: dict = {"pages": {}, "load_avg_start": os.getloadavg()[0]}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            finishes = Finishes(page)
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/?run=demo&method=ft&alpha=0.5", timeout=120000)  # warm: opens the store once
            finishes.wait_next(0, 120)
            for slug in PAGES if args.pages is None else args.pages:
                seen = finishes.count
                t0 = time.perf_counter()
                page.goto(f"{base}/{slug}?run=demo&method=ft&alpha=0.5", timeout=120000)
                finishes.wait_next(seen, 120)
                first = _ms(t0)
                thumb = page.locator(SLIDER).first
                moves, charts = [], []
                for k in range(args.moves):
                    thumb.focus()
                    step = 1 if (k // 5) % 2 == 0 else -1
                    framed = page.evaluate(ARM_CHARTS, int(thumb.input_value()) + step)
                    seen = finishes.count
                    t0 = time.perf_counter()
                    page.keyboard.press("ArrowRight" if step > 0 else "ArrowLeft")
                    finishes.wait_next(seen)
                    moves.append(_ms(t0))
                    if framed:
                        page.wait_for_function("() => window.__charts_ms !== null", timeout=10000)
                        charts.append(round(page.evaluate("() => window.__charts_ms"), 1))
                    page.wait_for_timeout(150)
                result["pages"][slug or "overview"] = {
                    "first_render_ms": first,  # a full page load (a new Streamlit session): every page builds anew
                    "framed_charts": framed,
                    "key_to_charts_ms_median": statistics.median(charts) if charts else None,
                    "key_to_charts_ms_p95": _p95(charts) if charts else None,
                    "key_to_update_ms_median": statistics.median(moves),
                    "key_to_update_ms_p95": _p95(moves),
                }
                print(slug or "overview", result["pages"][slug or "overview"], flush=True)
            # moving between pages as a user does, by the sidebar's links (no page reload: Streamlit's own navigation),
            # each page visited for the first time in this session, so its figures and frames are built
            page.goto(f"{base}/?run=demo&method=ft&alpha=0.5", timeout=120000)
            finishes.wait_next(finishes.count, 120)
            for slug in [s for s in (PAGES if args.pages is None else args.pages) if s]:
                link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{slug}"]').first
                seen = finishes.count
                t0 = time.perf_counter()
                link.click()
                finishes.wait_next(seen, 120)
                result["pages"][slug]["sidebar_link_ms"] = _ms(t0)
                print(slug, "by the sidebar link", result["pages"][slug]["sidebar_link_ms"], "ms", flush=True)
            # method switch on the Tradeoff page: pick the next method in the sidebar's selectbox
            if args.no_switch:
                browser.close()
                return _finish(args, result)
            page.goto(f"{base}/tradeoff?run=demo&method=ft&alpha=0.5", timeout=120000)
            finishes.wait_next(finishes.count, 120)
            switches = []
            for name in ["LP (linear probe)", "LP-FT", "FLYP", "FT (end-to-end)"] * 2:
                page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').nth(1).click()
                option = page.get_by_role("option", name=name, exact=True)
                seen = finishes.count
                t0 = time.perf_counter()
                option.click()
                finishes.wait_next(seen)
                switches.append(_ms(t0))
                page.wait_for_timeout(200)
            result["method_switch_ms"] = {"median": statistics.median(switches), "max": max(switches), "each": switches}
            print("method switch", result["method_switch_ms"], flush=True)
            browser.close()
    finally:
        stop_server(server)
    return _finish(args, result)


def _finish(args, result: dict) -> int:
    result["load_avg_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
