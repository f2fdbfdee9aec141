/* president.ir/en single-page shell: the page's body comes from the JSON API. */
(function () {
  "use strict";
  var app = document.getElementById("app");
  if (!app) { return; }
  fetch(app.getAttribute("data-src"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(function (page) {
      document.body.className = page.bodyClass;
      app.outerHTML = page.html;
    })
    .catch(function () {
      app.innerHTML = '<p class="error">This page could not be loaded.</p>';
    });
})();
