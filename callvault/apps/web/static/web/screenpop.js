// Screen-pop: a card for each ringing call (top right; full width on phones), on every page.
// Listens on WebSocket /ws/events/; the server sends only calls this user may see, with a caller
// card (customer, last call, last note, warnings). The card follows the call: 呼出中 -> 応答: 担当者
// -> 終了, then fades. Desktop notifications when the tab is hidden, once allowed from the button.
(function () {
  "use strict";
  const root = document.getElementById("screenpop");
  if (!root || !("WebSocket" in window)) return;
  const t = root.dataset; // translated strings (data-*), see base.html
  const cards = new Map(); // call id -> {el, timer}
  const ENDED_FADE_MS = 8000;
  const RINGING_MAX_MS = 120000; // a call that never says more is taken down after this
  let socket = null;
  let attempt = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function link(href, cls, text) {
    const a = el("a", cls, text);
    a.href = href;
    return a;
  }

  function remove(id, fade) {
    const item = cards.get(id);
    if (!item) return;
    clearTimeout(item.timer);
    cards.delete(id);
    if (!fade) {
      item.el.remove();
      return;
    }
    item.el.classList.add("screenpop-leaving");
    setTimeout(() => item.el.remove(), 400);
  }

  function later(id, ms) {
    const item = cards.get(id);
    if (!item) return;
    clearTimeout(item.timer);
    item.timer = setTimeout(() => remove(id, true), ms);
  }

  function build(call, card) {
    const box = el("article", "screenpop-card");
    box.setAttribute("role", "alert");
    box.dataset.callId = call.id;
    box.dataset.number = (card && card.number) || call.caller_e164 || "";
    const head = el("div", "screenpop-head");
    head.append(el("span", "screenpop-kind", t.incoming));
    head.append(el("span", "screenpop-number num", (card && card.number_display) || call.caller_number || t.unknownNumber));
    const close = el("button", "screenpop-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", t.close);
    close.addEventListener("click", () => remove(call.id, false));
    head.append(close);
    box.append(head);

    const body = el("div", "screenpop-body");
    const customer = card && card.customer;
    if (customer) {
      const who = el("div", "screenpop-who");
      who.append(el("strong", "screenpop-name", customer.name || ""));
      if (customer.company) who.append(el("span", "screenpop-company", customer.company));
      body.append(who);
    } else {
      const who = el("div", "screenpop-who");
      const kind = card && card.kind;
      who.append(el("strong", "screenpop-name", kind === "withheld" || kind === "payphone" ? card.number_display : t.unknownCaller));
      if (call.caller_name) who.append(el("span", "screenpop-company", call.caller_name));
      body.append(who);
    }
    const warnings = (card && card.warnings) || [];
    const tags = (card && card.tags) || [];
    if (warnings.length || tags.length) {
      const row = el("div", "screenpop-tags");
      for (const w of warnings) {
        const badge = el("span", "badge badge-danger screenpop-warning", w.label || w.kind);
        if (w.reason) badge.title = w.reason;
        row.append(badge);
      }
      const shown = new Set(warnings.map((w) => w.label));
      for (const tag of tags) if (!shown.has(tag)) row.append(el("span", "badge badge-neutral", tag));
      body.append(row);
    }
    const last = card && card.last_call;
    if (last) {
      const line = el("div", "screenpop-line");
      line.append(el("span", "screenpop-label", t.lastCall));
      const text = [last.started_at_display || "", last.agent || ""].filter(Boolean).join(" · ");
      line.append(last.url ? link(last.url, "", text) : el("span", "", text));
      body.append(line);
    }
    const note = card && card.last_note;
    if (note && note.text) {
      const line = el("div", "screenpop-line screenpop-note");
      line.append(el("span", "screenpop-label", t.lastNote));
      line.append(el("span", "", note.text));
      const by = [note.author || "", note.created_at_display || ""].filter(Boolean).join(" · ");
      if (by) line.append(el("span", "muted small", by));
      body.append(line);
    }
    box.append(body);

    const foot = el("div", "screenpop-foot");
    const status = el("span", "screenpop-status", t.ringing);
    status.setAttribute("role", "status");
    foot.append(status);
    if (customer && customer.url) foot.append(link(customer.url, "btn btn-primary btn-sm", t.openCustomer));
    else if (card && card.create_url && card.kind === "normal") {
      foot.append(link(card.create_url, "btn btn-primary btn-sm screenpop-create", t.createCustomer));
    }
    box.append(foot);
    return box;
  }

  function setStatus(id, state, text) {
    const item = cards.get(id);
    if (!item) return;
    item.el.dataset.state = state;
    item.el.querySelector(".screenpop-status").textContent = text;
  }

  function notify(call, card) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
    const who = card && card.customer ? [card.customer.name, card.customer.company].filter(Boolean).join(" / ") : t.unknownCaller;
    const warn = ((card && card.warnings) || []).map((w) => w.label).join(" ");
    try {
      const n = new Notification(t.incoming + " " + ((card && card.number_display) || call.caller_number || ""), {
        body: [who, warn].filter(Boolean).join("\n"),
        tag: "callvault-" + call.id,
      });
      n.onclick = () => {
        window.focus();
        n.close();
      };
    } catch (_err) {
      /* some browsers allow notifications only from a service worker */
    }
  }

  function onEvent(msg) {
    const call = msg.call;
    if (!call || typeof call.id !== "string") return;
    const known = cards.has(call.id);
    if (!known && msg.card && (msg.type === "call.ringing" || msg.type === "call.answered")) {
      const box = build(call, msg.card);
      cards.set(call.id, { el: box, timer: 0 });
      root.prepend(box);
      later(call.id, RINGING_MAX_MS);
      if (msg.type === "call.ringing") notify(call, msg.card);
    }
    if (!cards.has(call.id)) return;
    if (msg.type === "call.answered" || (call.state === "active" && msg.type === "call.updated")) {
      const agent = call.agent && call.agent.name;
      setStatus(call.id, "answered", agent ? t.answeredBy.replace("{name}", agent) : t.answered);
      later(call.id, RINGING_MAX_MS);
    } else if (msg.type === "call.ended" || msg.type === "call.completed") {
      setStatus(call.id, "ended", call.state === "cancelled" ? t.missed : t.ended);
      later(call.id, ENDED_FADE_MS);
    }
  }

  function connect() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(proto + "//" + window.location.host + (t.ws || "/ws/events/"));
    socket.addEventListener("open", () => {
      attempt = 0;
      root.dataset.connected = "1";
    });
    socket.addEventListener("message", (ev) => {
      try {
        onEvent(JSON.parse(ev.data));
      } catch (_err) {
        /* a message this page does not understand */
      }
    });
    socket.addEventListener("close", (ev) => {
      root.dataset.connected = "";
      if (ev.code === 4401) return; // logged out: the next page load logs in again
      const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt = Math.min(attempt + 1, 10);
      setTimeout(connect, delay);
    });
  }

  // Desktop notifications: asked for only when the user presses the button.
  const button = document.getElementById("screenpop-notify");
  if (button && "Notification" in window) {
    const show = () => {
      button.hidden = Notification.permission !== "default";
    };
    show();
    button.addEventListener("click", () => {
      Notification.requestPermission().then(show, show);
    });
  }

  connect();
})();
