// The admin panel's users page (hub/templates/admin_users.html), without reloads.
//
// Every form on the page works on its own (it posts to the page's handlers and
// comes back). With this script, row actions and bulk actions go through the
// REST API instead (atrium.api sends the XSRF header), the rows change in place,
// and outcomes are announced in the #admin-status live region. Every few seconds
// (faster while a server is starting or stopping, never while the tab is hidden)
// the page's users are read again with one request, the same page of the same
// listing, so server states, failures, badges, groups and last activity stay
// current. How rows are drawn is admin-users-rows.js. User data only ever
// reaches the page as text (textContent, values).
"use strict";
(function () {
  const root = document.getElementById("users-page");
  if (!root || !window.atrium || !window.atriumAdminRows) return;
  const { api, baseUrl, seg, announce } = window.atrium;
  const status = document.getElementById("admin-status");
  const adminUrl = `${baseUrl}hub/admin`;
  const PAGINATION = "application/jupyterhub-pagination+json";
  const CONCURRENCY = 4; // API requests at once in a bulk action
  const POLL_MS = Math.max(2, Number(root.dataset.poll) || 5) * 1000;
  const FAST_POLL_MS = 1500; // while a server on the page is starting or stopping
  const busy = new WeakSet(); // forms and buttons whose request is under way
  const watched = new Map(); // "user/server" started or stopped here -> what was asked

  function say(text, isError) {
    announce(status, text, isError);
  }

  const {
    LABELS,
    addServerItem,
    bdi,
    labelDefault,
    owner,
    rename,
    rowOf,
    rows,
    serverItem,
    serverPath,
    setActivity,
    setAdmin,
    setBlocked,
    setFailure,
    setGroups,
    setState,
    shown,
    stateOf,
    userPath,
  } = window.atriumAdminRows;

  // --- live status ------------------------------------------------------------------

  const finished = []; // what changed for servers this page started or stopped, per poll

  async function lastFailure(name, server) {
    // the progress API replays a failed start's last event (the user model has no failure)
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 5000);
    try {
      const response = await fetch(`${baseUrl}hub/api${serverPath(name, server)}/progress`, {
        credentials: "same-origin",
        headers: { Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!response.ok) return "";
      let message = "";
      for (const line of (await response.text()).split("\n")) {
        if (!line.startsWith("data:")) continue;
        try {
          const event = JSON.parse(line.slice(5));
          if (event.failed) message = event.message || "The server failed to start.";
        } catch (e) {
          // not an event
        }
      }
      return message;
    } catch (e) {
      return "";
    } finally {
      clearTimeout(timer);
    }
  }

  async function noteFailure(row, item) {
    const name = row.dataset.user;
    const server = item.dataset.server;
    const message = await lastFailure(name, server);
    if (item.dataset.state === "stopped") setFailure(item, message);
    return message;
  }

  function transition(row, item, state) {
    const before = setState(item, state);
    const key = `${row.dataset.user}/${item.dataset.server}`;
    const asked = watched.get(key);
    if (state === "stopped" && (before === "starting" || before === "ready")) {
      noteFailure(row, item).then((message) => {
        if (asked === "start" && message) {
          say(`${owner(row.dataset.user, item.dataset.server)} could not start: ${message}`, true);
        }
      });
    }
    if (asked && (state === "ready" || state === "stopped")) {
      watched.delete(key);
      // (a start that failed is announced with its reason, above)
      if (!(asked === "start" && state === "stopped")) {
        finished.push(`${owner(row.dataset.user, item.dataset.server)} is ${LABELS[state].toLowerCase()}`);
      }
    }
  }

  function apply(row, model) {
    if ("admin" in model) setAdmin(row, !!model.admin);
    if ("blocked" in model) setBlocked(row, !!model.blocked);
    if (Array.isArray(model.groups)) setGroups(row, model.groups);
    if ("last_activity" in model) setActivity(row, model.last_activity);
    if (model.servers) {
      for (const [server, server_model] of Object.entries(model.servers)) {
        if (server && root.dataset.named !== "yes") continue;
        const item = serverItem(row, server) || addServerItem(row, server);
        const state = stateOf(server_model);
        transition(row, item, state);
        if (state === "stopped" && "failure" in server_model) setFailure(item, server_model.failure || "");
      }
      row.querySelectorAll("ul.servers > li").forEach((item) => {
        if (item.dataset.server in model.servers) return;
        if (item.dataset.server === "") transition(row, item, "stopped");
        else item.remove();
      });
      labelDefault(row);
    }
  }

  function markGone(row) {
    row.classList.add("row-gone");
    row.querySelectorAll("button, input, summary, a").forEach((el) => {
      el.setAttribute("aria-disabled", "true");
      el.tabIndex = -1;
    });
    row.querySelectorAll("form, [data-act]").forEach((el) => {
      el.hidden = true;
    });
  }

  function listChanged(text) {
    const box = document.getElementById("list-changed");
    if (!box) return;
    document.getElementById("list-changed-text").textContent = text;
    box.hidden = !text;
  }

  function setTotal(total) {
    const el = document.getElementById("users-total");
    if (el) el.textContent = total.toLocaleString("en-US");
  }

  async function pool(items, limit, one) {
    const results = new Array(items.length);
    let next = 0;
    async function worker() {
      while (next < items.length) {
        const i = next++;
        results[i] = await one(items[i], i);
      }
    }
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
  }

  let timer = 0;
  let polling = false;
  let stopped = false;
  let generation = 0; // which list the page shows: a search replaces it

  function schedule(ms) {
    clearTimeout(timer);
    if (stopped || document.hidden) return;
    timer = setTimeout(poll, ms);
  }

  function changing() {
    const moving = '#users li[data-state="starting"], #users li[data-state="stopping"]';
    return !!root.querySelector(moving) || watched.size > 0;
  }

  async function poll() {
    if (polling || stopped) return;
    polling = true;
    try {
      const query = new URLSearchParams({
        include_stopped_servers: "1",
        sort: root.dataset.sort,
        offset: root.dataset.offset,
        limit: root.dataset.limit,
      });
      if (root.dataset.q) query.set("name_filter", root.dataset.q);
      const shows = generation;
      const page = await api("GET", `/users?${query}`, undefined, { Accept: PAGINATION });
      if (shows !== generation) return; // the list changed meanwhile: the next poll reads it
      const seen = new Set();
      let newcomers = 0;
      for (const model of page.items) {
        const row = rowOf(model.name);
        if (row) {
          seen.add(model.name);
          apply(row, model);
        } else newcomers++;
      }
      // users that left this page of the listing (renamed, re-sorted, deleted): one by one
      const left = rows().filter((r) => !seen.has(r.dataset.user) && !r.classList.contains("row-gone"));
      await pool(left, CONCURRENCY, async (row) => {
        try {
          apply(row, await api("GET", `${userPath(row.dataset.user)}?include_stopped_servers=1`));
        } catch (e) {
          if (e.status === 404) markGone(row);
        }
      });
      const total = page._pagination.total;
      if (String(total) !== root.dataset.total) setTotal(total);
      listChanged(
        newcomers || left.length || String(total) !== root.dataset.total
          ? "The list has changed since this page was loaded."
          : "",
      );
      if (finished.length) say(`${finished.splice(0).join(". ")}.`);
    } catch (e) {
      if (e.status === 403 || e.status === 401) {
        // logged out, or no longer allowed to list users
        stopped = true;
        say(`This page no longer updates (${e.message}). Reload it to go on.`, true);
      }
    } finally {
      polling = false;
      schedule(changing() ? FAST_POLL_MS : POLL_MS);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else poll();
  });

  // --- one user's actions -----------------------------------------------------------

  async function start(row, item) {
    const name = row.dataset.user;
    const server = item.dataset.server;
    if (item.dataset.state !== "stopped") {
      return { ok: true, text: `already ${LABELS[item.dataset.state].toLowerCase()}` };
    }
    watched.set(`${name}/${server}`, "start");
    setState(item, "starting");
    try {
      await api("POST", serverPath(name, server));
      return { ok: true, text: "starting" };
    } catch (e) {
      watched.delete(`${name}/${server}`);
      setState(item, "stopped");
      // a start that failed says why in the row; a refused one (blocked, a limit) does not
      if (e.status >= 500) setFailure(item, e.message);
      return { ok: false, text: e.message };
    }
  }

  async function stop(row, item) {
    const name = row.dataset.user;
    const server = item.dataset.server;
    if (item.dataset.state === "stopped") return { ok: true, text: "not running" };
    watched.set(`${name}/${server}`, "stop");
    const before = item.dataset.state;
    setState(item, "stopping");
    try {
      await api("DELETE", serverPath(name, server));
      return { ok: true, text: "stopping" };
    } catch (e) {
      watched.delete(`${name}/${server}`);
      setState(item, before);
      return { ok: false, text: e.message };
    }
  }

  function fieldError(form, text) {
    let box = form.querySelector(".field-error");
    const input = form.querySelector('input[type="text"]');
    if (!box) {
      box = document.createElement("p");
      box.className = "field-error";
      box.id = `${input.id}-error`;
      form.append(box);
    }
    box.textContent = text;
    box.hidden = !text;
    if (text) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", box.id);
    } else {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  // a row's rename box: opened and closed by its link (in place of following it)
  function setRenameOpen(box, open) {
    box.classList.toggle("open", open);
    box.querySelector("a.rename-open").setAttribute("aria-expanded", open ? "true" : "false");
    if (!open && location.hash === `#${box.id}`) {
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function closeRename(form, focus) {
    const box = form.closest("div.rename");
    setRenameOpen(box, false);
    if (focus) box.querySelector("a.rename-open").focus();
  }

  root.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a.rename-open") : null;
    if (!link) return;
    event.preventDefault();
    const box = link.closest("div.rename");
    const open = !box.classList.contains("open");
    setRenameOpen(box, open);
    if (open) box.querySelector('input[name="new_name"]').focus();
  });

  async function renameUser(row, form) {
    const name = row.dataset.user;
    const input = form.querySelector('input[name="new_name"]');
    const wanted = input.value.trim();
    if (wanted === name) {
      fieldError(form, "");
      closeRename(form, false);
      return;
    }
    try {
      const model = await api("PATCH", userPath(name), { name: wanted });
      fieldError(form, "");
      rename(row, model.name);
      closeRename(form, true);
      say(`Renamed ${shown(name)} to ${shown(model.name)}.`);
    } catch (e) {
      fieldError(form, e.message);
      input.focus();
      say(`Could not rename ${shown(name)}: ${e.message}`, true);
    }
  }

  async function toggleAdmin(row, button) {
    const name = row.dataset.user;
    const admin = button.value === "1";
    try {
      const model = await api("PATCH", userPath(name), { admin });
      setAdmin(row, !!model.admin);
      say(model.admin ? `${shown(name)} is now an admin.` : `${shown(name)} is no longer an admin.`);
    } catch (e) {
      say(`Could not change ${shown(name)}: ${e.message}`, true);
    }
  }

  async function toggleBlock(row, button) {
    const name = row.dataset.user;
    const blocked = button.value === "1";
    try {
      const model = await api("PATCH", userPath(name), { blocked });
      setBlocked(row, !!model.blocked);
      say(
        model.blocked
          ? `Blocked ${shown(name)}: their logins ended and their servers were stopped.`
          : `Unblocked ${shown(name)}.`,
      );
      schedule(300);
    } catch (e) {
      say(`Could not change ${shown(name)}: ${e.message}`, true);
    }
  }

  function removeRows(names) {
    const all = rows();
    let focusAfter = null;
    const hadFocus = names.some((n) => {
      const row = rowOf(n);
      return row && row.contains(document.activeElement);
    });
    for (const name of names) {
      const row = rowOf(name);
      if (!row) continue;
      const index = all.indexOf(row);
      const staying = (r) => !names.includes(r.dataset.user);
      focusAfter =
        all.slice(index + 1).find(staying) || all.slice(0, index).reverse().find(staying) || null;
      row.remove();
    }
    const total = Number(document.getElementById("users-total")?.textContent.replace(/,/g, "") || 0);
    const last = document.getElementById("users-last");
    const gone = names.filter((n) => all.some((r) => r.dataset.user === n)).length;
    if (total) {
      setTotal(Math.max(0, total - gone));
      root.dataset.total = String(Math.max(0, total - gone)); // not a change made elsewhere
    }
    if (last) {
      last.textContent = (Number(last.textContent.replace(/,/g, "")) - gone).toLocaleString("en-US");
    }
    if (hadFocus || !document.activeElement || document.activeElement === document.body) {
      const target = focusAfter && focusAfter.querySelector("input, button, a[href], summary");
      if (target) target.focus();
      else document.getElementById("q")?.focus();
    }
    updateSelection();
  }

  const dialog = document.getElementById("confirm-delete");

  // ask before deleting; resolves to true to go ahead
  function confirmDelete(names) {
    const opener = document.activeElement;
    document.getElementById("confirm-title").textContent =
      names.length === 1 ? `Delete ${shown(names[0])}?` : `Delete ${names.length} users?`;
    const list = document.getElementById("confirm-list");
    list.textContent = "";
    names.slice(0, 50).forEach((name) => {
      const li = document.createElement("li");
      li.append(bdi(name));
      list.append(li);
    });
    if (names.length > 50) {
      const li = document.createElement("li");
      li.textContent = `and ${names.length - 50} more`;
      list.append(li);
    }
    document.getElementById("confirm-yes").textContent =
      names.length === 1 ? `Delete ${shown(names[0])}` : `Delete ${names.length} users`;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          const yes = dialog.returnValue === "delete";
          if (!yes && opener && opener.isConnected) opener.focus();
          resolve(yes);
        },
        { once: true },
      );
    });
  }

  async function deleteUser(name) {
    try {
      await api("DELETE", userPath(name));
      return { ok: true, text: "deleted" };
    } catch (e) {
      return { ok: false, text: e.message };
    }
  }

  async function rowAction(act, control, row) {
    const item = control.closest("ul.servers > li");
    const name = row.dataset.user;
    if (act === "start" || act === "stop") {
      const server = item.dataset.server;
      const outcome = act === "start" ? await start(row, item) : await stop(row, item);
      // (the button pressed is hidden now: setState gave the keyboard to its counterpart)
      if (outcome.ok) say(`${owner(name, server)}: ${outcome.text}.`);
      else say(`Could not ${act} ${owner(name, server)}: ${outcome.text}`, true);
      schedule(300);
    } else if (act === "rename") {
      await renameUser(row, control);
    } else if (act === "admin") {
      await toggleAdmin(row, control);
    } else if (act === "block") {
      await toggleBlock(row, control);
    }
  }

  // --- many users -------------------------------------------------------------------

  function boxes() {
    return Array.from(root.querySelectorAll('#users input[name="user"]'));
  }

  function selected() {
    return boxes().filter((b) => b.checked).map((b) => b.value);
  }

  function updateSelection() {
    const selectAll = document.getElementById("select-all");
    const count = document.getElementById("selected-count");
    if (!selectAll) return;
    selectAll.closest(".select-all").hidden = false;
    const n = selected().length;
    const all = boxes().length;
    count.textContent = `${n} selected`;
    selectAll.checked = n > 0 && n === all;
    selectAll.indeterminate = n > 0 && n < all;
  }

  let lastTicked = null;
  root.addEventListener("click", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.name !== "user") return;
    // shift-click ticks (or unticks) every box between this one and the last one clicked
    if (event.shiftKey && lastTicked && lastTicked.isConnected) {
      const all = boxes();
      const [a, b] = [all.indexOf(lastTicked), all.indexOf(box)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((other) => {
        other.checked = box.checked;
      });
    }
    lastTicked = box;
  });
  root.addEventListener("change", (event) => {
    if (event.target.id === "select-all") {
      boxes().forEach((b) => {
        b.checked = event.target.checked;
      });
    }
    if (event.target.id === "select-all" || event.target.name === "user") updateSelection();
  });
  updateSelection();

  function report(outcomes, names, did, failed) {
    const list = document.getElementById("bulk-results");
    list.textContent = "";
    outcomes.forEach((outcome, i) => {
      const li = document.createElement("li");
      if (!outcome.ok) li.className = "failed";
      li.append(bdi(names[i]), `: ${outcome.text}`);
      list.append(li);
    });
    list.hidden = !outcomes.length;
    const bad = outcomes.filter((o) => !o.ok).length;
    const good = outcomes.length - bad;
    const more = bad ? ` ${bad} ${failed}: see the list below the buttons.` : "";
    say(`${did} ${good} of ${outcomes.length}.${more}`, !!bad);
  }

  async function bulk(action) {
    const names = selected();
    if (!names.length) {
      say("Select at least one user first.", true);
      return;
    }
    if (action === "start" || action === "stop") {
      const outcomes = await pool(names, CONCURRENCY, async (name) => {
        const row = rowOf(name);
        const item = row && serverItem(row, "");
        if (!item) return { ok: false, text: "not on this page any more" };
        return action === "start" ? start(row, item) : stop(row, item);
      });
      const did = action === "start" ? "Started servers for" : "Stopped servers for";
      report(outcomes, names, did, `could not ${action}`);
      schedule(300);
    } else if (action === "delete") {
      if (!(await confirmDelete(names))) return;
      const outcomes = await pool(names, CONCURRENCY, deleteUser);
      report(outcomes, names, "Deleted", "could not be deleted");
      removeRows(names.filter((_, i) => outcomes[i].ok));
    } else if (action === "group") {
      const field = document.getElementById("bulk-group");
      const group = field ? field.value.trim() : "";
      if (!group) {
        say("Choose a group to add the selected users to.", true);
        return;
      }
      try {
        await api("POST", `/groups/${seg(group)}/users`, { users: names });
        names.forEach((name) => {
          const row = rowOf(name);
          if (!row) return;
          // (the cell shows names as `shown` writes them, which it leaves as they are)
          const groups = Array.from(row.querySelectorAll("td.groups bdi"), (b) => b.textContent);
          if (!groups.includes(shown(group))) setGroups(row, [...groups, shown(group)].sort());
        });
        const added = `added to ${shown(group)}`;
        report(names.map(() => ({ ok: true, text: added })), names, `Added to ${shown(group)}:`, "");
      } catch (e) {
        say(`Could not add users to ${shown(group)}: ${e.message}`, true);
      }
    }
  }

  // --- search as you type ---------------------------------------------------------

  // The same GET the search form makes; the answer's list takes the place of this one
  // (everything in #users-page but what is being typed), and the address follows.
  // The answer is the hub's own page, escaped as every page is; no script in it runs.
  let searching = null; // the search under way, to abort when a newer one starts
  let typing = 0;

  function searchUrl(form) {
    const query = new URLSearchParams(new FormData(form));
    if (!query.get("q")) query.delete("q");
    const text = query.toString();
    return form.action + (text ? `?${text}` : "");
  }

  function adopt(fresh) {
    const input = document.getElementById("q");
    const typed = input.value;
    const focused = document.activeElement === input;
    const [from, to] = [input.selectionStart, input.selectionEnd];
    root.textContent = "";
    for (const child of Array.from(fresh.childNodes)) root.append(document.adoptNode(child));
    for (const { name, value } of Array.from(fresh.attributes)) {
      if (name.startsWith("data-")) root.setAttribute(name, value);
    }
    const replaced = document.getElementById("q");
    replaced.value = typed; // as typed, spaces and all
    if (focused) {
      replaced.focus();
      replaced.setSelectionRange(from, to);
    }
  }

  async function search(url) {
    if (searching) searching.abort();
    const controller = new AbortController();
    searching = controller;
    let text;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        signal: controller.signal,
      });
      // a search the page refuses (400) or a login that ended: the page itself says so
      if (!response.ok || response.redirected) {
        window.location.assign(url);
        return;
      }
      text = await response.text();
    } catch (e) {
      if (e.name !== "AbortError") window.location.assign(url);
      return;
    }
    if (searching !== controller) return;
    searching = null;
    const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("users-page");
    if (!fresh) {
      window.location.assign(url);
      return;
    }
    generation++;
    adopt(fresh);
    history.replaceState(null, "", url);
    lastTicked = null;
    updateSelection();
    listChanged("");
    const caption = root.querySelector("#users caption");
    if (caption) say(`${caption.textContent}.`);
    schedule(POLL_MS);
  }

  root.addEventListener("input", (event) => {
    if (event.target.id !== "q") return;
    clearTimeout(typing);
    const form = event.target.form;
    typing = setTimeout(() => search(searchUrl(form)), 300);
  });

  // --- wiring -----------------------------------------------------------------------

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method === "dialog") return;
    let job = null;
    let key = form; // what is busy until the job ends
    if (form.id === "row-action") {
      const button = event.submitter;
      const row = button && button.closest("tr[data-user]");
      if (row && button.dataset.act) {
        key = button;
        job = () => rowAction(button.dataset.act, button, row);
      }
    } else if (form.id === "bulk") {
      const action = event.submitter && event.submitter.name === "action" ? event.submitter.value : "";
      if (action) job = () => bulk(action);
    } else if (form.dataset.act && form.closest("tr[data-user]")) {
      const row = form.closest("tr[data-user]");
      job = () => rowAction(form.dataset.act, form, row);
    } else if (form.getAttribute("role") === "search") {
      clearTimeout(typing);
      job = () => search(searchUrl(form));
    }
    if (!job) return;
    event.preventDefault();
    if (busy.has(key)) return;
    busy.add(key);
    key.setAttribute("aria-busy", "true");
    job().finally(() => {
      busy.delete(key);
      key.removeAttribute("aria-busy");
    });
  });

  root.addEventListener("click", async (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[data-act="delete"]') : null;
    if (!link || !dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    const row = link.closest("tr[data-user]");
    const name = row.dataset.user;
    if (!(await confirmDelete([name]))) return;
    const outcome = await deleteUser(name);
    if (outcome.ok) {
      removeRows([name]);
      say(`Deleted ${shown(name)}.`);
    } else {
      link.focus();
      say(`Could not delete ${shown(name)}: ${outcome.text}`, true);
    }
  });

  // Escape closes an open rename box and gives the keyboard back to its link; Space on
  // the link (a button to the eye and ear) opens it, as Enter does
  root.addEventListener("keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (event.key === " " && target.matches("a.rename-open")) {
      event.preventDefault();
      target.click();
      return;
    }
    if (event.key !== "Escape") return;
    const box = target.closest("div.rename.open, div.rename:target");
    if (!box) return;
    closeRename(box.querySelector("form"), true);
  });

  schedule(POLL_MS);
})();
