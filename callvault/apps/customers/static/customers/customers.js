// Customer pages: confirm destructive forms, add phone rows without reloading.
(function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var add = document.querySelector("[data-add-phone]");
  var rows = document.querySelector("[data-phone-rows]");
  if (add && rows) {
    add.hidden = false;
    add.addEventListener("click", function () {
      var all = rows.querySelectorAll(".cu-phone-row");
      if (all.length >= 20) { return; }
      var copy = all[all.length - 1].cloneNode(true);
      copy.querySelector("input").value = "";
      rows.appendChild(copy);
      copy.querySelector("input").focus();
    });
  }
})();
