/*!
 * LiveView for Rust: browser client.
 *
 * One file, no dependencies. It speaks the wire protocol described in
 * PROTOCOL.md and understands the HTML attributes of Django LiveView pages
 * (Stimulus-style `data-action` descriptors included), so those pages work
 * unchanged. Pages load liveview.min.js, made from this file by
 * scripts/build-client.sh: rebuild it after any change here. See README.md
 * next to this file.
 *
 * Sections:
 *   1. Constants
 *   2. Helpers
 *   3. Connection (socket or HTTP transport, reconnection, queue, state)
 *   4. Calls and loading states
 *   5. Form and data collection
 *   6. Event binding and actions
 *   7. Observers (init, focus, intersect) and subtree scanning
 *   8. DOM updates (applying server frames, replay, morphing)
 *   9. History (url, back/forward)
 *  10. Public API and boot
 */
(() => {
  "use strict";

  if (window.LiveView && window.LiveView.version) return; // loaded twice

  /* ------------------------------------------------------------------ *
   * 1. Constants
   * ------------------------------------------------------------------ */

  const VERSION = "0.1.0";
  const ROOM_KEY = "liveview-room";     // sessionStorage key of the tab's room
  const QUEUE_MAX = 100;                // calls kept while disconnected
  const RETRY_BASE = 1000;              // first retry within 1 s...
  const RETRY_CAP = 30000;              // ...and never more than 30 s apart
  const STABLE = 10000;                 // an open socket resets the backoff after this
  const POLICY_WAIT = 30000;            // at least this long after a close with 1008
  const EXPIRED = 4401;                 // close code: the session expired
  const FALLBACK_AFTER = 3;             // failed sockets in a row before the HTTP transport
  const FAST_CLOSE = 5000;              // a socket cut this soon after opening has failed
  const UPGRADE_AFTER = 300000;         // on the HTTP transport, try a socket again after this
  const TRANSPORT_KEY = "liveview-sse"; // sessionStorage: when this tab fell back
  const LOADING_CLASS = "liveview-loading";

  const ROOT = '[data-controller~="page"]';
  const A_ACTION = "data-action";
  const A_FUNCTION = "data-liveview-function";
  const A_DEBOUNCE = "data-liveview-debounce";
  const A_INIT = "data-liveview-init";
  const A_REINIT = "data-liveview-reinit";
  const A_FOCUS = "data-liveview-focus";
  const A_APPEAR = "data-liveview-intersect-appear";
  const A_DISAPPEAR = "data-liveview-intersect-disappear";
  const A_THRESHOLD = "data-liveview-intersect-threshold";
  const A_LOADING_TARGET = "data-liveview-loading-target";
  const A_NO_DISABLE = "data-liveview-no-disable";
  const A_PERMANENT = "data-liveview-permanent";
  const A_CONNECTED = "data-liveview-connected";
  const A_MORPH = "data-liveview-morph";
  const A_IGNORE = "data-liveview-ignore";
  const A_HOOK = "data-liveview-hook";
  const A_KEYMAP = "data-liveview-keyboard-map";
  const A_RECOVER = "data-liveview-recover";
  const INTERSECT = `[${A_APPEAR}],[${A_DISAPPEAR}]`;
  const PERMANENT = `[${A_PERMANENT}][id]`;

  // Events listened to from the start; others are added when a
  // `data-action` descriptor names them.
  const BASE_EVENTS = ["click", "submit", "input", "change", "keydown", "keyup",
    "focusin", "focusout", "focus", "blur", "toggle"];

  // Key names usable in `keydown.enter->page#run` style filters.
  const KEY_NAMES = {
    enter: "Enter", tab: "Tab", esc: "Escape", space: " ", up: "ArrowUp",
    down: "ArrowDown", left: "ArrowLeft", right: "ArrowRight", home: "Home",
    end: "End", page_up: "PageUp", page_down: "PageDown",
  };
  const MODIFIERS = ["ctrl", "alt", "shift", "meta"];
  // The other way round, for `data-liveview-keyboard-map` ("Escape" is "esc").
  const KEY_ALIASES = {};
  for (const k in KEY_NAMES) KEY_ALIASES[KEY_NAMES[k]] = k;

  const doc = document;
  const html = doc.documentElement;
  // The script tag that loaded us: the page's position in its groups
  // (`data-liveview-resume`) and the CSP nonce come from it.
  const me = doc.currentScript || doc.querySelector("script[data-liveview-resume]");
  // Under a strict Content-Security-Policy (`script-src 'nonce-…'`) code
  // runs only through script elements carrying this nonce, never eval.
  const nonce = (me && me.nonce) || "";

  // Tunables, from `window.webSocketConfig` (see README.md), read when used.
  const conf = (key, dflt) => {
    const v = (window.webSocketConfig || {})[key];
    return v == null || isNaN(v) ? dflt : +v;
  };

  /* ------------------------------------------------------------------ *
   * 2. Helpers
   * ------------------------------------------------------------------ */

  // False when a listener called preventDefault() on a cancelable event.
  const emit = (name, detail, cancelable) =>
    doc.dispatchEvent(new CustomEvent(name, { detail, cancelable }));

  // First element matching a selector; a bad selector is a warning, not a throw.
  const find = (sel) => {
    try { return doc.querySelector(sel); } catch (_) {
      console.warn("LiveView: invalid selector", sel);
      return null;
    }
  };

  // `root` itself when it matches, then its matching descendants.
  const each = (root, sel, fn) => {
    if (root.matches && root.matches(sel)) fn(root);
    root.querySelectorAll(sel).forEach(fn);
  };

  const randomId = () => {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  // Run server-written code as a function body, `el` and `this` bound to
  // `el` (upstream's contract for inline scripts): its `const`s are its own,
  // so the same script rendered twice runs twice without a clash. With a
  // CSP nonce it runs through a nonce'd script element instead of eval.
  let running = null;
  function runCode(code, el) {
    if (el) scripted.add(el);
    if (nonce) {
      const s = doc.createElement("script");
      s.nonce = nonce;
      s.textContent = `(function(el){${code}\n}).call(LiveView._el,LiveView._el)`;
      running = el;
      try { doc.head.appendChild(s).remove(); } finally { running = null; }
      return;
    }
    try {
      new Function("el", code).call(el, el);
    } catch (err) {
      console.error("LiveView: script failed", err);
    }
  }

  // Classic scripts only, as upstream: modules, JSON, templates are data.
  const classic = (s) => /^((text|application)\/(x-)?(java|ecma)script)?$/i
    .test((s.getAttribute("type") || "").trim());

  const isButton = (el) => el.tagName === "BUTTON" ||
    (el.tagName === "INPUT" && /^(submit|button|reset|image)$/.test(el.type));

  /* ------------------------------------------------------------------ *
   * 3. Connection
   * ------------------------------------------------------------------ */

  // The room comes from <html data-room>. Without it each tab makes its own
  // and keeps it in sessionStorage so a reload reuses it. The key is removed
  // while the page is open and written back on pagehide: a duplicated tab
  // (which copies sessionStorage) then makes a new room instead of sharing.
  const room = (() => {
    if (html.dataset.room) return html.dataset.room;
    let id = null;
    try {
      id = sessionStorage.getItem(ROOM_KEY);
      sessionStorage.removeItem(ROOM_KEY);
    } catch (_) { /* storage disabled */ }
    return id || randomId();
  })();

  const saveRoom = () => {
    if (html.dataset.room) return;
    try { sessionStorage.setItem(ROOM_KEY, room); } catch (_) { /* ignore */ }
  };

  // The last frame applied in each group (`broadcast`, `room_<room>`) as
  // {s: seq, e: epoch}, for the page's life: a reconnect asks for what came
  // after these. It starts at the position the page was rendered at, so a
  // frame published between the render and the first connect is delivered.
  const applied = new Map();
  for (const entry of ((me && me.getAttribute("data-liveview-resume")) || "").split(",")) {
    const [g, s, e] = entry.split(":");
    if (g && +s >= 0) applied.set(g, { s: +s, e: e || null });
  }

  // Upstream's `window.webSocketConfig = {host, protocol}` is honoured; the
  // protocol may be given as "wss", "wss:" or "wss://". `resume` says that
  // group frames should be numbered, and which were applied already
  // (`broadcast:41:EPOCH,room_x:17:EPOCH`; empty before any was received).
  const socketUrl = () => {
    const cfg = window.webSocketConfig || {};
    const proto = String(cfg.protocol || (location.protocol === "https:" ? "wss" : "ws"))
      .replace(/[:/]+$/, "");
    const resume = Array.from(applied, ([g, { s, e }]) => `${g}:${s}${e ? ":" + e : ""}`).join(",");
    return `${proto}://${cfg.host || location.host}/ws/liveview/${encodeURIComponent(room)}/` +
      `?resume=${encodeURIComponent(resume)}`;
  };

  // The HTTP transport's URL: Server-Sent Events down, POST up.
  const streamUrl = () => socketUrl().replace(/^ws/, "http").replace("/ws/liveview/", "/liveview/events/");

  // The HTTP transport, shaped like a WebSocket for the code below. Frames
  // come as the stream's `data:` events; its first event gives the token
  // that each call's POST carries, with the call's number in the stream.
  // Calls are POSTed one after another; one that got no answer is sent
  // again with the same number (the server runs each number once).
  function HttpSocket(url) {
    const s = { readyState: 0, kind: "sse" };
    const es = new EventSource(url);
    const out = [];
    let token, seq = 0, busy = false;
    const end = (code) => {
      if (s.readyState > 2) return;
      s.readyState = 3;
      es.close();
      setTimeout(() => s.onclose({ code }));
    };
    es.addEventListener("stream", (e) => {
      token = JSON.parse(e.data).token;
      s.readyState = 1;
      s.onopen();
    });
    es.onmessage = (e) => s.onmessage(e);
    es.addEventListener("close", (e) => end(JSON.parse(e.data).code));
    es.onerror = () => end(1006);
    const post = (tries) => {
      if (busy || !out.length || s.readyState !== 1) return;
      busy = true;
      fetch(url.replace(/\?.*/, ""), {
        method: "POST",
        body: out[0][1],
        headers: { "LiveView-Stream": token, "LiveView-Seq": out[0][0] },
      }).then((r) => {
        busy = false;
        // 400 and 413: the body was refused and the stream closes with
        // the code a socket would get (its event follows).
        if (r.ok || r.status === 400 || r.status === 413) { out.shift(); post(0); } else end(1006);
      }, () => {
        busy = false;
        if (tries < 3) setTimeout(() => post(tries + 1), 500 << tries); else end(1006);
      });
    };
    s.send = (text) => { out.push([++seq, text]); post(0); };
    s.close = () => end(1000);
    return s;
  }

  // Which transport: a WebSocket, unless there is none or sockets failed
  // (could not open, or were cut within FAST_CLOSE) FALLBACK_AFTER times in
  // a row; then the HTTP transport, from `sseSince` on, for UPGRADE_AFTER
  // (this tab's next pages included), when a socket is tried again.
  let wsFails = 0;
  let sseSince = 0;
  let upgradeTimer = 0;
  try { sseSince = +sessionStorage.getItem(TRANSPORT_KEY) || 0; } catch (_) { /* storage disabled */ }
  const upgradeIn = () => sseSince + conf("upgradeAfter", UPGRADE_AFTER) - Date.now();
  const useSse = () => !window.WebSocket || (sseSince && upgradeIn() > 0);
  const fellBack = (at) => {
    sseSince = at;
    try {
      if (at) sessionStorage.setItem(TRANSPORT_KEY, at); else sessionStorage.removeItem(TRANSPORT_KEY);
    } catch (_) { /* ignore */ }
  };

  // Back on the HTTP transport for long enough: try a socket again, when
  // no call is under way. One more failure falls back at once.
  function upgrade() {
    const sock = ws;
    if (!sock || sock.kind !== "sse" || !window.WebSocket) return;
    if (inflight.size || queue.length) { upgradeTimer = setTimeout(upgrade, 1000); return; }
    fellBack(0);
    wsFails = conf("fallbackAfter", FALLBACK_AFTER) - 1;
    ws = null;
    clearTimeout(beatTimer);
    sock.onclose = () => {};
    sock.close();
    connect();
  }

  let ws = null;         // current socket (or HTTP transport), connecting or open, else null
  let connected = null;  // null until the first open or close
  let attempt = 0;       // failed attempts since a socket last stayed open
  let retryTimer = 0;
  let notBefore = 0;     // no retry before this time (after a 1008)
  let openedAt = 0;      // when the current socket opened
  let beatTimer = 0;     // liveness: ping, then give up on the socket
  let pings = 0;
  let paused = false;    // page hidden into the back/forward cache
  let expired = false;   // the server closed with 4401: no more reconnects
  let lastRef = 0;       // last `ref` sent
  const queue = [];      // calls waiting for a connection
  const inflight = new Map(); // ref -> {fn, busy, at, resolve}

  const isOpen = () => !!ws && ws.readyState === 1;

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ws || paused || expired) return;
    let sock;
    openedAt = 0;
    try {
      sock = ws = useSse() ? HttpSocket(streamUrl()) : new WebSocket(socketUrl());
      sock.kind = sock.kind || "websocket";
    } catch (err) {
      console.error("LiveView: cannot open socket", err);
      ws = null;
      schedule(0);
      return;
    }
    sock.onopen = () => {
      openedAt = Date.now();
      html.setAttribute("data-liveview-transport", sock.kind);
      if (sock.kind === "sse" && window.WebSocket) upgradeTimer = setTimeout(upgrade, Math.max(upgradeIn(), 1000));
      alive(sock);
      setConnected(true);
      flush();
    };
    sock.onmessage = (e) => {
      alive(sock);
      receive(e.data);
    };
    sock.onclose = (e) => closed(sock, e.code);
  }

  // Liveness: after `heartbeat` ms without a frame the client sends
  // {"ping": n} (the server answers {"pong": n}); when nothing at all comes
  // within `deadAfter` ms more, the connection is dead (half-open TCP, a
  // laptop that slept): it is dropped and a new one made.
  function alive(sock) {
    clearTimeout(beatTimer);
    beatTimer = setTimeout(() => {
      try { sock.send(JSON.stringify({ ping: ++pings })); } catch (_) { /* closing */ }
      beatTimer = setTimeout(() => {
        try { sock.close(); } catch (_) { /* ignore */ }
        closed(sock, 1006);
      }, conf("deadAfter", 30000));
    }, conf("heartbeat", 25000));
  }

  // The socket is gone (closed by either side, or found dead). Runs once
  // per socket.
  function closed(sock, code) {
    if (ws !== sock) return;
    ws = null;
    clearTimeout(beatTimer);
    clearTimeout(upgradeTimer);
    // Only a socket that stayed open a while proves the server well: one
    // that accepts and closes at once (1008, 1013) meets a growing backoff.
    if (openedAt && Date.now() - openedAt >= STABLE) attempt = 0;
    // A socket that never opened, or was cut (1006: no close frame) just
    // after opening, failed: a proxy may be in the way. Any close the
    // server sent proves sockets get through.
    let fallback = false;
    if (sock.kind === "websocket") {
      if (!openedAt || (code === 1006 && Date.now() - openedAt < conf("fastClose", FAST_CLOSE))) {
        fallback = ++wsFails >= conf("fallbackAfter", FALLBACK_AFTER);
        if (fallback) { fellBack(Date.now()); attempt = 0; }
      } else wsFails = 0;
    }
    dropInflight();
    if (code === EXPIRED) expire();
    schedule(code);
    if (fallback && retryTimer) { clearTimeout(retryTimer); retryTimer = setTimeout(connect); }
    setConnected(false, code);
  }

  // The server ended the session (4401): reconnecting would not help.
  function expire() {
    if (expired) return;
    expired = true;
    queue.splice(0).forEach(lose);
    const el = doc.getElementById("session-expired");
    if (el) { el.hidden = false; el.style.display = ""; }
    emit("liveview:session-expired", { room });
  }

  // Exponential backoff with full jitter; never gives up while the page is
  // open, except on an expired session. A 1008 (policy: too many
  // connections, rate limit) waits at least POLICY_WAIT.
  let retryIn = 0;
  function schedule(code) {
    if (retryTimer || ws || paused || expired) return;
    const ceiling = Math.min(RETRY_CAP, RETRY_BASE * 2 ** Math.min(attempt++, 16));
    retryIn = Math.random() * ceiling + (code === 1008 ? POLICY_WAIT : 0);
    notBefore = Date.now() + (code === 1008 ? POLICY_WAIT : 0);
    retryTimer = setTimeout(connect, retryIn);
  }

  // Retry at once when there is a reason to believe it may work now.
  const retryNow = () => { if (!ws && Date.now() >= notBefore) connect(); };

  function setConnected(value, code) {
    if (connected === value) return;
    connected = value;
    html.setAttribute(A_CONNECTED, String(value));
    // After an expired session `#session-expired` speaks instead.
    const banner = doc.getElementById("no-connection");
    const hide = value || expired;
    if (banner) {
      banner.hidden = hide;
      banner.style.display = hide ? "none" : "";
      banner.classList.toggle("no-connection--show", !hide);
      banner.classList.toggle("no-connection--hide", hide);
    }
    emit(value ? "liveview:connected" : "liveview:disconnected",
      value ? { room } : { room, code, retryIn: retryTimer ? retryIn : null });
  }

  // Calls sent on a socket that closed will never be answered: clear their
  // loading state and report them. They are not sent again.
  function dropInflight() {
    const calls = [...inflight];
    inflight.clear();
    for (const [ref, call] of calls) lose(call, ref);
  }

  // A call that will not be answered: clear its loading state, report it.
  function lose(call, ref) {
    clearTimeout(call.timer);
    busyOff(call.busy);
    emit("liveview:call-lost", { function: call.fn, ref: ref == null ? null : ref });
    call.resolve(false);
  }

  function flush() {
    while (queue.length && isOpen()) transmit(queue.shift());
  }

  /* ------------------------------------------------------------------ *
   * 4. Calls and loading states
   * ------------------------------------------------------------------ */

  // Send a call now, or queue it until the socket is open. Resolves to true
  // when the server reports it done, false if it was lost or dropped. The
  // elements in `sources` (the trigger, the submitter) are busy from now
  // until then. `at` is the edit clock at the trigger (see section 8).
  function send(fn, form, data, sources) {
    return new Promise((resolve) => {
      const item = {
        msg: { function: fn, form: form || {}, data: data || {}, lang: html.lang || "", room },
        fn,
        source: sources && sources[0],
        busy: busyOn(sources || []),
        at: clock,
        resolve,
      };
      if (isOpen()) return transmit(item);
      if (expired) return lose(item);
      // One queued call per element and function: the newer replaces it.
      const twin = item.source && queue.findIndex((q) => q.source === item.source && q.fn === fn);
      if (twin >= 0) {
        const [old] = queue.splice(twin, 1);
        clearTimeout(old.timer);
        busyOff(old.busy);
        old.resolve(false);
      }
      queue.push(item);
      // A queued call is stale after a while: it is given up, not sent late.
      item.timer = setTimeout(() => {
        const i = queue.indexOf(item);
        if (i >= 0) lose(queue.splice(i, 1)[0]);
      }, conf("queueTimeout", 30000));
      if (queue.length > QUEUE_MAX) {
        console.warn("LiveView: offline queue full, dropping call", queue[0].fn);
        lose(queue.shift());
      }
      if (!ws && !retryTimer) connect();
    });
  }

  function transmit(item) {
    clearTimeout(item.timer);
    const ref = ++lastRef;
    item.msg.ref = ref;
    ws.send(JSON.stringify(item.msg));
    inflight.set(ref, item);
  }

  function finish(ref) {
    const call = inflight.get(ref);
    if (!call) return;
    inflight.delete(ref);
    busyOff(call.busy);
    call.resolve(true);
  }

  // Loading state: counted per element so overlapping calls nest correctly.
  // `calling` counts the calls of each trigger: a busy trigger ignores
  // further triggers (see `fire`), also when a loading target shows the state.
  const calling = new WeakMap();
  const busyCount = new WeakMap();
  const disabledByUs = new WeakSet();

  const bump = (map, key, by) => {
    const n = (map.get(key) || 0) + by;
    if (n > 0) map.set(key, n); else map.delete(key);
    return n;
  };

  function busyOn(sources) {
    const out = [];
    for (const source of sources) {
      const sel = source.getAttribute(A_LOADING_TARGET);
      const el = sel ? find(sel) : source;
      bump(calling, source, 1);
      out.push([source, el]);
      if (!el || bump(busyCount, el, 1) > 1) continue;
      el.setAttribute("aria-busy", "true");
      el.classList.add(LOADING_CLASS);
      if (isButton(el) && !el.disabled &&
          !el.hasAttribute(A_NO_DISABLE) && !source.hasAttribute(A_NO_DISABLE)) {
        el.disabled = true;
        disabledByUs.add(el);
      }
    }
    return out;
  }

  function busyOff(pairs) {
    for (const [source, el] of pairs || []) {
      bump(calling, source, -1);
      if (!el || bump(busyCount, el, -1) > 0) continue;
      el.removeAttribute("aria-busy");
      el.classList.remove(LOADING_CLASS);
      if (disabledByUs.delete(el)) el.disabled = false;
    }
  }

  /* ------------------------------------------------------------------ *
   * 5. Form and data collection
   * ------------------------------------------------------------------ */

  // `data-data-comment-id` is `dataCommentId` in the dataset and is sent as
  // `commentId`; the server turns camelCase into snake_case.
  function dataOf(el) {
    const out = {};
    for (const key in el.dataset) {
      if (/^data[A-Z]/.test(key)) out[key[4].toLowerCase() + key.slice(5)] = el.dataset[key];
    }
    return out;
  }

  const CONTROLS = "input,select,textarea";

  // The controls inside `box` that belong to no form.
  const loose = (box) => Array.from(box.querySelectorAll(CONTROLS)).filter((c) => !c.form);

  // The values of the element's form (the element itself when it is a form).
  // Outside a form: the controls of the element's container, its parent
  // element, so `<div><input name=q><button ...></div>` sends `q`. The page
  // itself is no container: an element directly inside `<body>` or the live
  // area sends its own value only (nothing when it is no control), never
  // every loose control of the page.
  // A submit also sends the button it was submitted with, as a browser does.
  function formOf(el, submitter) {
    const form = el.tagName === "FORM" ? el
      : (el.form instanceof HTMLFormElement ? el.form : el.closest("form"));
    if (form) {
      // Read `elements` from the prototype: a control named "elements" would shadow it.
      const out = collect(Object.getOwnPropertyDescriptor(HTMLFormElement.prototype, "elements").get.call(form));
      if (submitter && submitter.name && !submitter.disabled) out[submitter.name] = submitter.value;
      return out;
    }
    const box = el.parentElement;
    return collect(!box || box === doc.body || box === html || box.matches(ROOT)
      ? (el.matches(CONTROLS) ? [el] : []) : loose(box));
  }

  // A name ending in `[]` (`tags[]`) is a list, sent without the brackets:
  // the values of its checked boxes, or of its controls, however many the
  // page has (none checked: []). Otherwise a checkbox is true or false, and
  // several boxes sharing a plain name give the list of the checked values.
  function collect(controls) {
    const out = {};
    const checkboxes = {};
    for (const c of controls) {
      if (c.type === "checkbox" && c.name) checkboxes[c.name] = (checkboxes[c.name] || 0) + 1;
    }
    for (const c of controls) {
      let { name, type } = c;
      if (!name || !/^(INPUT|SELECT|TEXTAREA)$/.test(c.tagName) || c.matches(":disabled") ||
          /^(file|submit|button|reset|image)$/.test(type)) continue;
      const list = name.endsWith("[]");
      if (list) name = name.slice(0, -2);
      if (list || (type === "checkbox" && checkboxes[name] > 1)) {
        out[name] = (Array.isArray(out[name]) ? out[name] : []).concat(
          type === "select-multiple" ? Array.from(c.selectedOptions, (o) => o.value)
            : /^(checkbox|radio)$/.test(type) && !c.checked ? [] : [c.value]);
      } else if (type === "checkbox") {
        out[name] = c.checked;
      } else if (type === "radio") {
        if (c.checked) out[name] = c.value;
      } else if (type === "select-multiple") {
        out[name] = Array.from(c.selectedOptions, (o) => o.value);
      } else {
        out[name] = c.value;
      }
    }
    return out;
  }

  /* ------------------------------------------------------------------ *
   * 6. Event binding and actions
   *
   * Everything is delegated to document, so content inserted later works
   * without binding. Descriptors follow Stimulus:
   *   [event[.filter][@window|@document]->]page#(run|stop)[:prevent:stop:self]
   * ------------------------------------------------------------------ */

  const parsed = new Map(); // attribute value -> descriptors

  function descriptors(el) {
    const value = el.getAttribute(A_ACTION) || "";
    let list = parsed.get(value);
    if (!list) {
      list = value.split(/\s+/).map(parseDescriptor).filter(Boolean);
      parsed.set(value, list);
    }
    return list;
  }

  function parseDescriptor(token) {
    const arrow = token.indexOf("->");
    let ev = arrow < 0 ? "" : token.slice(0, arrow);
    const [target, ...opts] = token.slice(arrow < 0 ? 0 : arrow + 2).split(":");
    const [controller, method] = target.split("#");
    if (controller !== "page" || (method !== "run" && method !== "stop")) return null;
    let global = "";
    let filter = "";
    const at = ev.indexOf("@");
    if (at >= 0) [ev, global] = [ev.slice(0, at), ev.slice(at + 1)];
    const dot = ev.indexOf(".");
    if (dot >= 0) [ev, filter] = [ev.slice(0, dot), ev.slice(dot + 1)];
    return { ev, filter, global, method, opts };
  }

  // The event of a descriptor that names none, as Stimulus picks it.
  function defaultEvent(el) {
    switch (el.tagName) {
      case "FORM": return "submit";
      case "SELECT": return "change";
      case "TEXTAREA": return "input";
      case "DETAILS": return "toggle";
      case "INPUT":
        if (/^(checkbox|radio)$/.test(el.type)) return "change";
        return /^(submit|button|reset|image)$/.test(el.type) ? "click" : "input";
      default: return "click";
    }
  }

  function filterMatches(e, filter) {
    if (!filter) return true;
    const parts = filter.split("+");
    for (const p of parts) {
      if (MODIFIERS.includes(p)) {
        if (!e[p + "Key"]) return false;
      } else if (typeof e.key === "string") {
        const want = KEY_NAMES[p] || p;
        if (e.key.toLowerCase() !== want.toLowerCase()) return false;
      }
    }
    return true;
  }

  const listening = new Set();

  // Bubbling events are handled when they reach document; non-bubbling ones
  // (blur, focus, toggle, ...) in the capture phase, on their target only.
  function listen(type, global) {
    const key = (global || "") + ":" + type;
    if (listening.has(key)) return;
    listening.add(key);
    if (global === "window" || global === "document") {
      (global === "window" ? window : doc).addEventListener(type, (e) => onGlobal(global, e));
    } else {
      doc.addEventListener(type, (e) => { if (e.bubbles) onEvent(e); });
      doc.addEventListener(type, (e) => { if (!e.bubbles) onEvent(e); }, true);
    }
  }

  function onEvent(e) {
    let el = e.target;
    if (el && el.nodeType !== 1) el = el.parentElement;
    const root = el && el.closest ? el.closest(ROOT) : null;
    if (!root) return;
    for (; el; el = el.parentElement) {
      if (el.hasAttribute(A_ACTION) && dispatch(el, e, "")) {
        e.stopPropagation();
        return;
      }
      if (el === root || !e.bubbles) return;
    }
  }

  function onGlobal(global, e) {
    doc.querySelectorAll(`${ROOT} [${A_ACTION}*="@${global}"], ${ROOT}[${A_ACTION}*="@${global}"]`)
      .forEach((el) => dispatch(el, e, global));
  }

  // Runs the element's descriptors matching the event; true when one stops it.
  function dispatch(el, e, global) {
    let stop = false;
    for (const d of descriptors(el)) {
      if (d.global !== global || (d.ev || defaultEvent(el)) !== e.type ||
          !filterMatches(e, d.filter) || (d.opts.includes("self") && e.target !== el)) continue;
      if (d.opts.includes("prevent")) e.preventDefault();
      if (d.method === "stop" || d.opts.includes("stop")) stop = true;
      if (d.method === "run") run(el, e);
    }
    return stop;
  }

  const debounced = new Map(); // element -> timer of its pending call

  function run(el, e) {
    // A modified click on a link is left to the browser (new tab, ...).
    if (e.type === "click" && (e.ctrlKey || e.metaKey || e.shiftKey) && el.matches("a[href]")) return;
    // As upstream, the default action is prevented (no form submission, no
    // link navigation) except the toggle of a clicked checkbox or radio.
    if (!(e.type === "click" && /^(checkbox|radio)$/.test(el.type))) e.preventDefault();
    const submitter = e.type === "submit" && e.submitter instanceof Element ? e.submitter : null;
    const ms = parseInt(el.getAttribute(A_DEBOUNCE), 10);
    if (!(ms > 0)) return void fire(el, submitter);
    clearTimeout(debounced.get(el));
    debounced.set(el, setTimeout(() => {
      debounced.delete(el);
      if (el.isConnected) fire(el, submitter);
    }, ms));
  }

  // A form being submitted first sends the debounced calls of its controls,
  // so they never arrive after the submit (capture phase: before `run`).
  function flushDebounced(e) {
    for (const [el, timer] of debounced) {
      if (el !== e.target && (el.form === e.target || e.target.contains(el))) {
        clearTimeout(timer);
        debounced.delete(el);
        if (el.isConnected) fire(el);
      }
    }
  }

  // Value-carrying controls send every change; anything else (buttons,
  // links, forms, ...) is a one-shot trigger that ignores itself while its
  // call is pending, online or offline.
  const oneShot = (el) => isButton(el) || !/^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);

  // Extension point, for add-ons such as liveview-upload.js:
  // `LiveView.beforeCall(hook)` runs hook(el, form, data) before a call
  // triggered by an element is sent. The call waits for what it returns;
  // the hook may add to `form` and `data`, and `false` cancels the call.
  // Without hooks a call is sent at once, as before.
  const hooks = [];

  function fire(el, submitter) {
    const fn = el.getAttribute(A_FUNCTION);
    if (!fn) return void console.error(`LiveView: ${A_FUNCTION} is missing on`, el);
    if (oneShot(el) && calling.has(el)) return;
    const form = formOf(el, submitter), data = dataOf(el);
    const go = () => send(fn, form, data, submitter ? [el, submitter] : [el]);
    if (!hooks.length) return void go();
    Promise.all(hooks.map((hook) => hook(el, form, data)))
      .then((oks) => { if (!oks.includes(false)) go(); },
        (err) => console.error("LiveView: a beforeCall hook failed", err));
  }

  // `data-liveview-keyboard-map='{"ctrl+s": "save", "esc": "close"}'`, as
  // upstream: a key pressed while the focus is on the element or inside it
  // calls the mapped function with the element's form and data. The name is
  // the modifiers in the order ctrl, alt, meta, shift (no shift for letters
  // and digits), then the key: letters and digits as typed, or esc, enter,
  // space, tab, up, down, left, right, home, end, page_up, page_down. The
  // innermost element mapping the key wins.
  const keymaps = new Map(); // attribute value -> map, null when invalid

  function onKeyMap(e) {
    if (typeof e.key !== "string" || !(e.target instanceof Element)) return;
    const key = ["ctrl", "alt", "meta"].filter((m) => e[m + "Key"])
      .concat(e.shiftKey && !/^[a-z0-9]$/i.test(e.key) ? ["shift"] : [],
        KEY_ALIASES[e.key] || e.key.toLowerCase()).join("+");
    for (let el = e.target.closest(`[${A_KEYMAP}]`); el; el = el.parentElement && el.parentElement.closest(`[${A_KEYMAP}]`)) {
      const value = el.getAttribute(A_KEYMAP);
      if (!keymaps.has(value)) {
        let map = null;
        try { map = JSON.parse(value); } catch (_) { console.error(`LiveView: ${A_KEYMAP} is not JSON`, el); }
        keymaps.set(value, map && typeof map === "object" ? map : null);
      }
      const fn = (keymaps.get(value) || {})[key];
      if (typeof fn === "string" && el.closest(ROOT)) {
        e.preventDefault();
        return void send(fn, formOf(el), dataOf(el));
      }
    }
  }

  /* ------------------------------------------------------------------ *
   * 7. Observers (init, focus, intersect) and subtree scanning
   * ------------------------------------------------------------------ */

  const initDone = new WeakSet();
  let restoring = false;              // back/forward is putting content back
  const focusDone = new WeakSet();
  const observedBy = new WeakMap();   // element -> its IntersectionObserver
  const visible = new WeakSet();      // elements last reported in view
  const observers = new Map();        // threshold -> IntersectionObserver

  const init = (el) => send(el.getAttribute(A_INIT), formOf(el), dataOf(el));

  // Wire up everything under `root` (inclusive). Safe to call repeatedly.
  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    each(root, `[${A_ACTION}]`, (el) => {
      for (const d of descriptors(el)) listen(d.ev || defaultEvent(el), d.global);
    });
    each(root, INTERSECT, observe);
    each(root, `[${A_INIT}]`, (el) => {
      if (initDone.has(el)) return;
      initDone.add(el);
      // Back/forward brings back content that was initialised already.
      if (!restoring || el.hasAttribute(A_REINIT)) init(el);
    });
    each(root, `[${A_FOCUS}]`, (el) => {
      if (focusDone.has(el) || el.getAttribute(A_FOCUS) === "false") return;
      focusDone.add(el);
      el.focus();
    });
    // A keyboard map works while the focus is inside: the element can take it.
    each(root, `[${A_KEYMAP}]`, (el) => {
      if (el.tabIndex < 0 && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
    });
    each(root, `[${A_HOOK}]`, mount);
    waiting.forEach(mount);
  }

  // Forget elements that left the document.
  function forget(root) {
    if (!root.querySelectorAll) return;
    each(root, INTERSECT, (el) => {
      const io = observedBy.get(el);
      if (io) io.unobserve(el);
      observedBy.delete(el);
    });
  }

  function observe(el) {
    if (observedBy.has(el) || !window.IntersectionObserver) return;
    const px = parseInt(el.getAttribute(A_THRESHOLD), 10) || 0;
    let io = observers.get(px);
    if (!io) {
      io = new IntersectionObserver(onIntersect, { rootMargin: `${px}px` });
      observers.set(px, io);
    }
    io.observe(el);
    observedBy.set(el, io);
  }

  // `appear` on entering the (extended) viewport; `disappear` only after the
  // element has been seen, not for elements that start out of view.
  function onIntersect(entries) {
    for (const entry of entries) {
      const el = entry.target;
      const inView = entry.isIntersecting;
      if (!el.isConnected || inView === visible.has(el)) continue;
      if (inView) visible.add(el); else visible.delete(el);
      const fn = el.getAttribute(inView ? A_APPEAR : A_DISAPPEAR);
      if (fn) send(fn, formOf(el), dataOf(el));
    }
  }

  // Content inserted by other scripts is picked up too; the sets above keep
  // init and focus from firing twice for content we inserted ourselves.
  // Content they removed is torn down (ours is, before it goes).
  const mutations = new MutationObserver((records) => {
    for (const r of records) {
      r.removedNodes.forEach((n) => {
        if (n.nodeType === 1 && !n.isConnected) { forget(n); teardown(n); }
      });
      r.addedNodes.forEach((n) => { if (n.nodeType === 1 && n.isConnected) scan(n); });
    }
  });

  /* ------------------------------------------------------------------ *
   * 7b. Hooks, cleanups and form recovery
   *
   * `data-liveview-hook="Name"` mounts `window.LiveViewHooks.Name` (defined
   * before or after this script) on the element, as Phoenix does: an object
   * whose callbacks run with `this` an instance of it carrying `el` and
   * `call(functionName, data)`:
   *   mounted      the element is on the page and wired up
   *   updated      an update rendered into it, or into an element inside it
   *                (morphing: also one that patched it)
   *   destroyed    it leaves the page (before, when an update removes it)
   *   disconnected / reconnected   the connection dropped / came back
   * ------------------------------------------------------------------ */

  const hooked = new Map();   // element -> [hook instance, render it was mounted in]
  const waiting = new Set();  // hook elements whose hook is not defined yet
  const scripted = new Set(); // elements inline scripts ran with as `el`
  let renders = 0;

  function hookCall(inst, name) {
    if (typeof inst[name] !== "function") return;
    try { inst[name](); } catch (err) { console.error(`LiveView: hook ${name} failed`, err); }
  }

  function mount(el) {
    if (hooked.has(el)) return;
    if (!el.isConnected) return void waiting.delete(el);
    const def = (window.LiveViewHooks || {})[el.getAttribute(A_HOOK)];
    if (!def || typeof def !== "object") return void waiting.add(el);
    waiting.delete(el);
    const inst = Object.create(def);
    inst.el = el;
    // A call from JavaScript: the element's form; `data` defaults to its data.
    inst.call = (fn, data) => send(String(fn), formOf(el), data == null ? dataOf(el) : data);
    hooked.set(el, [inst, renders]);
    hookCall(inst, "mounted");
  }

  // Upstream's contract: a script may leave a function in `el.__cleanup`,
  // called once before `el` is replaced, removed, or its content replaced.
  function cleanup(el) {
    const fn = el.__cleanup;
    if (typeof fn !== "function") return;
    delete el.__cleanup;
    try { fn.call(el); } catch (err) { console.error("LiveView: __cleanup failed", err); }
  }

  // `root` (unless `inside`) and what is inside it leave the page: their
  // cleanups run, then their hooks are destroyed.
  function teardown(root, inside) {
    const gone = (el) => root.contains(el) && !(inside && el === root);
    for (const el of scripted) if (gone(el)) { scripted.delete(el); cleanup(el); }
    for (const [el, [inst]] of hooked) if (gone(el)) { hooked.delete(el); hookCall(inst, "destroyed"); }
    for (const el of waiting) if (gone(el)) waiting.delete(el);
  }

  // A reconnect (not the first connect) tells the hooks, and every form with
  // `data-liveview-recover="fn"` calls `fn` with the values the user sees, so
  // that state the server lost with the connection is rebuilt. These calls
  // go before the ones queued while offline.
  let opens = 0;
  function onConnection(e) {
    const up = e.type === "liveview:connected";
    if (!opens) return void (opens = +up);
    if (up) opens++;
    for (const [, [inst]] of hooked) hookCall(inst, up ? "reconnected" : "disconnected");
    if (up) doc.querySelectorAll(`form[${A_RECOVER}]`)
      .forEach((f) => send(f.getAttribute(A_RECOVER), formOf(f), dataOf(f)));
  }

  /* ------------------------------------------------------------------ *
   * 8. DOM updates
   * ------------------------------------------------------------------ */

  function receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (_) {
      return void console.error("LiveView: frame is not JSON", raw);
    }
    handle(frame);
  }

  function handle(frame) {
    if (!frame || typeof frame !== "object" || Array.isArray(frame)) {
      return void console.error("LiveView: frame is not an object", frame);
    }
    if (frame.pong != null) return; // liveness answer: its arrival is all that counts
    // A numbered group frame (`seq`, `group`, `epoch`) is applied once: one
    // at or below the last applied in its group and epoch was seen already.
    // A new epoch means the group's numbering restarted: the frame is
    // applied, and the page resyncs as it cannot know what it missed.
    const { seq, group } = frame;
    const epoch = typeof frame.epoch === "string" ? frame.epoch : null;
    let again = frame.resync === true;
    if (again) applied.clear();
    if (typeof seq === "number" && typeof group === "string") {
      const last = applied.get(group);
      if (last && (!last.e || !epoch || last.e === epoch)) {
        if (seq <= last.s) return;
      } else if (last) again = true;
      applied.set(group, { s: seq, e: epoch || (last && last.e) });
    }
    if (again) resync();
    try {
      apply(frame);
    } catch (err) {
      console.error("LiveView: failed to apply frame", err, frame);
    }
    if (frame.done === true && frame.ref != null) finish(frame.ref);
    emit("liveview:update", frame);
  }

  // The server could not replay what the page missed while disconnected
  // (too far behind, or the server restarted), or a group's numbering
  // restarted. Elements that opted in with `data-liveview-reinit` run their
  // init again to reload, unless a `liveview:resync` listener called
  // preventDefault() to do it its own way.
  function resync() {
    if (emit("liveview:resync", { room }, true)) each(html, `[${A_INIT}][${A_REINIT}]`, init);
  }

  // Order: error, title, target (html/append/remove), url, scroll, script.
  function apply(m) {
    if (m.error != null) {
      const call = m.ref != null && inflight.get(m.ref);
      console.error(`LiveView: server error: ${m.error}` + (call ? ` (calling "${call.fn}")` : ""));
      emit("liveview:error", { message: m.error, ref: m.ref == null ? null : m.ref });
    }
    // The page as the user leaves it, before the frame changes it.
    const left = m.url != null ? leaving(m.html != null && !m.remove ? m.target : null) : null;
    if (m.title != null) doc.title = m.title;

    if (m.target != null && (m.html != null || m.remove)) {
      const el = find(m.target);
      if (!el) {
        console.warn(`LiveView: target "${m.target}" not found`);
      } else if (m.remove) {
        cleanup(el);
        teardown(el);
        el.remove();
      } else {
        const call = m.ref != null && inflight.get(m.ref);
        render(el, String(m.html), m.append ? "append"
          : m.morph === true || el.hasAttribute(A_MORPH) ? "morph" : "replace", null, call ? call.at : null);
      }
    }

    if (m.url != null) {
      try {
        pushUrl(String(m.url), left);
      } catch (err) {
        console.error("LiveView: cannot change url", err);
      }
      // A new page starts at the top unless the frame says where to go.
      if (m.html != null && !m.append && !m.scroll && !m.scrollTop) window.scrollTo(0, 0);
    }
    if (m.scroll) {
      const el = find(m.scroll);
      if (el) el.scrollIntoView({ behavior: "smooth" });
      else console.warn(`LiveView: scroll target "${m.scroll}" not found`);
    }
    if (m.scrollTop) window.scrollTo({ top: 0, behavior: "smooth" });
    if (m.script) runCode(String(m.script), (m.target != null && find(m.target)) || null);
  }

  // What the user did wins over a reply that was made before it: the edit
  // clock ticks on every input and change the user makes, each call records
  // it when triggered, and a reply keeps the value of every control edited
  // since its call was triggered. A frame that answers no call of this page
  // keeps the value of the focused control. Either way the focused control
  // keeps its focus, caret and selection.
  let clock = 0;
  const edits = new WeakMap(); // control -> clock at its last edit

  // Put `markup` into `el`. `mode` is "replace", "append" or "morph". This
  // is the one place where content enters the page. `keep` maps ids to live
  // nodes that replace their namesakes in `markup`; `at` is the edit clock
  // of the call the frame answers (null: none).
  function render(el, markup, mode, keep, at) {
    const gen = ++renders;
    const tpl = doc.createElement("template");
    tpl.innerHTML = markup;
    const frag = tpl.content;
    const scripts = Array.from(frag.querySelectorAll("script"));
    if (mode !== "append") {
      cleanup(el);
      // Live nodes take the place of their namesakes: those given, and in
      // replace mode the target's `data-liveview-ignore` elements (with an
      // id), which keep their content and state as when morphing.
      keep = new Map(keep);
      if (mode === "replace") el.querySelectorAll(`[${A_IGNORE}][id]`).forEach((n) => keep.set(n.id, n));
      for (const [id, live] of keep) {
        const p = frag.getElementById(id);
        if (p && p !== live) p.replaceWith(live);
      }
    }
    const active = doc.activeElement;
    const mine = (c) => c && (at == null ? c === active : (edits.get(c) || 0) > at);
    const sel = active && active.selectionStart != null
      ? [active.selectionStart, active.selectionEnd, active.selectionDirection] : null;
    let added = Array.from(frag.children);
    if (mode === "morph") {
      morph(el, frag, mine);
      added = Array.from(el.children); // kept elements are skipped by scan
    } else if (mode === "append") el.append(frag);
    else {
      // The user's controls and the focused one live on in their new place.
      for (const c of el.querySelectorAll("input,select,textarea")) {
        const twin = (mine(c) || c === active) && counterpart(c, el, frag);
        if (twin) {
          patch(c, twin, mine);
          twin.replaceWith(c);
        }
      }
      teardown(el, true);
      el.replaceChildren(frag);
    }
    if (active && active !== doc.body && active.isConnected) {
      if (doc.activeElement !== active) active.focus({ preventScroll: true });
      if (sel) try { active.setSelectionRange(...sel); } catch (_) { /* not text */ }
    }
    added.forEach(scan);
    // Parsed scripts are inert. Inline ones run as a function of the
    // updated element; external ones load through a fresh copy.
    for (const old of scripts) {
      if (!old.isConnected || !classic(old)) continue;
      if (!old.src) { runCode(old.textContent, el); continue; }
      const s = doc.createElement("script");
      for (const a of old.attributes) s.setAttribute(a.name, a.value);
      s.nonce = old.nonce || nonce;
      s.async = false;
      old.replaceWith(s);
    }
    for (const [h, [inst, since]] of hooked) {
      if (since < gen && h.isConnected && (h.contains(el) || (mode === "morph" && el.contains(h)))) {
        hookCall(inst, "updated");
      }
    }
  }

  // The control in `frag` that stands for the live control `c` of `el`:
  // the one with its id, else the one with its name at the same position.
  function counterpart(c, el, frag) {
    const id = idOf(c);
    if (id) return frag.getElementById(id);
    if (!c.name) return null;
    const named = (root) => Array.from(root.querySelectorAll(c.tagName))
      .filter((x) => x.name === c.name && !idOf(x));
    const twin = named(frag)[named(el).indexOf(c)];
    return twin && twin.type === c.type ? twin : null;
  }

  // Morphing: `el`'s children are patched to become `frag`'s instead of
  // being replaced, so the nodes that stay keep their state. Elements are
  // matched by id among siblings (a keyed element that moved is moved),
  // else by position when their tags agree and neither has an id; others
  // are inserted or removed. Scrolled containers keep their scroll offsets;
  // `data-liveview-ignore` elements are left as they are. Scripts are never
  // matched: each one in the markup is new, and runs.
  function morph(el, frag, mine) {
    const scrolled = [el, ...el.querySelectorAll("*")]
      .filter((e) => e.scrollTop || e.scrollLeft)
      .map((e) => [e, e.scrollTop, e.scrollLeft]);
    patchChildren(el, frag, mine);
    for (const [e, top, left] of scrolled) {
      if (e.isConnected) { e.scrollTop = top; e.scrollLeft = left; }
    }
  }

  // `id` read as an attribute: a form's `id` property may be a control named "id".
  const idOf = (n) => (n.nodeType === 1 && n.getAttribute("id")) || "";

  const alike = (a, b) => a.nodeType === b.nodeType && (a.nodeType !== 1 ||
    (a.tagName === b.tagName && a.tagName !== "SCRIPT" && idOf(a) === idOf(b)));

  function patchChildren(from, to, mine) {
    const active = doc.activeElement;
    const wanted = new Set();   // ids in the new children
    for (const n of to.childNodes) if (idOf(n)) wanted.add(idOf(n));
    const byId = new Map();
    for (const o of from.childNodes) if (idOf(o)) byId.set(idOf(o), o);
    // An old node whose id appears in the new children waits for it.
    const free = (o) => !wanted.has(idOf(o));
    let cur = from.firstChild;  // the first old node not yet used
    for (const n of Array.from(to.childNodes)) {
      const id = idOf(n);
      let m = id && byId.get(id);
      if (m && alike(m, n)) {
        byId.delete(id);
        // Stale nodes before it go, rather than moving it (and its focus),
        // unless they hold the focus themselves.
        while (cur && cur !== m && free(cur) && !cur.contains(active)) cur = drop(cur);
      } else if (cur && free(cur) && alike(cur, n)) {
        m = cur;
      } else if (cur && free(cur) && cur.nextSibling && free(cur.nextSibling) &&
                 alike(cur.nextSibling, n)) {
        m = (cur = drop(cur)); // one node removed
      } else {
        m = null;
      }
      if (!m) {
        from.insertBefore(n, cur);
        continue;
      }
      if (m === cur) cur = cur.nextSibling;
      else from.insertBefore(m, cur);
      patch(m, n, mine);
    }
    while (cur) cur = drop(cur);
  }

  function drop(node) {
    const next = node.nextSibling;
    if (node.nodeType === 1) teardown(node);
    node.remove();
    return next;
  }

  // Make the live node `o` like the new node `n`, keeping the value of the
  // user's controls (`mine`) and a disabled state the loading state set.
  function patch(o, n, mine) {
    if (o.nodeType !== 1) {
      if (o.nodeValue !== n.nodeValue) o.nodeValue = n.nodeValue;
      return;
    }
    if (o.hasAttribute(A_IGNORE)) return;
    const own = mine(o);
    const busy = disabledByUs.has(o);
    const skip = (a) => (own && a.name === "value") || (busy && a.name === "disabled");
    for (const a of Array.from(o.attributes)) {
      if (!n.hasAttributeNS(a.namespaceURI, a.localName) && !skip(a)) o.removeAttributeNode(a);
    }
    for (const a of n.attributes) {
      // A copy of the parsed attribute: any name the parser accepted works.
      if (o.getAttributeNS(a.namespaceURI, a.localName) !== a.value && !skip(a)) {
        o.setAttributeNode(a.cloneNode());
      }
    }
    // The server disabled it too: it stays disabled when the call is done.
    if (busy && n.hasAttribute("disabled")) disabledByUs.delete(o);
    const tag = o.tagName;
    // What the user is typing lives in the children of these.
    if (!(own && (tag === "TEXTAREA" || o.isContentEditable))) {
      if (tag === "TEMPLATE") patchChildren(o.content, n.content, mine);
      else patchChildren(o, n, mine);
    }
    if (own) return;
    // Controls show the state the markup gives them, as a new one would.
    if (tag === "INPUT") {
      if (!/^(checkbox|radio|file)$/.test(o.type) && o.value !== n.value) o.value = n.value;
      o.checked = n.checked;
    } else if (tag === "TEXTAREA") {
      if (o.value !== n.value) o.value = n.value;
    } else if (tag === "OPTION" && !mine(o.closest("select"))) {
      o.selected = n.hasAttribute("selected");
    }
  }

  /* ------------------------------------------------------------------ *
   * 9. History
   *
   * A frame with `url` pushes a history entry. The entry being left is first
   * updated with the page as the user left it (the target's content from
   * before the frame), the new entry gets the current content of every area
   * seen so far. Back/forward puts the content of the entry back.
   *
   * A snapshot holds each area's markup with the values the user typed
   * (never passwords or files), the title, and the scroll positions of the
   * window and of scrolled elements with an id. Snapshots live in
   * `history.state` (so they survive a reload) when under SNAP_MAX
   * characters, and the last KEEP_MAX in memory; an entry with neither is
   * reloaded from the server. A `history` call that fails (a quota, a rate
   * limit) never stops the URL change: the entry is pushed without its
   * snapshot instead.
   * ------------------------------------------------------------------ */

  const SNAP_MAX = 512 * 1024;  // characters of markup in one entry's history.state
  const KEEP_MAX = 20;          // snapshots in memory, at most 4 * SNAP_MAX characters in all
  const firstSeen = {};     // area selector -> content before it was first recorded
  const leftAs = new Map(); // entry id -> snapshot as the user left it, oldest first
  let entryId = liveState() && liveState().id;

  function liveState() {
    const s = history.state;
    return s && typeof s === "object" && s.liveview ? s.liveview : null;
  }

  // An area's markup with the state of its controls written into it.
  function markupOf(el) {
    const copy = el.cloneNode(true);
    const live = el.querySelectorAll("input,textarea,option");
    copy.querySelectorAll("input,textarea,option").forEach((c, i) => {
      const o = live[i];
      if (c.tagName === "OPTION") c.toggleAttribute("selected", o.selected);
      else if (c.tagName === "TEXTAREA") c.textContent = o.value;
      else if (/^(checkbox|radio)$/.test(c.type)) c.toggleAttribute("checked", o.checked);
      else if (/^(password|file)$/.test(c.type)) c.removeAttribute("value");
      else c.setAttribute("value", o.value);
    });
    return copy.innerHTML;
  }

  // Areas inside a permanent element are live: never saved nor restored.
  const pinned = (el) => !el || !!el.closest(`[${A_PERMANENT}]`);

  function capture(selectors) {
    const areas = {};
    const scrolls = [];
    for (const sel of selectors) {
      const el = find(sel);
      if (pinned(el)) continue;
      areas[sel] = markupOf(el);
      for (const e of [el, ...el.querySelectorAll("[id]")]) {
        if (e.id && (e.scrollTop || e.scrollLeft)) scrolls.push([e.id, e.scrollTop, e.scrollLeft]);
      }
    }
    return { title: doc.title, areas, scrolls, x: window.scrollX, y: window.scrollY };
  }

  const sizeOf = (snap) => Object.values(snap.areas).reduce((n, h) => n + h.length, 0);

  // Keep a snapshot in memory; the oldest go first.
  function remember(id, snap) {
    leftAs.delete(id);
    leftAs.set(id, snap);
    let n = 0, total = 0;
    for (const [k, v] of [...leftAs].reverse()) {
      total += sizeOf(v);
      if (++n > KEEP_MAX || total > 4 * SNAP_MAX) leftAs.delete(k);
    }
  }

  // What goes into `history.state`: the snapshot when it is small enough.
  const entry = (id, snap) => ({ id, ...snap, areas: sizeOf(snap) > SNAP_MAX ? null : snap.areas });

  // The page before a frame with `url` changes it; `target` is the area it
  // renders into (null: none).
  function leaving(target) {
    const current = liveState();
    const selectors = new Set([...Object.keys(firstSeen), ...Object.keys((current && current.areas) || {})]);
    if (target != null && !pinned(find(target))) selectors.add(target);
    const snap = capture(selectors);
    if (target in snap.areas && !(target in firstSeen)) firstSeen[target] = snap.areas[target];
    return snap;
  }

  function pushUrl(url, left) {
    // Back/forward puts the scroll position back itself, after the content.
    history.scrollRestoration = "manual";
    const id = entryId || randomId();
    remember(id, left);
    const state = history.state && typeof history.state === "object" ? history.state : {};
    try {
      history.replaceState({ ...state, liveview: entry(id, left) }, "");
    } catch (err) {
      console.warn("LiveView: cannot save the page in its history entry", err);
    }
    entryId = randomId();
    const snap = capture(Object.keys(left.areas));
    try {
      history.pushState({ liveview: entry(entryId, snap) }, "", url);
    } catch (err) {
      console.warn("LiveView: history entry saved without its content", err);
      history.pushState({ liveview: { id: entryId } }, "", url);
    }
  }

  function onPopState(e) {
    const next = e.state && typeof e.state === "object" ? e.state.liveview : null;
    const saved = next && (leftAs.get(next.id) || (next.areas && next));
    const selectors = new Set(Object.keys(firstSeen));
    if (saved) Object.keys(saved.areas).forEach((s) => selectors.add(s));
    if (entryId) remember(entryId, capture(selectors));
    entryId = next ? next.id : null;
    if (!next) return;
    // Neither in memory nor in the entry: the server renders the page.
    if (!saved) return void location.reload();
    // Areas first recorded after this entry get their original content back.
    if (saved.title != null) doc.title = saved.title;
    restore({ ...firstSeen, ...saved.areas });
    for (const [id, top, left] of saved.scrolls || []) {
      const el = doc.getElementById(id);
      if (el) { el.scrollTop = top; el.scrollLeft = left; }
    }
    window.scrollTo(saved.x || 0, saved.y || 0);
    emit("liveview:history-restored", { url: location.href });
  }

  function restore(areas) {
    const keep = new Map();
    doc.querySelectorAll(PERMANENT).forEach((n) => keep.set(n.id, n));
    const order = Object.keys(areas).filter((sel) => {
      const el = find(sel);
      if (!el) console.warn(`LiveView: history area "${sel}" not found`);
      return !pinned(el);
    });
    // Outer areas before the areas inside them.
    order.sort((a, b) => {
      const ea = find(a);
      const eb = find(b);
      return ea.contains(eb) ? -1 : eb.contains(ea) ? 1 : 0;
    });
    restoring = true;
    try {
      for (const sel of order) {
        const el = find(sel);
        if (el && el.innerHTML !== areas[sel]) render(el, areas[sel], "replace", keep);
      }
    } finally { restoring = false; }
  }

  /* ------------------------------------------------------------------ *
   * 10. Public API and boot
   * ------------------------------------------------------------------ */

  // LiveView.call(name, {form, data, el}): `form` and `data` are objects or an
  // element to read them from; `el` gets the loading state while in flight.
  function call(fn, opts) {
    const { form, data, el } = opts || {};
    return send(
      String(fn),
      !(form instanceof Element) ? form
        : form.matches("form,input,select,textarea,button") ? formOf(form) : collect(loose(form)),
      data instanceof Element ? dataOf(data) : data,
      el instanceof Element ? [el] : null,
    );
  }

  function boot() {
    if (connected === null) html.setAttribute(A_CONNECTED, "false");
    BASE_EVENTS.forEach((type) => listen(type, ""));
    doc.addEventListener("submit", flushDebounced, true);
    // The edit clock: which control the user changed when (section 8).
    doc.addEventListener("input", (e) => {
      if (e.isTrusted && e.target.nodeType === 1) edits.set(e.target, ++clock);
    }, true);
    doc.addEventListener("keydown", onKeyMap);
    doc.addEventListener("liveview:connected", onConnection);
    doc.addEventListener("liveview:disconnected", onConnection);
    // Hooks the page defines later: assigned, or added by the time it loads.
    let defs = window.LiveViewHooks;
    try {
      Object.defineProperty(window, "LiveViewHooks", {
        configurable: true,
        enumerable: true,
        get: () => defs,
        set: (v) => { defs = v; waiting.forEach(mount); },
      });
    } catch (_) { /* a `var LiveViewHooks` of the page: read when scanning */ }
    window.addEventListener("load", () => waiting.forEach(mount));
    scan(html); // init calls made here wait in the queue for the first open
    mutations.observe(html, { childList: true, subtree: true });
    window.addEventListener("popstate", onPopState);
    window.addEventListener("online", retryNow);
    doc.addEventListener("visibilitychange", () => {
      if (doc.visibilityState === "visible") retryNow();
    });
    window.addEventListener("pagehide", () => {
      saveRoom();
      paused = true;
      clearTimeout(retryTimer);
      retryTimer = 0;
      if (ws) ws.close(1000);
    });
    window.addEventListener("pageshow", (e) => {
      if (!e.persisted) return;
      try { sessionStorage.removeItem(ROOM_KEY); } catch (_) { /* ignore */ }
      paused = false;
      connect();
    });
    connect();
  }

  window.LiveView = Object.freeze({
    version: VERSION,
    call,
    /** Apply a frame as if the server had sent it. */
    apply: handle,
    /** Wire up content inserted outside LiveView (also done automatically). */
    scan,
    /** Try to connect now instead of waiting for the next retry. */
    connect: retryNow,
    /** Add a hook(el, form, data) awaited before element calls (see fire). */
    beforeCall: (hook) => void hooks.push(hook),
    get socket() { return ws; },
    /** "websocket" or "sse" (the HTTP transport): the transport in use. */
    get transport() { return html.getAttribute("data-liveview-transport"); },
    get connected() { return connected === true; },
    /** "connecting", "open", "closing" or "closed" (waiting to retry). */
    get state() { return ws ? ["connecting", "open", "closing", "closed"][ws.readyState] : "closed"; },
    get room() { return room; },
    get url() { return socketUrl(); },
    get queued() { return queue.length; },
    get inflight() { return inflight.size; },
    /** The element of the inline script running under a CSP nonce. */
    get _el() { return running; },
  });

  if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", boot, { once: true });
  else boot();
})();
