// Client-side alpha: every chart that carries per-alpha frames follows the sidebar's alpha slider in the
// browser, on the key press or drag itself, instead of after Streamlit's slider debounce and a rerun.
//
// A figure built by dashboard/alpha_sync.py carries, in layout.meta:
//   robust_alpha_index - the grid index the server drew it at
//   robust_alpha       - a JSON string (parsed once per chart) of
//     traces - the indices of the traces that change along alpha
//     frames - for every grid index k: {data: [{attr: value} per changed trace], layout: {key: value}}
// Values are absolute (not deltas), so applying frame k from any state shows the figure at k.
// The page's numbers and tables still come from the rerun that follows; only the charts move early.
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

  // What the chart shows now: the server's index, unless this script has moved it since that render.
  function shown(gd, s) {
    return gd.__robustLayout === gd.layout ? gd.__robustShown : s.index;
  }

  // Streamlit's theme decorates a title when it draws it (bold); give the new title the same decoration.
  function title(gd, s, from, layout) {
    const raw = (f) => (f && f.layout && f.layout.title ? f.layout.title.text : undefined);
    const before = raw(s.frames[from]);
    const now = gd.layout.title && gd.layout.title.text;
    if (!layout.title || typeof layout.title.text !== "string" || typeof before !== "string" || typeof now !== "string") return layout;
    const at = now.indexOf(before);
    if (at < 0) return layout;
    const text = now.slice(0, at) + layout.title.text + now.slice(at + before.length);
    return Object.assign({}, layout, { title: Object.assign({}, layout.title, { text }) });
  }

  function apply(gd, s, k) {
    const frame = s.frames[k];
    if (!frame) return;
    const layout = title(gd, s, shown(gd, s), frame.layout || {});
    const update = {};
    s.traces.forEach((_, p) => {
      const attrs = frame.data[p] || {};
      for (const a in attrs) {
        if (!update[a]) update[a] = new Array(s.traces.length).fill(undefined);
        update[a][p] = attrs[a];
      }
    });
    try {
      window.Plotly.update(gd, update, layout, s.traces);
    } catch (err) {
      console.warn("alpha sync: could not move a chart", err);
    }
    gd.__robustShown = k;
    gd.__robustLayout = gd.layout; // what this script drew; a Streamlit redraw replaces the layout object
    gd.setAttribute("data-robust-alpha", String(k));
  }

  function syncChart(gd, k) {
    const s = spec(gd);
    if (!s) return;
    if (!gd.__robustHooked && typeof gd.on === "function") {
      gd.__robustHooked = true;
      // a Streamlit rerun re-renders the chart at the server's index: catch up if the slider has moved on
      gd.on("plotly_afterplot", () =>
        window.requestAnimationFrame(() => {
          const k = current();
          syncChart(gd, k);
          refreshPending(k);
        }),
      );
    }
    if (k === null || k === undefined) return;
    if (gd.__robustShown !== undefined && gd.__robustLayout !== gd.layout) {
      // Streamlit redrew a chart this script had moved. A chart with selection events keeps the figure its
      // last update reported, so the new layout (and index) can come with the moved data: set frame k again
      // (absolute values, so repeating it is harmless) instead of trusting the index.
      gd.__robustShown = undefined;
      gd.__robustLayout = undefined;
      apply(gd, s, k);
    } else if (shown(gd, s) !== k) apply(gd, s, k);
    else gd.setAttribute("data-robust-alpha", String(k));
  }

  // The page's numbers belong to the alpha the server last drew: faded while any chart's server index differs
  // from the slider's, cleared as soon as they agree (a rerun arrived, or the slider came back).
  function refreshPending(k) {
    if (k === null || k === undefined) return;
    let stale = false;
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      const s = spec(gd);
      if (s && s.index !== k) stale = true;
    });
    pending(stale);
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
  return { sync: () => { attach(); syncAll(); }, spec };
}

export default function () {
  if (!window.__robustAlphaSync) window.__robustAlphaSync = install();
  window.__robustAlphaSync.sync();
}
