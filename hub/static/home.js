// The home page (/hub/home) without reloads: stop, rename and delete through the
// REST API, and server states kept current. While the tab is visible the page asks
// the API for the person's servers every few seconds (more often while one is
// starting or stopping); when what it shows is out of date it fetches the page
// again and swaps in the rows that changed, so the HTML comes from one place (the
// hub's template). Without JavaScript the page's forms do the same by reloading.
"use strict";
(function () {
  const list = document.getElementById("server-list");
  if (!list) return;
  const { api, seg, announce } = window.atrium;
  const user = list.dataset.user;
  const homeUrl = list.dataset.homeUrl;
  const namedEnabled = list.dataset.named === "yes";
  const status = document.getElementById("home-status");
  const BUSY_EVERY = 2000; // ms between checks while a server starts or stops
  const IDLE_EVERY = 5000;
  let timer = null;
  let stopped = false;

  function serverPath(name) {
    return name ? `/users/${seg(user)}/servers/${seg(name)}` : `/users/${seg(user)}/server`;
  }

  function stateOf(model) {
    if (model.pending) return model.pending;
    return model.ready ? "ready" : "stopped";
  }

  function shownStates() {
    const shown = new Map();
    for (const row of list.querySelectorAll("li.server")) {
      shown.set(row.dataset.server, row.dataset.state);
    }
    return shown;
  }

  // put the rows of `fresh` in place of those of `current` that differ (by data-key
  // and data-state); returns the new rows whose state changed
  function merge(current, fresh) {
    const active = document.activeElement;
    const focusedId = active && active.id;
    const focusedRow = active && active.closest ? active.closest("[data-key]") : null;
    const focusedKey = focusedRow ? focusedRow.dataset.key : null;
    const old = new Map();
    for (const child of current.children) old.set(child.dataset.key, child);
    const nodes = [];
    const changed = [];
    for (const child of Array.from(fresh.children)) {
      const prev = old.get(child.dataset.key);
      if (prev && prev.dataset.state === child.dataset.state) {
        nodes.push(prev);
      } else {
        const node = document.importNode(child, true);
        nodes.push(node);
        if (prev) changed.push(node);
      }
    }
    current.replaceChildren(...nodes);
    // focus stays where it was, or moves to the heading of its row when that changed
    const again = focusedId ? document.getElementById(focusedId) : null;
    if (again) {
      again.focus();
    } else if (focusedKey) {
      const row = nodes.find((n) => n.dataset.key === focusedKey);
      const heading = row ? row.querySelector("h2[tabindex]") : null;
      if (heading) heading.focus();
    }
    return changed;
  }

  async function refresh() {
    let response;
    try {
      response = await fetch(homeUrl, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (e) {
      return;
    }
    if (response.redirected || !response.ok) return; // the next check says what is wrong
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const freshList = doc.getElementById("server-list");
    const changed = freshList ? merge(list, freshList) : [];
    const area = document.getElementById("create-area");
    const freshArea = doc.getElementById("create-area");
    if (area && freshArea) merge(area, freshArea);
    return changed;
  }

  async function check() {
    timer = null;
    if (stopped || document.hidden) return;
    let busy = false;
    try {
      const model = await api("GET", `/users/${seg(user)}?include_stopped_servers=1`);
      const actual = new Map([["", "stopped"]]);
      for (const [name, server] of Object.entries(model.servers || {})) {
        if (name === "" || namedEnabled) actual.set(name, stateOf(server));
      }
      const shown = shownStates();
      let differs = shown.size !== actual.size;
      for (const [name, state] of actual) {
        if (shown.get(name) !== state) differs = true;
        if (state === "spawn" || state === "stop") busy = true;
      }
      if (differs) tell(await refresh());
    } catch (e) {
      if (e.status === 403) {
        stopped = true;
        announce(status, "Your login has ended. Reload the page to log in again.", true);
        return;
      }
    }
    schedule(busy ? BUSY_EVERY : IDLE_EVERY);
  }

  function schedule(delay) {
    if (timer !== null) window.clearTimeout(timer);
    timer = stopped ? null : window.setTimeout(check, delay);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
    } else {
      schedule(0);
    }
  });

  // say what changed in the rows `refresh` swapped in
  function tell(changed) {
    const lines = (changed || []).map((row) => `${row.dataset.label}: ${row.dataset.stateText}.`);
    if (lines.length) announce(status, lines.join(" "));
  }

  function fieldError(form, text) {
    const slot = form.querySelector(".field-error");
    if (slot) {
      slot.textContent = text;
      slot.setAttribute("role", "alert");
    } else {
      announce(status, text, true);
    }
  }

  list.addEventListener("submit", async (event) => {
    const form = event.target;
    const action = form.dataset.action;
    if (!action) return; // starting leads to the server or its progress page: a real submit
    event.preventDefault();
    const row = form.closest("li.server");
    const name = row.dataset.server;
    const label = row.dataset.label;
    const button = form.querySelector("button[type=submit]");
    try {
      if (action === "stop") {
        button.disabled = true;
        announce(status, `Stopping ${label}\u2026`);
        await api("DELETE", serverPath(name));
        tell(await refresh());
      } else if (action === "delete") {
        if (!(await window.atriumConfirm(`Delete the server ${name}?`, "Delete"))) return;
        button.disabled = true;
        await api("DELETE", serverPath(name), { remove: true });
        await refresh();
        announce(status, `The server ${name} was deleted.`);
      } else if (action === "rename") {
        const wanted = form.elements.new_name.value.trim();
        button.disabled = true;
        const model = await api("PATCH", serverPath(name), { name: wanted });
        await refresh();
        announce(status, `${name} is now called ${model.name}.`);
        const renamed = Array.from(list.querySelectorAll("li.server")).find(
          (r) => r.dataset.server === model.name,
        );
        const heading = renamed ? renamed.querySelector("h2[tabindex]") : null;
        if (heading) heading.focus();
      }
      schedule(0);
    } catch (e) {
      if (button) button.disabled = false;
      fieldError(form, e.message);
    }
  });

  schedule(IDLE_EVERY);
})();
