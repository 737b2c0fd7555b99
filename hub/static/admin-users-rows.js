// The admin panel's users page: its rows, and how a user's parts are drawn in them
// (server states and failures, badges, groups, last activity, names) from what the
// hub says. admin-users.js uses these for its actions, live status and search.
// User data only ever reaches the page as text (textContent, values).
"use strict";
window.atriumAdminRows = (function () {
  const root = document.getElementById("users-page");
  if (!root || !window.atrium) return null;
  const { baseUrl, seg } = window.atrium;
  const adminUrl = `${baseUrl}hub/admin`;
  const LABELS = { ready: "Running", starting: "Starting", stopping: "Stopping", stopped: "Stopped" };

  // --- rows and their parts ---------------------------------------------------------

  // (a search replaces the table: it is looked up afresh, never kept)
  function rows() {
    return Array.from(root.querySelectorAll("#users tbody tr[data-user]"));
  }

  function rowOf(name) {
    return rows().find((r) => r.dataset.user === name) || null;
  }

  function userPath(name) {
    return `/users/${seg(name)}`;
  }

  function serverPath(name, server) {
    return server ? `${userPath(name)}/servers/${seg(server)}` : `${userPath(name)}/server`;
  }

  function userUrl(name, server) {
    return `${baseUrl}user/${seg(name)}/` + (server ? `${seg(server)}/` : "");
  }

  // as hub.pages.admin_users_view.shown: bidirectional controls made visible, so that no
  // name can pass for another
  function shown(text) {
    return String(text).replace(
      /[\u202a-\u202e\u2066-\u2069]/g,
      (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}]`,
    );
  }

  function owner(name, server) {
    return `${shown(name)}'s server` + (server ? ` ${shown(server)}` : "");
  }

  // a name (of a user, group or server) as text, isolated from the text around it
  function bdi(text, className) {
    const el = document.createElement("bdi");
    if (className) el.className = className;
    el.textContent = shown(text);
    return el;
  }

  // a user's server as the REST API describes it -> ready | starting | stopping | stopped
  function stateOf(model) {
    if (!model) return "stopped";
    if (model.ready) return "ready";
    if (model.pending === "spawn") return "starting";
    if (model.pending === "stop") return "stopping";
    return "stopped";
  }

  function visible(el) {
    return !!el && !el.closest("[hidden]") && el.getClientRects().length > 0;
  }

  // keep the keyboard in `container` when the control it was on goes away (a state
  // badge holds it only until a control comes back)
  function keepFocus(container, had) {
    if (!had) return;
    const active = document.activeElement;
    const parked = !!active && active.classList.contains("state");
    const lost = !active || active === document.body || !visible(active);
    if (!lost && !parked) return;
    const next = Array.from(container.querySelectorAll("button, a[href], input, summary")).find(visible);
    if (next) next.focus();
    else if (!parked) {
      const badge = container.querySelector(".state");
      if (badge) {
        badge.tabIndex = -1;
        badge.focus();
      }
    }
  }

  function show(container, selector, on) {
    container.querySelectorAll(selector).forEach((el) => {
      el.hidden = !on;
    });
  }

  function setFailure(item, text) {
    const box = item.querySelector(".failure");
    box.querySelector(".failure-text").textContent = text || "";
    box.hidden = !text || item.dataset.state !== "stopped";
  }

  // show a server's state; returns the state it had before
  function setState(item, state) {
    const before = item.dataset.state;
    if (before === state) return before;
    const had = item.contains(document.activeElement);
    item.dataset.state = state;
    const badge = item.querySelector(".state");
    badge.className = `state state-${state}`;
    badge.textContent = LABELS[state];
    show(item, '[data-act="start"]', state === "stopped");
    show(item, '[data-act="stop"]', state === "ready" || state === "starting");
    show(item, "a.open", state === "ready");
    if (state === "starting") setFailure(item, "");
    else {
      const failure = item.querySelector(".failure");
      failure.hidden = state !== "stopped" || !failure.querySelector(".failure-text").textContent;
    }
    keepFocus(item, had);
    return before;
  }

  function serverItem(row, server) {
    const items = Array.from(row.querySelectorAll("ul.servers > li"));
    return items.find((li) => li.dataset.server === server) || null;
  }

  // the spoken name of a server's buttons: " ann's server[ lab]"
  function fillWhose(span, name, server) {
    span.textContent = " ";
    span.append(bdi(name, "js-name"), "'s server");
    if (server) span.append(" ", bdi(server));
  }

  // a named server the page did not show yet: a copy of the default server's item
  function addServerItem(row, server) {
    const list = row.querySelector("ul.servers");
    const item = serverItem(row, "").cloneNode(true);
    item.dataset.server = server;
    item.dataset.state = "";
    const label = item.querySelector(".server-name");
    label.textContent = "";
    label.append(bdi(server));
    item.querySelectorAll('button[name="server"]').forEach((button) => {
      button.value = server;
    });
    item.querySelectorAll(".server-actions .vh").forEach((span) => {
      fillWhose(span, row.dataset.user, server);
    });
    item.querySelectorAll("a.open").forEach((a) => {
      a.href = userUrl(row.dataset.user, server);
    });
    setFailure(item, "");
    list.append(item);
    return item;
  }

  function labelDefault(row) {
    const item = serverItem(row, "");
    if (!item) return;
    const label = item.querySelector(".server-name");
    const several = row.querySelectorAll("ul.servers > li").length > 1;
    if (several !== (label.dataset.shown === "yes")) {
      label.textContent = several ? "Default" : "";
      if (!several) {
        const hiddenLabel = document.createElement("span");
        hiddenLabel.className = "vh";
        hiddenLabel.textContent = "Default server";
        label.append(hiddenLabel);
      }
      label.dataset.shown = several ? "yes" : "no";
    }
  }

  // --- last activity ----------------------------------------------------------------

  // as hub.pages.admin_panel.relative_time says it
  function relative(iso) {
    const when = Date.parse(iso);
    if (Number.isNaN(when)) return iso;
    const seconds = (Date.now() - when) / 1000;
    if (seconds < 0) {
      return seconds > -60 ? "just now" : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
    }
    const units = [
      [60, "", 1],
      [3600, "minute", 60],
      [86400, "hour", 3600],
      [86400 * 30, "day", 86400],
    ];
    for (const [limit, unit, size] of units) {
      if (seconds < limit) {
        if (!unit) return "just now";
        const count = Math.floor(seconds / size);
        return `${count} ${unit}${count === 1 ? "" : "s"} ago`;
      }
    }
    return iso.slice(0, 10);
  }

  function setActivity(row, iso) {
    const cell = row.querySelector("td.activity");
    if (!iso) return;
    let time = cell.querySelector("time");
    if (!time) {
      cell.textContent = "";
      time = document.createElement("time");
      cell.append(time);
    }
    if (time.dateTime !== iso) {
      time.dateTime = iso;
      time.title = iso;
    }
    const text = relative(iso);
    if (time.textContent !== text) time.textContent = text;
  }

  // --- badges, groups, names --------------------------------------------------------

  // (a row's buttons post the one form #row-action: each says where, and with what value)
  function setAdmin(row, admin) {
    row.querySelector(".badge.admin").hidden = !admin;
    const button = row.querySelector('button[data-act="admin"]');
    if (!button) return;
    button.value = admin ? "0" : "1";
    button.querySelector(".label").textContent = admin ? "Remove admin" : "Make admin";
  }

  function setBlocked(row, blocked) {
    row.querySelector(".badge.blocked").hidden = !blocked;
    const button = row.querySelector('button[data-act="block"]');
    if (!button) return;
    button.value = blocked ? "0" : "1";
    button.querySelector(".label").textContent = blocked ? "Unblock" : "Block";
  }

  function setGroups(row, groups) {
    const cell = row.querySelector("td.groups");
    const current = Array.from(cell.querySelectorAll("bdi"), (b) => b.textContent);
    if (current.join("\n") === groups.map(shown).join("\n")) return;
    cell.textContent = "";
    if (!groups.length) {
      const none = document.createElement("span");
      none.className = "muted";
      none.textContent = "none";
      cell.append(none);
    }
    groups.forEach((group, i) => {
      if (i) cell.append(", ");
      cell.append(bdi(group));
    });
  }

  function rename(row, name) {
    row.dataset.user = name;
    row.querySelectorAll(".js-name").forEach((el) => {
      el.textContent = shown(name);
    });
    row.querySelectorAll('input[name="user"], input[name="new_name"]').forEach((input) => {
      input.value = name;
    });
    row.querySelectorAll("form[data-act]").forEach((form) => {
      form.action = `${adminUrl}/users/${seg(name)}/${form.dataset.act}`;
    });
    row.querySelectorAll("button[data-act]").forEach((button) => {
      button.formAction = `${adminUrl}/users/${seg(name)}/${button.dataset.act}`;
    });
    row.querySelectorAll('a[data-act="delete"]').forEach((a) => {
      const query = a.href.indexOf("?") >= 0 ? a.href.slice(a.href.indexOf("?")) : "";
      a.href = `${adminUrl}/users/${seg(name)}/delete${query}`;
    });
    row.querySelectorAll("ul.servers > li").forEach((item) => {
      item.querySelectorAll("a.open").forEach((a) => {
        a.href = userUrl(name, item.dataset.server);
      });
    });
  }

  return {
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
  };
})();
