// The local workspace page's script: live updates over server-sent events (a reload every few seconds where
// EventSource is missing), and what the person does posted to /workspace/… as JSON. The server draws the page
// whole; this only keeps it current. No framework, no build step.
"use strict";

(function () {
  const body = document.body;
  const me = body.dataset.user;
  const channel = body.dataset.channel;
  const threadTs = body.dataset.threadTs || "";
  const statusLine = document.getElementById("ws-status");
  const panes = {
    channel: document.getElementById("ws-messages"),
    thread: document.getElementById("ws-thread-messages"),
  };

  function say(text, failed) {
    statusLine.textContent = text;
    statusLine.classList.toggle("ws-failed", Boolean(failed));
  }

  function url(params) {
    const query = new URLSearchParams({ as: me, channel: channel });
    for (const [key, value] of Object.entries(params || {})) {
      if (value) query.set(key, value); else query.delete(key);
    }
    return "/?" + query.toString();
  }

  async function post(path, payload, doing) {
    say(doing + "…");
    body.classList.add("ws-busy");
    try {
      const answer = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ as: me }, payload)),
      });
      const data = await answer.json().catch(() => ({ ok: false, error: "HTTP " + answer.status }));
      if (!answer.ok || !data.ok) {
        say(doing + " failed: " + (data.error || answer.status), true);
        return null;
      }
      say(doing + ": done");
      return data;
    } catch (error) {
      say(doing + " failed: " + error, true);
      return null;
    } finally {
      body.classList.remove("ws-busy");
    }
  }

  // Live updates.

  function paneOf(name) {
    return panes[name] || null;
  }

  function showMessage(data) {
    const pane = paneOf(data.pane);
    if (!pane) return;
    const holder = document.createElement("div");
    holder.innerHTML = data.html;
    const fresh = holder.firstElementChild;
    if (!fresh) return;
    const old = pane.querySelector('[data-ts="' + CSS.escape(data.ts) + '"].msg');
    if (old) {
      old.replaceWith(fresh);
    } else {
      const empty = pane.querySelector(".ws-empty");
      if (empty) empty.remove();
      const stick = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 80;
      pane.appendChild(fresh);
      if (stick) pane.scrollTop = pane.scrollHeight;
    }
    fresh.classList.add("ws-fresh");
    setTimeout(() => fresh.classList.remove("ws-fresh"), 1500);
  }

  function removeMessage(data) {
    const pane = paneOf(data.pane);
    const old = pane && pane.querySelector('[data-ts="' + CSS.escape(data.ts) + '"].msg');
    if (old) old.remove();
  }

  function showUnread(counts) {
    for (const badge of document.querySelectorAll(".ws-unread")) {
      const count = counts[badge.dataset.channel] || 0;
      badge.textContent = String(count);
      badge.hidden = count === 0 || badge.dataset.channel === channel;
    }
  }

  function showView(data) {
    const modal = document.getElementById("ws-modal");
    modal.innerHTML = data.html;
    modal.hidden = !data.html;
  }

  function listen() {
    if (!window.EventSource) {
      setTimeout(() => location.reload(), 5000);
      return;
    }
    const query = new URLSearchParams({ page: body.dataset.feed, as: me, channel: channel });
    if (threadTs) query.set("thread", threadTs);
    const events = new EventSource("/events?" + query.toString());
    const parse = (handler) => (event) => handler(JSON.parse(event.data));
    events.addEventListener("message", parse(showMessage));
    events.addEventListener("remove", parse(removeMessage));
    events.addEventListener("unread", parse(showUnread));
    events.addEventListener("view", parse(showView));
    events.addEventListener("open", () => body.classList.add("ws-live"));
    events.addEventListener("error", () => body.classList.remove("ws-live"));
  }

  // What the person does.

  function act(control, extra) {
    if (control.dataset.ephemeral) {
      say("The stand-in cannot send clicks on ephemeral messages yet", true);
      return;
    }
    if (control.dataset.confirm && !window.confirm(control.dataset.confirm)) return;
    const payload = Object.assign(
      { channel: control.dataset.channel, ts: control.dataset.ts, action_id: control.dataset.actionId },
      extra,
    );
    post("/workspace/actions", payload, "Sending the click");
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button, a");
    if (!target) return;
    if (target.matches("button.bk-action")) {
      event.preventDefault();
      if (target.dataset.url) window.open(target.dataset.url, "_blank", "noopener");
      act(target, { value: target.dataset.value || null });
    } else if (target.matches(".thread-link")) {
      event.preventDefault();
      location.href = url({ channel: target.dataset.channel, thread: target.dataset.threadTs });
    } else if (target.id === "ws-alert-menu") {
      const list = document.getElementById("ws-alert-list");
      list.hidden = !list.hidden;
      target.setAttribute("aria-expanded", String(!list.hidden));
    } else if (target.matches(".ws-test-alert")) {
      document.getElementById("ws-alert-list").hidden = true;
      post("/workspace/alerts", { sample: target.dataset.sample }, "Sending the test alert " + target.textContent);
    } else if (target.matches(".modal-close")) {
      const form = target.closest("form.modal");
      if (form) post("/workspace/views/" + encodeURIComponent(form.dataset.viewId) + "/close", {}, "Closing");
      showView({ html: "" });
    }
  });

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.id === "ws-user") {
      location.href = url({ as: target.value });
    } else if (target.matches("select.bk-action")) {
      act(target, { option: target.value });
    }
  });

  function viewValues(form) {
    const values = {};
    for (const control of form.querySelectorAll("[name]")) {
      if ((control.type === "radio" || control.type === "checkbox") && !control.checked) continue;
      if (control.tagName === "SELECT" && control.multiple) {
        values[control.name] = Array.from(control.selectedOptions, (o) => o.value).join(",") || null;
      } else if (!(control.name in values) || control.type !== "checkbox") {
        values[control.name] = control.value === "" ? null : control.value;
      }
    }
    return values;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.matches("form.modal")) {
      event.preventDefault();
      const path = "/workspace/views/" + encodeURIComponent(form.dataset.viewId) + "/submission";
      const answer = await post(path, { values: viewValues(form) }, "Submitting");
      if (answer && answer.html) showView({ html: answer.html });
    } else if (form.matches(".ws-composer")) {
      event.preventDefault();
      const box = form.querySelector("textarea");
      const text = box.value.trim();
      if (!text) return;
      const thread = form.dataset.threadTs || null;
      const sent = text.startsWith("/") && !thread
        ? await post("/workspace/commands", { channel: channel, text: text }, "Running " + text.split(" ")[0])
        : await post("/workspace/messages", { channel: channel, text: text, thread_ts: thread }, "Sending");
      if (sent) box.value = "";
    }
  });

  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (event.key === "Enter" && !event.shiftKey && box.matches(".ws-composer textarea")) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  for (const pane of Object.values(panes)) {
    if (pane) pane.scrollTop = pane.scrollHeight;
  }
  listen();
})();
