/* kvm-seat web admin: small progressive enhancements. Every page works without it. */
(function () {
  "use strict";

  // The browser's time zone, so that the server shows and reads times in it.
  var offset = -new Date().getTimezoneOffset();
  document.cookie = "kvm_tz=" + offset + "; path=/; SameSite=Lax";

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
    }
  }, true);

  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) {
      el.form.submit();
    }
  });

  var routing = document.getElementById("routing");
  if (routing) {
    live(routing);
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function live(section) {
    var url = section.getAttribute("data-live");
    var table = document.getElementById("routing-table");
    var body = document.getElementById("routing-body");
    var state = document.getElementById("live-state");
    var form = document.getElementById("routing-filter");
    var q = document.getElementById("routing-q");
    var sel = document.getElementById("routing-state");
    var size = document.getElementById("routing-size");
    var prev = document.getElementById("page-prev");
    var next = document.getElementById("page-next");
    var pageNo = document.getElementById("routing-pageno");
    var rangeText = document.getElementById("routing-range");
    var pageText = document.getElementById("routing-page");
    var rxInput = document.getElementById("rx");
    var deviceUrl = table.getAttribute("data-device-url");
    var page = parseInt(pageNo.value, 10) || 1;
    var timer = null;
    var inFlight = false;
    var debounce = null;

    function t(name) { return table.getAttribute("data-t-" + name) || ""; }

    function params() {
      var p = new URLSearchParams();
      if (q.value) { p.set("q", q.value); }
      if (sel.value !== "all") { p.set("state", sel.value); }
      if (size.value !== "50") { p.set("size", size.value); }
      if (page > 1) { p.set("page", String(page)); }
      return p;
    }

    function deviceLink(id) {
      var a = el("a", "id", id);
      a.href = deviceUrl.replace("0000", encodeURIComponent(id));
      return a;
    }

    function dot(colour) {
      var d = el("span", "dot " + colour);
      d.title = t(colour);
      return d;
    }

    function row(r) {
      var tr = el("tr", r.rx_colour === "red" ? "off" : "");
      tr.setAttribute("data-rx", r.rx);
      var c1 = el("td", "c-rx");
      c1.appendChild(dot(r.rx_colour));
      c1.appendChild(deviceLink(r.rx));
      if (r.heads > 1) { c1.appendChild(el("span", "head", ":" + r.head)); }
      c1.appendChild(document.createTextNode(" "));
      c1.appendChild(el("span", "name", r.rx_name));
      var c2 = el("td", "c-seat");
      if (r.wall) { c2.appendChild(el("span", "pill wall", r.wall)); }
      else if (r.seat !== r.rx) { c2.textContent = r.seat; }
      var c3 = el("td", "c-user");
      if (r.user) { c3.appendChild(el("span", "user", r.user)); }
      var c4 = el("td", "c-arrow", r.tx ? "\u25C0" : "");
      var c5 = el("td", "c-tx");
      if (r.tx) {
        c5.appendChild(dot(r.tx_colour));
        c5.appendChild(deviceLink(r.tx));
        c5.appendChild(el("span", "head", ":" + r.tx_head));
        c5.appendChild(document.createTextNode(" "));
        c5.appendChild(el("span", "name", r.tx_name));
      } else {
        c5.appendChild(el("span", "muted", t("no-source")));
      }
      var c6 = el("td", "c-by", r.set_by);
      var c7 = el("td", "c-flag");
      if (r.pushed) { c7.appendChild(el("span", "pill pushed", t("pushed"))); }
      [c1, c2, c3, c4, c5, c6, c7].forEach(function (c) { tr.appendChild(c); });
      return tr;
    }

    function render(data) {
      Object.keys(data.counts).forEach(function (key) {
        document.querySelectorAll('[data-count="' + key + '"]').forEach(function (node) {
          node.textContent = data.counts[key];
        });
      });
      var pending = document.getElementById("stat-pending");
      if (pending) { pending.classList.toggle("attention", data.counts.pending > 0); }
      var fragment = document.createDocumentFragment();
      data.rows.forEach(function (r) { fragment.appendChild(row(r)); });
      if (!data.rows.length) {
        var tr = el("tr", "empty");
        var td = el("td", "", t("empty"));
        td.colSpan = 7;
        tr.appendChild(td);
        fragment.appendChild(tr);
      }
      body.replaceChildren(fragment);
      page = data.page;
      pageNo.value = String(page);
      rangeText.textContent = formatRange(data);
      pageText.textContent = data.page + " / " + data.pages;
      prev.disabled = data.page <= 1;
      next.disabled = data.page >= data.pages;
    }

    var rangeTemplate = rangeText.textContent;
    var initialNumbers = rangeTemplate.match(/\d+/g) || [];
    function formatRange(data) {
      // The server rendered "first–last of total" in the page's language: put the new
      // numbers where the old ones were.
      if (initialNumbers.length !== 3) { return data.first + "–" + data.last + " / " + data.total; }
      var i = 0;
      var values = [data.first, data.last, data.total];
      return rangeTemplate.replace(/\d+/g, function () { return String(values[i++]); });
    }

    function poll() {
      if (inFlight) { return; }
      inFlight = true;
      fetch(url + "?" + params().toString(), {
        credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store"
      }).then(function (resp) {
        if (resp.status === 401) {
          window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname +
                                                                       window.location.search);
          return null;
        }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      }).then(function (data) {
        if (!data) { return; }
        render(data);
        state.textContent = state.getAttribute("data-ok");
        state.classList.remove("lost");
        state.classList.remove("tick");
        void state.offsetWidth;
        state.classList.add("tick");
      }).catch(function () {
        state.textContent = state.getAttribute("data-fail");
        state.classList.add("lost");
      }).then(function () {
        inFlight = false;
      });
    }

    function refresh() {
      var p = params().toString();
      history.replaceState(null, "", window.location.pathname + (p ? "?" + p : ""));
      poll();
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = ev.submitter;
      if (button && button.name === "page") { page = parseInt(button.value, 10) || 1; }
      refresh();
    });
    q.addEventListener("input", function () {
      page = 1;
      clearTimeout(debounce);
      debounce = setTimeout(refresh, 250);
    });
    sel.addEventListener("change", function () { page = 1; refresh(); });
    size.addEventListener("change", function () { page = 1; refresh(); });
    body.addEventListener("click", function (ev) {
      if (ev.target.closest("a")) { return; }
      var tr = ev.target.closest("tr[data-rx]");
      if (tr && rxInput) {
        rxInput.value = tr.getAttribute("data-rx");
        rxInput.focus();
      }
    });

    timer = setInterval(poll, 2000);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { clearInterval(timer); timer = null; }
      else if (!timer) { poll(); timer = setInterval(poll, 2000); }
    });
  }
}());
