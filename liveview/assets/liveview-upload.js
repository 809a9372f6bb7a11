/*!
 * LiveView for Rust: file uploads, an add-on to liveview.js.
 *
 * Load it after liveview.js (`liveview::upload::script_tag()`, or
 * `liveview_upload_script()` in minijinja). It follows PROTOCOL.md's
 * "Uploads": a form's files are announced over the socket, refused ones
 * get their error next to them at once, accepted ones are sent in chunks
 * over HTTP (resuming from the server's offset when a connection drops),
 * and the form's function is called when they all arrived, with each
 * file's token in `form` under the upload's name.
 *
 * It hooks into the core client through one extension point,
 * `LiveView.beforeCall(hook)`: the hook runs before a call triggered by an
 * element is sent, and the call waits for it.
 *
 * In the page:
 *   <input type="file" data-liveview-upload="photo" multiple>
 *   <progress data-liveview-upload-progress="photo"></progress>   (optional: all files together)
 *   <ul data-liveview-upload-list="photo"></ul>   (optional: where the file rows go;
 *                                                   by default right after the input)
 * Each chosen file gets a row: its name, a <progress>, an error message and
 * a remove button (which cancels its transfer). Rows carry
 * `data-state="ready|uploading|done|error"`.
 */
(() => {
  "use strict";

  const LV = window.LiveView;
  if (!LV || typeof LV.beforeCall !== "function") {
    return void console.error("LiveView uploads: load liveview.js (with beforeCall) first");
  }
  if (window.LiveViewUploads) return; // loaded twice

  const ANNOUNCE = "liveview_upload";
  const A_UPLOAD = "data-liveview-upload";
  const A_PROGRESS = "data-liveview-upload-progress";
  const A_LIST = "data-liveview-upload-list";
  const PARALLEL = 3;          // files sent at once per submit
  const RETRY_CAP = 10000;     // at most 10 s between attempts after a failure
  const doc = document;

  const inputs = new WeakMap();   // file input -> {entries}
  const answers = new Map();      // announcement id -> resolve(answer)
  const busy = new WeakSet();     // forms whose files are being sent
  const live = new Set();         // entries being sent, for pagehide

  const emit = (name, detail) => doc.dispatchEvent(new CustomEvent(name, { detail }));
  const randomId = () => Math.random().toString(36).slice(2) + Date.now().toString(36);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // The announcement's answer arrives as a frame with `upload` (to the
  // caller only), before the call's `done`.
  doc.addEventListener("liveview:update", (e) => {
    const up = e.detail && e.detail.upload;
    const resolve = up && answers.get(up.id);
    if (resolve) {
      answers.delete(up.id);
      resolve(up);
    }
  });

  /* Rows: one per chosen file. */

  function listOf(input) {
    const name = input.getAttribute(A_UPLOAD);
    const box = input.form || doc;
    let list = Array.from(box.querySelectorAll(`[${A_LIST}]`))
      .find((el) => el.getAttribute(A_LIST) === name);
    if (!list) {
      list = doc.createElement("ul");
      list.className = "liveview-upload-list";
      list.setAttribute(A_LIST, name);
      input.after(list);
    }
    return list;
  }

  function row(entry) {
    const li = doc.createElement("li");
    li.className = "liveview-upload-file";
    const name = doc.createElement("span");
    name.className = "liveview-upload-name";
    name.textContent = entry.file.name;
    const bar = doc.createElement("progress");
    bar.max = entry.file.size || 1;
    bar.value = 0;
    const error = doc.createElement("span");
    error.className = "liveview-upload-error";
    error.setAttribute("role", "alert");
    const remove = doc.createElement("button");
    remove.type = "button";
    remove.className = "liveview-upload-remove";
    remove.setAttribute("aria-label", `Remove ${entry.file.name}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => drop(entry));
    li.append(name, " ", bar, " ", error, " ", remove);
    entry.row = li;
    entry.bar = bar;
    entry.error = error;
    set(entry, "ready");
    return li;
  }

  function set(entry, state, message) {
    entry.state = state;
    entry.row.dataset.state = state;
    entry.error.textContent = message || "";
  }

  function progress(entry, offset) {
    entry.offset = offset;
    entry.bar.value = offset;
    const st = inputs.get(entry.input);
    const all = st.entries.filter((e) => e.state !== "error");
    const name = entry.input.getAttribute(A_UPLOAD);
    const total = all.reduce((n, e) => n + e.file.size, 0) || 1;
    const done = all.reduce((n, e) => n + (e.offset || 0), 0);
    doc.querySelectorAll(`[${A_PROGRESS}]`).forEach((el) => {
      if (el.getAttribute(A_PROGRESS) !== name) return;
      el.max = total;
      el.value = done;
    });
    emit("liveview:upload-progress", { upload: name, name: entry.file.name, loaded: offset, size: entry.file.size });
  }

  // New files chosen: the old rows (and transfers) go, new rows come.
  doc.addEventListener("change", (e) => {
    const input = e.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.hasAttribute(A_UPLOAD)) return;
    const old = inputs.get(input);
    if (old) old.entries.forEach((entry) => { cancel(entry); entry.row.remove(); });
    const list = listOf(input);
    const entries = Array.from(input.files || [], (file) => ({ file, input }));
    inputs.set(input, { entries });
    entries.forEach((entry) => list.append(row(entry)));
  }, true);

  // The remove button: cancel the transfer, forget the file, take it out
  // of the input.
  function drop(entry) {
    cancel(entry);
    entry.row.remove();
    const st = inputs.get(entry.input);
    if (!st) return;
    st.entries = st.entries.filter((e) => e !== entry);
    try {
      const files = new DataTransfer();
      st.entries.forEach((e) => files.items.add(e.file));
      entry.input.files = files.files;
    } catch (_) { /* the browser cannot rebuild a FileList: the row is gone anyway */ }
  }

  function cancel(entry) {
    entry.removed = true;
    if (entry.ctrl) entry.ctrl.abort();
    live.delete(entry);
    if (entry.url && entry.state !== "done") {
      fetch(entry.url, { method: "DELETE", keepalive: true, credentials: "same-origin" }).catch(() => {});
    }
  }

  // Leaving the page cancels what is still being sent.
  window.addEventListener("pagehide", () => [...live].forEach(cancel));

  /* Announcement and transfer. */

  async function announce(name, entries) {
    const id = randomId();
    const answer = new Promise((resolve) => answers.set(id, resolve));
    const files = entries.map((e) => ({ name: e.file.name, size: e.file.size, type: e.file.type }));
    const sent = await LV.call(ANNOUNCE, { data: { upload: name, id, files } });
    if (!sent) {
      answers.delete(id);
      return null;
    }
    return answer;
  }

  async function head(entry) {
    const res = await fetch(entry.url, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
    if (res.status === 204) return Number(res.headers.get("Upload-Offset"));
    throw res;
  }

  async function message(res) {
    try { return (await res.json()).error; } catch (_) { return null; }
  }

  // Send one file from its acknowledged offset; resolves when it is all
  // there or it failed for good. A dropped connection or a server error is
  // retried (with backoff) from the offset the server reports.
  async function transfer(entry) {
    const chunk = entry.chunk || 65536;
    set(entry, "uploading");
    live.add(entry);
    let offset = entry.offset || 0;
    let failures = 0;
    while (offset < entry.file.size) {
      if (entry.removed) return;
      entry.ctrl = new AbortController();
      try {
        if (failures) offset = await head(entry);
        if (offset >= entry.file.size) break;
        const res = await fetch(entry.url, {
          method: "PATCH",
          headers: { "Upload-Offset": String(offset) },
          body: entry.file.slice(offset, offset + chunk),
          credentials: "same-origin",
          signal: entry.ctrl.signal,
        });
        if (res.status === 204 || res.status === 409) {
          offset = Number(res.headers.get("Upload-Offset"));
          failures = 0;
          progress(entry, offset);
          continue;
        }
        if (res.status === 408 || res.status >= 500) throw res;
        live.delete(entry);
        return void set(entry, "error", (await message(res)) || "Upload refused");
      } catch (err) {
        if (entry.removed) return;
        if (err instanceof Response && err.status !== 408 && err.status < 500) {
          live.delete(entry);
          return void set(entry, "error", (await message(err)) || "Upload refused");
        }
        // Network gone or server busy: wait (longer each time), then ask
        // the server where to go on.
        failures++;
        await sleep(Math.min(RETRY_CAP, 250 * 2 ** Math.min(failures, 6)));
      }
    }
    live.delete(entry);
    progress(entry, entry.file.size);
    set(entry, "done");
  }

  async function pool(entries) {
    const queue = entries.slice();
    const worker = async () => {
      while (queue.length) await transfer(queue.shift());
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
  }

  // Before a call from a form with upload inputs: send the files, put
  // their tokens in the form, and let the call go when at least one file
  // of each input that had some arrived.
  LV.beforeCall(async (el, form) => {
    const f = el.tagName === "FORM" ? el : (el.form || el.closest("form"));
    if (!f) return true;
    const uploads = Array.from(f.querySelectorAll(`input[type=file][${A_UPLOAD}]`));
    if (!uploads.length) return true;
    if (busy.has(f)) return false; // a second submit while sending: ignored
    busy.add(f);
    try {
      for (const input of uploads) {
        const name = input.getAttribute(A_UPLOAD);
        const st = inputs.get(input);
        const entries = st ? st.entries.filter((e) => !e.removed) : [];
        if (!entries.length) continue;
        const fresh = entries.filter((e) => e.state === "ready" || (e.state === "error" && !e.token));
        if (fresh.length) {
          fresh.forEach((e) => set(e, "uploading"));
          const answer = await announce(name, fresh);
          if (!answer) {
            fresh.forEach((e) => set(e, "error", "Not sent: the connection was lost"));
            return false;
          }
          fresh.forEach((e, i) => {
            const a = answer.files[i] || {};
            if (a.token) {
              e.token = a.token;
              e.url = a.url;
              e.chunk = answer.chunk;
            } else {
              set(e, "error", a.error || "Upload refused");
            }
          });
        }
        await pool(entries.filter((e) => e.token && e.state !== "done" && e.state !== "error"));
        const done = entries.filter((e) => e.state === "done" && !e.removed);
        if (!done.length) return false;
        form[name] = done.map((e) => e.token);
        // Sent files leave the input; refused ones stay, with their message.
        done.forEach((e) => e.row.remove());
        st.entries = st.entries.filter((e) => !done.includes(e));
        if (!st.entries.length) input.value = "";
      }
      return true;
    } finally {
      busy.delete(f);
    }
  });

  window.LiveViewUploads = { version: "0.1.0" };
})();
