// The admin console under the Content-Security-Policy (script-src 'self' and a nonce, no
// inline handlers): Flask-Admin's templates attach behaviour with onclick="..." attributes
// and javascript: links, both of which the browser refuses to run. templates/admin/ and
// app/admin (which takes them out of the installed templates) mark those elements instead,
// and this one delegated listener does their work.
(function () {
  "use strict";

  function onClick(event) {
    if (!(event.target instanceof Element)) return;
    var link = event.target.closest("a[href]");
    // Do-nothing links: the menu toggles, the current tab, the current page of the pager.
    // Following "#" would jump to the top; following javascript:void(0) would only log a
    // CSP violation.
    if (link) {
      var href = link.getAttribute("href");
      if (href === "#" || href.indexOf("javascript:") === 0) event.preventDefault();
    }

    // "With selected" entries: Flask-Admin's actions.js (window.modelActions) asks for the
    // action's confirmation, fills the hidden form with the checked rows and submits it.
    var item = event.target.closest("[data-admin-action]");
    if (item && window.modelActions) window.modelActions.execute(item.getAttribute("data-admin-action"));
  }

  // Capture: the dropdown toggles stop the click's propagation before it would reach a
  // listener on the document in the bubbling phase.
  document.addEventListener("click", onClick, true);
})();
