// The console's live parts, without inline script (the Content-Security-Policy forbids it):
// an element with data-live="<url>" has its content replaced every two seconds by the HTML
// fragment the server renders at that URL (escaped there, like every page).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-live]")) {
    const url = el.getAttribute("data-live");
    const refresh = async () => {
      try {
        const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (res.redirected || !res.ok) return; // signed out or failing: keep what is shown
        el.innerHTML = await res.text();
        el.dispatchEvent(new CustomEvent("live-updated"));
      } catch (_) {
        // offline for a moment: try again on the next tick
      }
    };
    setInterval(refresh, 2000);
  }
});
