// A confirmation in a modal <dialog> (focus kept inside, Escape cancels), for the
// hub's pages: `atriumConfirm(question, actionLabel)` resolves to true if the person
// chose the action. Without JavaScript the same pages confirm on a page of their own.
"use strict";
window.atriumConfirm = function (question, actionLabel) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = document.createElement("dialog");
    dialog.className = "confirm";
    const text = document.createElement("p");
    text.id = "confirm-question";
    text.textContent = question;
    dialog.setAttribute("aria-labelledby", text.id);
    const actions = document.createElement("div");
    actions.className = "actions";
    const ok = document.createElement("button");
    ok.type = "button";
    ok.className = "danger";
    ok.textContent = actionLabel;
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = "Cancel";
    actions.append(ok, cancel);
    dialog.append(text, actions);
    ok.addEventListener("click", () => dialog.close("ok"));
    cancel.addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && document.contains(opener)) opener.focus();
      resolve(dialog.returnValue === "ok");
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
};
