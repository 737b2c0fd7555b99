// The group page of the admin panel, enhanced: start and stop the servers of all
// members and follow their states in place (polling the page's own status URL while
// any is starting or stopping), remove a member without a reload, and check the JSON
// of the properties before it is sent. Without this script the forms post as usual.
"use strict";
(function () {
  const LABELS = {
    ready: "Ready",
    starting: "Starting",
    stopping: "Stopping",
    stopped: "Stopped",
    failed: "Failed",
    "": "Not shown",
  };
  const BUSY = new Set(["starting", "stopping"]);
  const POLL_MS = 1000;
  const MAX_POLL_MS = 8000;

  const status = document.getElementById("admin-status");
  const servers = document.getElementById("servers");
  const summary = document.getElementById("servers-summary");
  const table = document.getElementById("members");

  function rowOf(name) {
    if (!table) return null;
    for (const row of table.tBodies[0].rows) {
      if (row.dataset.user === name) return row;
    }
    return null;
  }

  // --- servers ---------------------------------------------------------------------

  // messages from the last start or stop for members it could not act on, shown
  // until their state changes
  const notes = new Map();
  let polling = false;
  let delay = POLL_MS;

  function showMember(member) {
    const row = rowOf(member.name);
    if (!row) return;
    const cell = row.querySelector("td.server");
    const badge = cell.querySelector(".state");
    const previous = badge.dataset.state || "";
    if (previous !== member.state) notes.delete(member.name);
    badge.dataset.state = member.state;
    badge.className = `state state-${member.state || "unknown"}`;
    badge.textContent = LABELS[member.state] || member.state;
    let message = cell.querySelector(".message");
    const text = member.message || notes.get(member.name) || "";
    if (!message && text) {
      message = document.createElement("span");
      message.className = "message";
      cell.append(" ", message);
    }
    if (message) message.textContent = text;
  }

  function summarize(counts, onePage) {
    const text =
      `${counts.ready} ready, ${counts.starting} starting, ${counts.stopping} stopping, ` +
      `${counts.stopped} stopped, ${counts.failed} failed${onePage ? "" : " (on this page)"}.`;
    if (summary.textContent !== text) summary.textContent = text;
  }

  async function fetchJson(url, init) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, init));
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok || data === null) {
      const message = data && data.message ? data.message : `The hub answered ${response.status}.`;
      throw new Error(message);
    }
    return data;
  }

  // resolves once the tab is visible: a hidden tab asks the hub nothing
  function visible() {
    if (!document.hidden) return Promise.resolve();
    return new Promise((resolve) => {
      document.addEventListener("visibilitychange", function shown() {
        if (document.hidden) return;
        document.removeEventListener("visibilitychange", shown);
        resolve();
      });
    });
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      for (;;) {
        await visible();
        let data;
        try {
          data = await fetchJson(servers.dataset.statusUrl, {
            headers: { Accept: "application/json" },
          });
          delay = POLL_MS;
        } catch (e) {
          atrium.announce(status, `Could not read the servers' states: ${e.message} Retrying.`, true);
          delay = Math.min(delay * 2, MAX_POLL_MS);
          await new Promise((resolve) => setTimeout(resolve, delay));
          continue;
        }
        data.members.forEach(showMember);
        summarize(data.counts, servers.dataset.onePage === "true");
        if (!data.members.some((m) => BUSY.has(m.state))) break;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    } finally {
      polling = false;
    }
  }

  async function serversAction(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const buttons = servers.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    const verb = form.elements.action.value === "start" ? "Starting" : "Stopping";
    atrium.announce(status, `${verb} the servers…`, false);
    try {
      // (form.action would be the field named "action", not the form's URL)
      const data = await fetchJson(form.getAttribute("action"), {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
      });
      // members it could not act on, for a reason other than being there already
      const problems = data.outcomes.filter(
        (o) => !o.ok && !/^(already|not running)/.test(o.text),
      );
      for (const o of problems) notes.set(o.name, o.text);
      const detail = problems.length
        ? ` Not done for ${problems.map((o) => `${o.name} (${o.text})`).join(", ")}.`
        : "";
      atrium.announce(status, data.summary + detail, problems.length > 0);
    } catch (e) {
      const what = verb === "Starting" ? "started" : "stopped";
      atrium.announce(status, `The servers could not be ${what}: ${e.message}`, true);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
    await poll();
  }

  if (servers && summary) {
    servers.querySelectorAll("form.servers-action").forEach((form) => {
      form.addEventListener("submit", serversAction);
    });
    if (table) {
      table.querySelectorAll("td.server .state").forEach((badge) => {
        const state = [...badge.classList].find((c) => c.startsWith("state-")).slice(6);
        badge.dataset.state = state === "unknown" ? "" : state;
      });
      if ([...table.querySelectorAll("td.server .state")].some((b) => BUSY.has(b.dataset.state))) {
        poll();
      }
    }
  }

  // --- members -----------------------------------------------------------------------

  async function removeMember(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = form.elements.username.value;
    const group = table.dataset.group;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await atrium.api("DELETE", `/groups/${atrium.seg(group)}/users`, { users: [name] });
      const row = rowOf(name);
      const next = row && (row.nextElementSibling || row.previousElementSibling);
      if (row) row.remove();
      const count = document.getElementById("member-count");
      if (count) {
        const n = Math.max(0, parseInt(count.dataset.count, 10) - 1);
        count.dataset.count = String(n);
        count.textContent = `${n} ${n === 1 ? "member" : "members"}`;
      }
      atrium.announce(status, `Removed ${name} from ${group}.`, false);
      const focus = next && next.querySelector("button");
      if (focus) focus.focus();
    } catch (e) {
      button.disabled = false;
      atrium.announce(status, `${name} could not be removed: ${e.message}`, true);
    }
  }

  if (table) {
    table.querySelectorAll("form.remove-member").forEach((form) => {
      form.addEventListener("submit", removeMember);
    });
  }

  // --- properties ----------------------------------------------------------------------

  const jsonForm = document.getElementById("properties-json-form");
  if (jsonForm) {
    const field = jsonForm.elements.properties;
    const error = document.getElementById("properties-error");
    jsonForm.addEventListener("submit", (event) => {
      let problem = "";
      if (field.value.trim()) {
        try {
          const value = JSON.parse(field.value);
          if (value === null || typeof value !== "object" || Array.isArray(value)) {
            problem = 'The properties must be a JSON object such as {"key": "value"}.';
          }
        } catch (e) {
          problem = `The properties are not valid JSON: ${e.message}`;
        }
      }
      if (problem) {
        event.preventDefault();
        error.textContent = problem;
        error.hidden = false;
        field.setAttribute("aria-invalid", "true");
        field.focus();
      } else {
        error.hidden = true;
        field.removeAttribute("aria-invalid");
      }
    });
  }
})();
