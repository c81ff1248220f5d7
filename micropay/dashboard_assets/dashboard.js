// Refreshes the figures without a reload: fetches this same page again and swaps its <main> when it
// changed; writes every date in the viewer's time zone. The page is whole without it.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[data-unix]").forEach(function (el) {
      var d = new Date(Number(el.dataset.unix) * 1000);  // with the zone's name: "…, 12:24 AM CET"
      el.textContent = d.toLocaleString(undefined, {year: "numeric", month: "short", day: "numeric",
                                                    hour: "numeric", minute: "2-digit", timeZoneName: "short"});
    });
    root.querySelectorAll("svg text[data-time]").forEach(function (el) {
      var d = new Date(Number(el.dataset.time) * 1000);
      el.textContent = d.toLocaleString(undefined, {month: "short", day: "numeric", hour: "numeric",
                                                    minute: "2-digit", timeZoneName: "short"});
    });
  }
  var main = document.getElementById("main");
  var last = main.innerHTML;  // as the server wrote it, before the times are localised
  localTimes(main);
  var every = Number(main.dataset.refresh || 0);
  if (!every) { return; }
  // A page that stops refreshing says so: its figures (and its countdowns) are as of that moment.
  var stale = document.getElementById("stale"), since = null;
  function failed(why) {
    since = since || new Date();
    stale.textContent = "Not updated since " + since.toLocaleTimeString() + ": " + why;
    stale.hidden = false;
  }
  setInterval(function () {
    fetch(location.href, {headers: {"X-Micropay-Refresh": "1"}, cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { failed("log in again (open the address the server printed)."); return null; }
        if (!r.ok) { failed("the dashboard answered " + r.status + "."); return null; }
        return r.text();
      }, function () { failed("the dashboard is not answering."); return null; })
      .then(function (html) {
        if (!html) { return; }
        since = null;
        stale.hidden = true;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (fresh && fresh.innerHTML !== last) {
          // Keep the keyboard's place: the focused link or button is found again after the swap.
          var had = document.activeElement, key = had && (had.id || had.getAttribute("href"));
          last = fresh.innerHTML;
          main.innerHTML = fresh.innerHTML;
          localTimes(main);
          if (key) {
            var again = document.getElementById(key) || main.querySelector('[href="' + CSS.escape(key) + '"]');
            if (again) { again.focus(); }
          }
        }
      })
      .catch(function () {});
  }, every);
})();
