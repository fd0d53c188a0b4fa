// Client-side alpha: every chart that carries per-alpha frames follows the sidebar's alpha slider in the
// browser, on the key press or drag itself, instead of after Streamlit's slider debounce and a rerun.
//
// A figure built by dashboard/alpha_sync.py is drawn at one grid index (layout.meta.robust_alpha_index: the
// alpha its session first drew it at; the server keeps sending that same spec while the slider moves, so a
// rerun leaves the chart alone) and carries in layout.meta.robust_alpha a JSON string (parsed once per chart) of
//   traces - the indices of the traces that change along alpha
//   frames - for every grid index k: {data: [{attr: value} per changed trace], layout: {key: value}}
// This script applies frame k of the slider's index k to every such chart that shows another index: when it is
// drawn, and whenever the slider moves. Values are absolute (not deltas): frame k from any state shows k.
// The page's numbers and tables come from the rerun; the component's data says which grid index the last
// finished run drew them at, and they are faded while the slider is elsewhere.
// Plotly is Streamlit's own instance (its Plotly chunk sets window.Plotly), so the charts stay
// Streamlit's elements: theme, selection events and the PNG button are untouched.

const SLIDER = '[data-testid="stSidebar"] .st-key-alpha input[type="range"]';

// While the charts show an alpha the server has not drawn yet, the page's numbers (cards, sentences, tables)
// still belong to the previous alpha: they are faded until the rerun arrives, as Streamlit fades stale elements.
const PENDING_CSS = `
body[data-robust-alpha-pending] [data-testid="stMain"] [data-testid="stMetric"],
body[data-robust-alpha-pending] [data-testid="stMain"] [data-testid="stMarkdown"],
body[data-robust-alpha-pending] [data-testid="stMain"] [data-testid="stDataFrame"],
body[data-robust-alpha-pending] [data-testid="stMain"] [data-testid="stCaptionContainer"] {
  opacity: 0.45; transition: opacity 0.1s;
}`;

function install() {
  let slider = null;
  let sliderObserver = null;
  let pendingTimer = null;
  const style = document.createElement("style");
  style.textContent = PENDING_CSS;
  document.head.appendChild(style);

  function pending(on) {
    if (on === (pendingTimer !== null)) return;
    if (pendingTimer !== null) window.clearTimeout(pendingTimer);
    pendingTimer = null;
    if (on) {
      document.body.setAttribute("data-robust-alpha-pending", "");
      pendingTimer = window.setTimeout(() => {
        pendingTimer = null; // never leave a page faded for good (a rerun that never came)
        document.body.removeAttribute("data-robust-alpha-pending");
      }, 10000);
    } else {
      document.body.removeAttribute("data-robust-alpha-pending");
    }
  }

  function current() {
    if (!slider || !slider.isConnected) return null;
    const k = Number(slider.value);
    return Number.isInteger(k) ? k : null;
  }

  let serverIndex = null; // the grid index the last finished run drew the page's numbers at

  function spec(gd) {
    const meta = gd.layout && gd.layout.meta;
    if (!meta || typeof meta.robust_alpha !== "string") return null;
    if (gd.__robustRaw !== meta.robust_alpha) {
      try {
        gd.__robustParsed = JSON.parse(meta.robust_alpha);
      } catch (err) {
        console.warn("alpha sync: unreadable frames", err);
        gd.__robustParsed = null;
      }
      gd.__robustRaw = meta.robust_alpha;
    }
    if (gd.__robustParsed) gd.__robustParsed.index = meta.robust_alpha_index;
    return gd.__robustParsed;
  }

  // The grid index the chart shows: the frame this script last applied, unless Streamlit has (re)drawn the chart
  // since (a new layout object), then the index its spec was drawn at.
  function shown(gd, s) {
    return gd.__robustLayout === gd.layout ? gd.__robustShown : s.index;
  }

  // Streamlit's theme bolds a title when it draws it; give a title a frame sets the same decoration.
  function title(gd, s, from, layout) {
    if (!layout.title || typeof layout.title.text !== "string") return layout;
    const now = gd.layout.title && gd.layout.title.text;
    const before = from === undefined ? undefined : ((s.frames[from] || {}).layout || {}).title;
    let text = "<b>" + layout.title.text + "</b>";
    if (typeof now === "string" && before && typeof before.text === "string") {
      const at = now.indexOf(before.text);
      if (at >= 0) text = now.slice(0, at) + layout.title.text + now.slice(at + before.text.length);
    }
    return Object.assign({}, layout, { title: Object.assign({}, layout.title, { text }) });
  }

  function apply(gd, s, k) {
    const frame = s.frames[k];
    if (!frame) return;
    const layout = title(gd, s, shown(gd, s), frame.layout || {});
    // marked first: Plotly.update may report plotly_afterplot before it returns
    const update = {};
    s.traces.forEach((_, p) => {
      const attrs = frame.data[p] || {};
      for (const a in attrs) {
        if (!update[a]) update[a] = new Array(s.traces.length).fill(undefined);
        update[a][p] = attrs[a];
      }
    });
    gd.__robustShown = k;
    gd.__robustLayout = gd.layout; // what this script drew on; a Streamlit redraw replaces the layout object
    gd.setAttribute("data-robust-alpha", String(k));
    try {
      window.Plotly.update(gd, update, layout, s.traces);
    } catch (err) {
      console.warn("alpha sync: could not move a chart", err);
    }
  }

  function syncChart(gd, k) {
    const s = spec(gd);
    if (!s) return;
    if (!gd.__robustHooked && typeof gd.on === "function") {
      gd.__robustHooked = true;
      // Streamlit (re)draws a chart from its spec (new chart, resize, theme, a click's selection), at the index
      // the spec was drawn at: put the slider's frame back if the slider is elsewhere
      gd.on("plotly_afterplot", () => queueMicrotask(() => syncChart(gd, current())));
    }
    if (k === null || k === undefined) return;
    if (shown(gd, s) !== k) apply(gd, s, k);
    else gd.setAttribute("data-robust-alpha", String(k));
  }

  // The page's numbers belong to the alpha the last finished run drew them at: faded while the slider is
  // elsewhere (a rerun is on its way), cleared as soon as they agree (it arrived, or the slider came back).
  function refreshPending(k) {
    if (k === null || k === undefined || serverIndex === null) return pending(false);
    pending(serverIndex !== k);
  }

  function syncAll() {
    const k = current();
    if (k === null || !window.Plotly) return;
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => syncChart(gd, k));
    refreshPending(k);
  }

  function attach() {
    const s = document.querySelector(SLIDER);
    if (s && s !== slider) {
      if (sliderObserver) sliderObserver.disconnect();
      slider = s;
      sliderObserver = new MutationObserver(syncAll);
      sliderObserver.observe(s, { attributes: true, attributeFilter: ["value", "aria-valuetext"] });
    }
  }

  // The slider and the charts are re-created on page changes and reruns: look for them when the DOM changes.
  let scheduled = false;
  new MutationObserver(() => {
    if (scheduled) return;
    scheduled = true;
    window.requestAnimationFrame(() => {
      scheduled = false;
      attach();
      syncAll();
    });
  }).observe(document.body, { childList: true, subtree: true });
  attach();
  return {
    sync: (data) => {
      // the run-final mount says where this run drew the numbers; the early one (installs the script) says nothing
      if (data && "index" in data) serverIndex = Number.isInteger(data.index) ? data.index : null;
      attach();
      syncAll();
    },
    spec,
    serverIndex: () => serverIndex,
  };
}

export default function (component) {
  if (!window.__robustAlphaSync) window.__robustAlphaSync = install();
  window.__robustAlphaSync.sync(component ? component.data : null);
}
