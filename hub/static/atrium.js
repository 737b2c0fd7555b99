// Shared by the hub's pages: calls to the hub's REST API with the page's login
// cookie and XSRF token, and small DOM helpers. Pages work without it (forms
// post to page handlers); with it they update in place.
"use strict";
window.atrium = (function () {
  function meta(name) {
    const el = document.querySelector(`meta[name="${name}"]`);
    return el ? el.content : "";
  }
  const baseUrl = meta("atrium-base-url") || "/";
  const xsrf = meta("atrium-xsrf");

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // fetch `path` under /hub/api; resolves to the parsed JSON (null for 204),
  // rejects with ApiError carrying the hub's message
  async function api(method, path, body, headers) {
    const init = {
      method,
      credentials: "same-origin",
      headers: Object.assign({ "X-XSRFToken": xsrf }, headers || {}),
    };
    if (body !== undefined) {
      if (typeof body === "string") {
        init.body = body;
      } else {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = "application/json";
      }
    }
    let response;
    try {
      response = await fetch(`${baseUrl}hub/api${path}`, init);
    } catch (e) {
      throw new ApiError(0, "The hub could not be reached. Check your connection and try again.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.message ? data.message : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  // a URL path segment, encoded as the hub's routes expect
  function seg(name) {
    return encodeURIComponent(name);
  }

  // announce a message to screen readers and sighted users in a live region
  function announce(region, text, isError) {
    if (!region) return;
    region.textContent = text;
    region.classList.toggle("error", !!isError);
    region.hidden = !text;
  }

  return { api, ApiError, baseUrl, seg, announce };
})();
