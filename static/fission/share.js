// The personal page's copy and share buttons. Loaded as a file: the pages allow no inline
// script (Content-Security-Policy). Labels come from data- attributes, in the page's language.
(function () {
  "use strict";

  function say(button, key) {
    var status = document.getElementById(button.dataset.status);
    if (status) { status.textContent = button.dataset[key] || ""; }
  }

  function copyBySelection(input, button) {
    input.focus();
    input.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    say(button, ok ? "copied" : "failed");
  }

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copyTarget);
      if (!input) { return; }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { say(button, "copied"); },
          function () { copyBySelection(input, button); }
        );
      } else {
        copyBySelection(input, button);
      }
    });
  });

  // The Web Share API opens the phone's own share sheet (WeChat included, where installed).
  document.querySelectorAll("[data-share-url]").forEach(function (button) {
    if (typeof navigator.share !== "function") { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.share({
        title: button.dataset.shareTitle,
        text: button.dataset.shareText,
        url: button.dataset.shareUrl
      }).catch(function () { /* closed by the person: nothing to do */ });
    });
  });
})();
