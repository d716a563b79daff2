// The calls list: rows appear and update live (WebSocket /ws/events/), rows open the call page.
// Rows are rendered by the server (/calls/<id>/row, through the access helper and the list's
// filters), so this file never builds markup from event data.
(() => {
  "use strict";
  // On a phone the filters fold away unless some are in use, so the calls come first.
  const toggle = document.getElementById("filters-toggle");
  if (toggle && !toggle.dataset.active && window.matchMedia("(max-width: 760px)").matches) {
    toggle.open = false;
  }
})();

(() => {
  "use strict";
  const cfgEl = document.getElementById("live-config");
  const body = document.getElementById("calls-body");
  if (!cfgEl || !body) return;
  const cfg = JSON.parse(cfgEl.textContent);
  const S = cfg.strings || {};
  const ZERO = "00000000-0000-0000-0000-000000000000";
  const MAX_ROWS = 200;
  const status = document.getElementById("live-status");
  const notice = document.getElementById("new-calls");
  const noticeLink = document.getElementById("new-calls-link");
  const unseen = new Set();
  const timers = new Map();
  let socket = null;
  let attempt = 0;
  let hadConnection = false;

  // A click anywhere on a row opens the call (the date cell holds the real link for keyboards).
  body.addEventListener("click", (ev) => {
    if (ev.target.closest("a, button, input, select, label, summary")) return;
    if (String(window.getSelection ? window.getSelection() : "").length) return;
    const tr = ev.target.closest("tr[data-href]");
    if (tr) window.location.href = tr.dataset.href;
  });

  function setStatus(state) {
    if (!status) return;
    status.dataset.state = state;
    if (S[state]) status.textContent = S[state];
  }

  function rowUrl(id) {
    return cfg.row.replace(ZERO, encodeURIComponent(id)) + (cfg.query ? "?" + cfg.query : "");
  }

  function startedOf(tr) {
    const t = tr.querySelector("time");
    return t ? Date.parse(t.getAttribute("datetime")) : 0;
  }

  function place(tr) {
    const when = startedOf(tr);
    for (const other of body.querySelectorAll("tr[data-call-id]")) {
      if (startedOf(other) <= when) {
        body.insertBefore(tr, other);
        return;
      }
    }
    body.appendChild(tr);
  }

  function showUnseen() {
    if (!notice || !noticeLink || !unseen.size) return;
    noticeLink.textContent = (S.newCalls || "%(n)s").replace("%(n)s", String(unseen.size));
    notice.hidden = false;
  }

  async function refresh(id) {
    const existing = body.querySelector('tr[data-call-id="' + CSS.escape(id) + '"]');
    if (!existing && !cfg.firstPage) {
      unseen.add(id);
      showUnseen();
      return;
    }
    let res;
    try {
      res = await fetch(rowUrl(id), { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (_err) {
      return;
    }
    if (res.redirected || res.status !== 200) return; // 204: not in this filtered list; 404: not yours
    const tpl = document.createElement("template");
    tpl.innerHTML = (await res.text()).trim();
    const tr = tpl.content.querySelector("tr[data-call-id]");
    if (!tr) return;
    const current = body.querySelector('tr[data-call-id="' + CSS.escape(id) + '"]');
    if (current) {
      current.replaceWith(tr);
    } else {
      place(tr);
      tr.classList.add("is-new");
      const empty = document.getElementById("calls-empty");
      if (empty) empty.remove();
      const rows = body.querySelectorAll("tr[data-call-id]");
      for (let i = MAX_ROWS; i < rows.length; i++) rows[i].remove();
    }
  }

  function schedule(id) {
    // Events of one call often come in bursts (ringing, answered, ...): fetch once per burst.
    clearTimeout(timers.get(id));
    timers.set(
      id,
      setTimeout(() => {
        timers.delete(id);
        refresh(id);
      }, 120),
    );
  }

  async function resync() {
    // After a reconnect some events may have been missed: take the first page again.
    if (!cfg.firstPage) return;
    try {
      const res = await fetch(window.location.href, { credentials: "same-origin" });
      if (res.redirected || !res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("calls-body");
      if (fresh) body.replaceChildren(...fresh.children);
    } catch (_err) {
      /* the next event or reconnect tries again */
    }
  }

  function connect() {
    setStatus("connecting");
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(proto + "//" + window.location.host + cfg.ws);
    socket.addEventListener("open", () => {
      if (hadConnection || attempt > 0) resync();
      hadConnection = true;
      attempt = 0;
      setStatus("open");
    });
    socket.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_err) {
        return;
      }
      if (msg && msg.call && typeof msg.call.id === "string") schedule(msg.call.id);
    });
    socket.addEventListener("close", (ev) => {
      if (ev.code === 4401) {
        setStatus("closed"); // logged out or session expired: do not hammer the server
        return;
      }
      const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt = Math.min(attempt + 1, 10);
      setStatus("connecting");
      setTimeout(connect, delay);
    });
  }

  if ("WebSocket" in window) connect();
})();
