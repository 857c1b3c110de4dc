// Small behaviours that CSP forbids inline: print buttons and select-all boxes.
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) { window.print(); }
  var all = event.target.closest("[data-select-all]");
  if (all) {
    document.querySelectorAll(all.getAttribute("data-select-all")).forEach(function (box) { box.checked = all.checked; });
  }
});
