// The token page (/hub/token) without reloads: create a token through the REST API
// and show it once, copy it, revoke tokens after a confirmation. The list is
// fetched again from the page after each change, so its HTML comes from one place
// (the hub's template). Without JavaScript the page's forms do the same.
"use strict";
(function () {
  const form = document.getElementById("create-token");
  const list = document.getElementById("token-list");
  if (!form || !list) return;
  const { api, seg, announce, baseUrl } = window.atrium;
  const user = form.dataset.user;
  const status = document.getElementById("token-status");
  const errorSlot = document.getElementById("create-error");
  const panel = document.getElementById("new-token");
  const value = document.getElementById("new-token-value");
  const copy = document.getElementById("copy-token");
  const copyStatus = document.getElementById("copy-status");

  copy.hidden = false;
  copy.addEventListener("click", async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(value.value);
      copyStatus.textContent = "Copied.";
    } catch (e) {
      copyStatus.textContent = "Selected: press Ctrl+C (or \u2318C) to copy it.";
    }
  });

  async function refreshList() {
    let response;
    try {
      response = await fetch(`${baseUrl}hub/token`, { credentials: "same-origin" });
    } catch (e) {
      return;
    }
    if (response.redirected || !response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("token-list");
    if (fresh) list.replaceChildren(...Array.from(fresh.children).map((n) => document.importNode(n, true)));
  }

  function requested() {
    const access = form.querySelector("input[name=access]:checked");
    let scopes;
    if (!access || access.value === "custom") {
      scopes = form.elements.custom_scopes.value.split(/[\s,]+/).filter((s) => s);
    } else {
      scopes = JSON.parse(access.dataset.scopes);
    }
    const expiry = form.elements.expires_in.value;
    return {
      note: form.elements.note.value.trim() || form.dataset.defaultNote,
      expires_in: expiry ? Number(expiry) : null,
      scopes,
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    errorSlot.textContent = "";
    errorSlot.removeAttribute("role");
    const body = requested();
    if (!body.scopes.length) {
      errorSlot.setAttribute("role", "alert");
      errorSlot.textContent = "Write at least one scope, or choose one of the other options";
      form.elements.custom_scopes.focus();
      return;
    }
    button.disabled = true;
    try {
      const model = await api("POST", `/users/${seg(user)}/tokens`, body);
      value.value = model.token;
      copyStatus.textContent = "";
      panel.hidden = false;
      document.getElementById("new-token-heading").focus();
      form.elements.note.value = "";
      announce(status, "");
      await refreshList();
    } catch (e) {
      errorSlot.setAttribute("role", "alert");
      errorSlot.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });

  list.addEventListener("submit", async (event) => {
    const target = event.target;
    if (target.dataset.action !== "revoke") return;
    event.preventDefault();
    if (!(await window.atriumConfirm(target.dataset.question, "Revoke"))) return;
    const id = target.elements.token_id.value;
    const button = target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("DELETE", `/users/${seg(user)}/tokens/${seg(id)}`);
      await refreshList();
      announce(status, "The token was revoked.");
      document.getElementById("tokens-heading").setAttribute("tabindex", "-1");
      document.getElementById("tokens-heading").focus();
    } catch (e) {
      button.disabled = false;
      announce(status, e.message, true);
    }
  });
})();
