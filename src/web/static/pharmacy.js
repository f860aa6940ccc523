// The dosing-alert queue's buttons: each posts one action (with the row's note) to
// /v1/dosing-alerts/{id}/actions, then reloads the page so the row shows the recorded status.
// Same-origin requests only; the page's Authorization comes from the hospital's proxy / SSO.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var row = button.closest("tr");
      var note = row.querySelector("input[name=note]");
      var message = row.querySelector(".message");
      row.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      fetch("/v1/dosing-alerts/" + encodeURIComponent(button.dataset.alert) + "/actions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ action: button.dataset.action, note: note ? note.value : "" })
      }).then(function (response) {
        if (response.ok) { window.location.reload(); return null; }
        return response.json().then(function (problem) {
          message.textContent = problem.detail || problem.title || ("HTTP " + response.status);
          row.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        });
      }).catch(function () {
        message.textContent = "The action could not be sent; try again.";
        row.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      });
    });
  });
});
