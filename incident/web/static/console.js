// The console's only script: live parts of a page (poll a partial, swap it when it changed),
// ticking countdowns and ages, and no double submission of a form. No build step.
(function () {
  "use strict";
  var serverNow = Date.parse(document.documentElement.getAttribute("data-now") || "");
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function now() { return Date.now() + skew; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? h + ":" + pad(m) + ":" + pad(s % 60) : m + ":" + pad(s % 60);
  }
  function tick() {
    document.querySelectorAll("[data-until]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-until")) - now();
      el.textContent = (left < 0 ? "-" : "") + span(left);
      el.classList.toggle("late", left < 0);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = span(now() - Date.parse(el.getAttribute("data-since")));
    });
  }
  function typingIn(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function poll(el) {
    var every = parseInt(el.getAttribute("data-every"), 10) || 2000, last = null;
    function again() { setTimeout(run, document.hidden ? every * 4 : every); }
    function run() {
      fetch(el.getAttribute("data-poll"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { document.body.classList.add("signed-out"); return null; }
          if (!r.ok) { throw new Error(String(r.status)); }
          return r.text();
        })
        .then(function (html) {
          el.classList.remove("stale");
          if (html !== null && html !== last && !typingIn(el)) {
            el.innerHTML = html;
            last = html;
            tick();
          }
        })
        .catch(function () { el.classList.add("stale"); })
        .then(again);
    }
    again();
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
    form.setAttribute("data-sent", "1");
    // After this submit leaves (disabling first would drop the clicked button's value).
    setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      form.removeAttribute("data-sent");
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    });
  });
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  tick();
  setInterval(tick, 1000);
})();
