// Injected into every document of a measured browser context before the page's own
// scripts (Playwright init script; benchmarks/admin/browse.py fills in CONFIG).
//
// It watches for a goal: "the users table is usable" with optional extra
// conditions (a row count, the first row's name, a name filter every row matches).
// The goal comes from sessionStorage (set by the benchmark just before an action,
// so it survives the navigation a link or form causes) or, for the first document
// of the context, from CONFIG.initialGoal. While a goal is open the condition is
// checked on every animation frame (so "rendered" means: in a frame the browser
// produced) and when the document finishes loading; the first time it holds, the
// time is reported to the benchmark through the exposed binding __benchReport.
//
// The time of the person's last input (click, key, text input; capture phase, so
// before the page reacts) is kept in sessionStorage too: an interaction is timed
// from it. Times are performance.timeOrigin + performance.now(), milliseconds since
// the epoch, comparable across documents of the tab.
"use strict";
(() => {
  const CONFIG = __CONFIG__;
  const GOAL = "__benchGoal";
  const INPUT = "__benchInputAt";
  const INITIAL = "__benchInitialUsed";
  const S = CONFIG.selectors;
  const now = () => performance.timeOrigin + performance.now();

  for (const type of ["click", "keydown", "input"]) {
    window.addEventListener(
      type,
      (event) => {
        if (event.isTrusted) sessionStorage.setItem(INPUT, String(now()));
      },
      true,
    );
  }

  function enabled(el) {
    return !!el && !el.disabled && el.getAttribute("aria-disabled") !== "true";
  }

  function rowName(row) {
    const el = row.querySelector(S.name);
    return el ? el.textContent.trim() : "";
  }

  // The criterion. Every part must hold in the same check:
  // - the document has loaded (readyState "complete": its scripts and styles ran);
  // - the search box is there and enabled;
  // - there are user rows: exactly goal.count of them when given, else at least one;
  // - the first row has action buttons, none of them disabled;
  // - goal.next: the next-page control is there and enabled;
  // - goal.first: the first row is that user; goal.filter: every row's name has it.
  function holds(goal) {
    if (document.readyState !== "complete") return false;
    if (!enabled(document.querySelector(S.search))) return false;
    const rows = Array.from(document.querySelectorAll(S.rows));
    if (goal.count != null ? rows.length !== goal.count : rows.length < 1) return false;
    const buttons = Array.from(rows[0].querySelectorAll(S.actions));
    if (!buttons.length || !buttons.every(enabled)) return false;
    if (goal.next && !enabled(document.querySelector(S.next))) return false;
    if (goal.first != null && rowName(rows[0]) !== goal.first) return false;
    if (goal.filter != null && !rows.every((r) => rowName(r).includes(goal.filter))) {
      return false;
    }
    return true;
  }

  let goal = null;
  let pending = false;

  // Reports and closes the goal if it holds now; true if it did.
  function attempt() {
    let ok = false;
    try {
      ok = holds(goal);
    } catch (e) {
      ok = false;
    }
    if (!ok) return false;
    const rel = performance.now();
    const done = goal;
    goal = null;
    sessionStorage.removeItem(GOAL);
    const rows = Array.from(document.querySelectorAll(S.rows));
    window.__benchReport({
      id: done.id,
      at: performance.timeOrigin + rel,
      rel,
      inputAt: Number(sessionStorage.getItem(INPUT)) || null,
      url: location.href,
      rows: rows.length,
      first: rows.length ? rowName(rows[0]) : null,
    });
    return true;
  }

  function frame() {
    pending = false;
    if (goal && !attempt()) schedule();
  }

  function schedule() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(frame);
    }
  }

  // Called by the benchmark (page.evaluate) for a goal reached without a navigation.
  window.__benchArm = (g) => {
    sessionStorage.setItem(GOAL, JSON.stringify(g));
    sessionStorage.removeItem(INPUT);
    goal = g;
    schedule();
  };

  const stored = sessionStorage.getItem(GOAL);
  if (stored) {
    goal = JSON.parse(stored);
  } else if (CONFIG.initialGoal && !sessionStorage.getItem(INITIAL)) {
    sessionStorage.setItem(INITIAL, "1");
    goal = CONFIG.initialGoal;
  }
  if (goal) schedule();
  window.addEventListener("load", () => {
    if (goal) attempt();
  });
})();
