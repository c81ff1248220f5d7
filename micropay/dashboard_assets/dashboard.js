// Refreshes the figures without a reload: fetches this same page again and swaps its <main> when it
// changed; writes every date in the viewer's time zone. The page is whole without it.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[data-unix]").forEach(function (el) {
      var d = new Date(Number(el.dataset.unix) * 1000);
      el.textContent = d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
    });
    root.querySelectorAll("svg text[data-time]").forEach(function (el) {
      var d = new Date(Number(el.dataset.time) * 1000);
      el.textContent = d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
    });
  }
  var main = document.getElementById("main");
  var last = main.innerHTML;  // as the server wrote it, before the times are localised
  localTimes(main);
  var every = Number(main.dataset.refresh || 0);
  if (!every) { return; }
  setInterval(function () {
    fetch(location.href, {headers: {"X-Micropay-Refresh": "1"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
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
