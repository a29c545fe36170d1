// The soldier pages' one script: copy buttons. Everything works without it; the buttons only
// appear when it runs. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("cs-announce");
    if (!region) {
      return;
    }
    region.textContent = "";
    window.setTimeout(function () {
      region.textContent = text;
    }, 50);
  }

  function reveal(root) {
    root.querySelectorAll("button.cs-copy[hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  function fallbackCopy(text) {
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "cs-offscreen";
      document.body.appendChild(area);
      area.select();
      try {
        if (document.execCommand("copy")) {
          resolve();
        } else {
          reject(new Error("copy refused"));
        }
      } catch (error) {
        reject(error);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.cs-copy");
    if (!button) {
      return;
    }
    var source = document.getElementById(button.dataset.copy);
    if (!source) {
      return;
    }
    var texts = document.body.dataset;
    copy(source.textContent.trim()).then(
      function () {
        button.classList.add("cs-copied");
        announce(texts.copiedText || "Copied");
        window.setTimeout(function () {
          button.classList.remove("cs-copied");
        }, 2000);
      },
      function () {
        announce(texts.copyFailedText || "Could not copy; select the text instead.");
      }
    );
  });

  document.addEventListener("DOMContentLoaded", function () {
    reveal(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    reveal(event.target);
  });
})();
