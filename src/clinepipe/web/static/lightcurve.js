/* clinepipe: an interactive light curve on a <canvas>.
 *
 * Plain JavaScript, no library and nothing loaded from the network but this app's own
 * /api/stars/{id}/lightcurve. Magnitudes increase downward (brighter is up), one colour per
 * filter, 1-sigma error bars. Drag a rectangle or turn the wheel to zoom, double-click or
 * "Reset zoom" to see everything, hover for a point's values, tick filters on and off, fold
 * on a period. When a drawing is done the container gets data-drawn="true" and
 * data-points="<points drawn>", data-error-bars="<error bars drawn>" (the browser test reads
 * them).
 */
(function () {
  "use strict";

  var COLOURS = { U: "#7b3fb5", B: "#1f5fbf", V: "#2a9d3a", R: "#c8322d", I: "#8c564b",
                  Red: "#e0533d", Green: "#4caf50", Blue: "#3f7fd6", Lum: "#555555",
                  Halpha: "#d6278f" };
  var SPARE = ["#e08a00", "#17a2b8", "#6b6b6b", "#b8860b", "#9467bd", "#2f4f4f"];
  var MARGIN = { left: 68, right: 18, top: 14, bottom: 50 };
  var HIT_RADIUS = 9; // px: how close the pointer must be to a point to show it

  // photometry flags (clinepipe.photometry FLAG_*): an open circle on the plot
  var FLAG_NAMES = [[1, "saturated"], [2, "at the edge"], [4, "bad pixel"], [8, "blended"],
                    [16, "no flux"]];
  function flagNames(flags) {
    return FLAG_NAMES.filter(function (f) { return flags & f[0]; })
      .map(function (f) { return f[1]; }).join(", ");
  }

  function colourFor(filter, index) {
    return COLOURS[filter] || SPARE[index % SPARE.length];
  }

  /* Round numbers for axis ticks: 1, 2 or 5 times a power of ten, about `count` of them. */
  function niceTicks(lo, hi, count) {
    var span = hi - lo;
    if (!(span > 0)) { return { step: 1, values: [lo] }; }
    var raw = span / count;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var unit = raw / power;
    var step = (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10) * power;
    var values = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return { step: step, values: values };
  }

  function decimalsFor(step) {
    return Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  }

  function jdToUtc(jd) {
    var date = new Date((jd - 2440587.5) * 86400000);
    if (isNaN(date.getTime())) { return ""; }
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function LightCurve(root) {
    this.root = root;
    this.canvas = root.querySelector("[data-role=canvas]");
    this.tip = root.querySelector("[data-role=tip]");
    this.status = root.querySelector("[data-role=status]");
    this.periodInput = root.querySelector("[data-role=period]");
    this.filterBox = root.querySelector("[data-role=filters]");
    this.points = [];      // {t, mag, err, filter, frame, jd}
    this.filters = [];     // filter names, in first-seen order
    this.shown = {};       // filter -> boolean
    this.period = null;    // days, when folded
    this.epoch = 0;
    this.tOffset = 0;
    this.view = null;      // {x0, x1, y0, y1} when zoomed (y0 < y1 in magnitudes)
    this.drag = null;      // {x, y, x2, y2} in css px while dragging
    this.hover = null;     // {point, x} under the pointer
    this.screen = [];      // [{px, py, point, x}] of the last drawing, for hit tests
    this.bindControls();
    this.frameUrl = root.getAttribute("data-frame-url");  // a click opens the point's frame
    this.load(root.getAttribute("data-src"));
  }

  /* Time of minimum light, where a fold puts phase 0: the point faintest relative to the median
     of its own filter (a red star's B points must not win by colour), unflagged points only. */
  function minimumLight(points) {
    var use = points.filter(function (p) { return !p.flags; });
    if (!use.length) { use = points; }
    var byFilter = {};
    use.forEach(function (p) { (byFilter[p.filter] = byFilter[p.filter] || []).push(p.mag); });
    var median = {};
    Object.keys(byFilter).forEach(function (f) {
      var m = byFilter[f].slice().sort(function (a, b) { return a - b; });
      var k = m.length >> 1;
      median[f] = m.length % 2 ? m[k] : (m[k - 1] + m[k]) / 2;
    });
    var best = use[0];
    use.forEach(function (p) {
      if (p.mag - median[p.filter] > best.mag - median[best.filter]) { best = p; }
    });
    return best.t;
  }

  LightCurve.prototype.setStatus = function (text) {
    if (this.status) { this.status.textContent = text; }
  };

  LightCurve.prototype.load = function (url) {
    var self = this;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("the server answered " + response.status); }
        return response.json();
      })
      .then(function (rows) { self.setData(rows); })
      .catch(function (error) {
        self.root.setAttribute("data-drawn", "error");
        self.setStatus("Could not load the light curve (" + error.message + ").");
      });
  };

  LightCurve.prototype.setData = function (rows) {
    var self = this;
    rows.forEach(function (r) {
      var t = (r.bjd_tdb !== null && r.bjd_tdb !== undefined) ? r.bjd_tdb : r.jd_mid;
      if (typeof r.mag !== "number" || typeof t !== "number") { return; }
      var filter = r.filter || "?";
      if (r.telescope !== undefined) { filter += " · " + (r.telescope || "unnamed"); }  // one series per telescope
      if (!(filter in self.shown)) { self.shown[filter] = true; self.filters.push(filter); }
      self.points.push({ t: t, mag: r.mag, err: typeof r.mag_err === "number" ? r.mag_err : 0,
                         filter: filter, frame: r.frame || "", jd: r.jd_mid,
                         flags: typeof r.flags === "number" ? r.flags : 0 });
    });
    if (this.points.length) {
      var tmin = Math.min.apply(null, this.points.map(function (p) { return p.t; }));
      var given = parseFloat(this.root.getAttribute("data-epoch"));  // a known variable's epoch
      this.epochSource = isFinite(given) ? "the known epoch" : "minimum light";
      this.epoch = isFinite(given) ? given : minimumLight(this.points);
      this.tOffset = Math.floor(tmin / 1000) * 1000;
    }
    this.buildFilterToggles();
    var wanted = /^#fold(?:=([0-9.eE+-]+))?$/.exec(window.location.hash);
    if (wanted) {
      if (wanted[1]) { this.periodInput.value = wanted[1]; }
      this.fold(parseFloat(this.periodInput.value));
    } else {
      this.draw();
    }
  };

  /* The address remembers the fold (#fold=P), so a folded view can be shared. */
  LightCurve.prototype.remember = function () {
    if (!window.history || !window.history.replaceState) { return; }
    var url = window.location.pathname + window.location.search +
              (this.period ? "#fold=" + this.period : "");
    window.history.replaceState(null, "", url);
  };

  LightCurve.prototype.buildFilterToggles = function () {
    var self = this;
    if (!this.filterBox) { return; }
    this.filterBox.textContent = "";
    this.filters.forEach(function (filter, i) {
      var n = self.points.filter(function (p) { return p.filter === filter; }).length;
      var label = document.createElement("label");
      label.className = "lc-toggle";
      var box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.addEventListener("change", function () {
        self.shown[filter] = box.checked;
        self.draw();
      });
      var swatch = document.createElement("span");
      swatch.className = "lc-swatch";
      swatch.style.backgroundColor = colourFor(filter, i);
      label.appendChild(box);
      label.appendChild(swatch);
      label.appendChild(document.createTextNode(filter + " (" + n + ")"));
      self.filterBox.appendChild(label);
    });
  };

  LightCurve.prototype.bindControls = function () {
    var self = this;
    function on(role, handler) {
      self.root.querySelectorAll("[data-role=" + role + "]").forEach(function (el) {
        el.addEventListener("click", handler);
      });
    }
    on("reset", function () { self.view = null; self.draw(); });
    on("fold", function () { self.fold(parseFloat(self.periodInput.value)); });
    on("time", function () { self.period = null; self.view = null; self.remember(); self.draw(); });
    on("half", function () { self.scalePeriod(0.5); });
    on("double", function () { self.scalePeriod(2); });
    document.querySelectorAll("[data-role=use-period]").forEach(function (el) {
      el.addEventListener("click", function () {
        self.periodInput.value = el.getAttribute("data-value");
        self.fold(parseFloat(el.getAttribute("data-value")));
        self.root.scrollIntoView({ behavior: "smooth", block: "start" });
      });
    });
    if (this.periodInput) {
      this.periodInput.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); self.fold(parseFloat(self.periodInput.value)); }
      });
    }
    var c = this.canvas;
    c.addEventListener("mousedown", function (e) { self.onDown(e); });
    window.addEventListener("mousemove", function (e) { self.onMove(e); });
    window.addEventListener("mouseup", function (e) { self.onUp(e); });
    c.addEventListener("mouseleave", function () {
      if (!self.drag) { self.hover = null; self.showTip(null); self.draw(); }
    });
    c.addEventListener("dblclick", function () { self.view = null; self.draw(); });
    c.addEventListener("wheel", function (e) { self.onWheel(e); }, { passive: false });
    var pending = false;
    window.addEventListener("resize", function () {
      if (pending) { return; }
      pending = true;
      window.requestAnimationFrame(function () { pending = false; self.draw(); });
    });
  };

  LightCurve.prototype.fold = function (period) {
    if (!(period > 0) || !isFinite(period)) {
      if (!this.box) { this.draw(); }
      this.setStatus("Enter a period in days (a positive number, e.g. 0.5) to fold the light curve.");
      return;
    }
    this.period = period;
    this.view = null;
    this.remember();
    this.draw();
  };

  LightCurve.prototype.scalePeriod = function (factor) {
    var p = parseFloat(this.periodInput.value);
    if (!(p > 0)) { this.fold(p); return; }
    this.periodInput.value = (p * factor).toPrecision(8).replace(/\.?0+$/, "");
    this.fold(p * factor);
  };

  /* x of a point on the current axis: time minus offset, or phase (shown twice, 0..2). */
  LightCurve.prototype.xValues = function (p) {
    if (!this.period) { return [p.t - this.tOffset]; }
    var phase = ((p.t - this.epoch) / this.period) % 1;
    if (phase < 0) { phase += 1; }
    return [phase, phase + 1];
  };

  LightCurve.prototype.visible = function () {
    var shown = this.shown;
    return this.points.filter(function (p) { return shown[p.filter]; });
  };

  LightCurve.prototype.autoLimits = function (pts) {
    var self = this;
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    pts.forEach(function (p) {
      self.xValues(p).forEach(function (x) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); });
      y0 = Math.min(y0, p.mag - p.err);
      y1 = Math.max(y1, p.mag + p.err);
    });
    if (this.period) { x0 = 0; x1 = 2; }
    if (!isFinite(x0)) { x0 = 0; x1 = 1; y0 = 10; y1 = 11; }
    var dx = (x1 - x0) || 1, dy = (y1 - y0) || 0.1;
    if (!this.period) { x0 -= 0.03 * dx; x1 += 0.03 * dx; }
    return { x0: x0, x1: x1, y0: y0 - 0.08 * dy, y1: y1 + 0.08 * dy };
  };

  LightCurve.prototype.layout = function () {
    var rect = this.canvas.getBoundingClientRect();
    var width = Math.max(320, Math.round(rect.width || this.canvas.parentNode.clientWidth || 800));
    var height = Math.max(260, Math.round(rect.height || 420));
    var ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(height * ratio)) {
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
    }
    return { width: width, height: height, ratio: ratio,
             left: MARGIN.left, top: MARGIN.top,
             right: width - MARGIN.right, bottom: height - MARGIN.bottom };
  };

  LightCurve.prototype.draw = function () {
    var box = this.layout();
    this.box = box;
    var ctx = this.canvas.getContext("2d");
    ctx.setTransform(box.ratio, 0, 0, box.ratio, 0, 0);
    ctx.clearRect(0, 0, box.width, box.height);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, box.width, box.height);

    var pts = this.visible();
    var lim = this.view || this.autoLimits(pts);
    this.lim = lim;
    var sx = (box.right - box.left) / (lim.x1 - lim.x0);
    var sy = (box.bottom - box.top) / (lim.y1 - lim.y0);
    this.toPx = function (x) { return box.left + (x - lim.x0) * sx; };
    this.toPy = function (mag) { return box.top + (mag - lim.y0) * sy; }; // fainter = lower
    this.fromPx = function (px) { return lim.x0 + (px - box.left) / sx; };
    this.fromPy = function (py) { return lim.y0 + (py - box.top) / sy; };

    this.drawAxes(ctx, box, lim);
    this.errorBars = 0;  // counted by drawPoints, for the browser test
    var drawn = this.drawPoints(ctx, box, pts);

    if (this.drag) {
      var d = this.drag;
      ctx.fillStyle = "rgba(31, 95, 191, 0.12)";
      ctx.strokeStyle = "rgba(31, 95, 191, 0.8)";
      ctx.lineWidth = 1;
      ctx.fillRect(Math.min(d.x, d.x2), Math.min(d.y, d.y2), Math.abs(d.x2 - d.x), Math.abs(d.y2 - d.y));
      ctx.strokeRect(Math.min(d.x, d.x2) + 0.5, Math.min(d.y, d.y2) + 0.5, Math.abs(d.x2 - d.x), Math.abs(d.y2 - d.y));
    }
    if (!this.points.length) {
      ctx.fillStyle = "#666";
      ctx.font = "16px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText("No calibrated magnitudes for this star yet.", (box.left + box.right) / 2, (box.top + box.bottom) / 2);
    }
    this.root.setAttribute("data-points", String(drawn));
    this.root.setAttribute("data-error-bars", String(this.errorBars));
    this.root.setAttribute("data-drawn", "true");
    this.canvas.setAttribute("data-points", String(drawn));
    this.updateStatus(drawn, pts.length);
  };

  LightCurve.prototype.updateStatus = function (drawn, visible) {
    var text = this.points.length + " point" + (this.points.length === 1 ? "" : "s");
    if (visible !== this.points.length) { text += ", " + visible + " shown"; }
    if (this.view) { text += ", " + drawn + " in the zoomed area"; }
    text += this.period ? " · folded on P = " + this.period + " d (phase 0 = " + this.epochSource + ", " +
                                     this.epoch.toFixed(5) + "; two cycles shown)"
                        : " · time axis: barycentric Julian date (TDB)";
    this.setStatus(text);
  };

  LightCurve.prototype.drawAxes = function (ctx, box, lim) {
    ctx.font = "12px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.lineWidth = 1;
    var xt = niceTicks(lim.x0, lim.x1, Math.max(3, Math.floor((box.right - box.left) / 90)));
    var yt = niceTicks(lim.y0, lim.y1, Math.max(3, Math.floor((box.bottom - box.top) / 45)));
    var xd = decimalsFor(xt.step), yd = decimalsFor(yt.step);
    var self = this;

    ctx.strokeStyle = "#e6e9ef";
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    xt.values.forEach(function (v) {
      var px = Math.round(self.toPx(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, box.top); ctx.lineTo(px, box.bottom); ctx.stroke();
      ctx.fillText(v.toFixed(xd), px, box.bottom + 6);
    });
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    yt.values.forEach(function (v) {
      var py = Math.round(self.toPy(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(box.left, py); ctx.lineTo(box.right, py); ctx.stroke();
      ctx.fillText(v.toFixed(yd), box.left - 6, py);
    });
    ctx.strokeStyle = "#8a93a3";
    ctx.strokeRect(box.left + 0.5, box.top + 0.5, box.right - box.left, box.bottom - box.top);

    ctx.fillStyle = "#222";
    ctx.font = "13px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    var xlabel = this.period ? "phase (period " + this.period + " d)"
                             : "BJD (TDB) − " + this.tOffset + "   [days]";
    ctx.fillText(xlabel, (box.left + box.right) / 2, box.height - 6);
    ctx.save();
    ctx.translate(16, (box.top + box.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText("magnitude (brighter ↑)", 0, 0);
    ctx.restore();
  };

  LightCurve.prototype.drawPoints = function (ctx, box, pts) {
    var self = this;
    var lim = this.lim;
    var screen = [];
    var inside = {};
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.right - box.left, box.bottom - box.top);
    ctx.clip();
    this.filters.forEach(function (filter, i) {
      if (!self.shown[filter]) { return; }
      var colour = colourFor(filter, i);
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.globalAlpha = 0.55;
      ctx.lineWidth = 1;
      ctx.beginPath();
      pts.forEach(function (p, k) {
        if (p.filter !== filter || !(p.err > 0)) { return; }
        self.xValues(p).forEach(function (x) {
          var px = self.toPx(x);
          ctx.moveTo(px, self.toPy(p.mag - p.err));
          ctx.lineTo(px, self.toPy(p.mag + p.err));
          self.errorBars += 1;
        });
      });
      ctx.stroke();
      ctx.globalAlpha = 1;
      pts.forEach(function (p, k) {
        if (p.filter !== filter) { return; }
        self.xValues(p).forEach(function (x) {
          var px = self.toPx(x), py = self.toPy(p.mag);
          ctx.beginPath();
          ctx.arc(px, py, 3, 0, 2 * Math.PI);
          if (p.flags) { ctx.stroke(); } else { ctx.fill(); }  // flagged: an open circle
          screen.push({ px: px, py: py, point: p, x: x });
          if (x >= lim.x0 && x <= lim.x1 && p.mag >= lim.y0 && p.mag <= lim.y1) { inside[k] = true; }
        });
      });
    });
    if (this.hover) {
      var h = this.hover;
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(this.toPx(h.x), this.toPy(h.point.mag), 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.restore();
    this.screen = screen;
    return Object.keys(inside).length;
  };

  LightCurve.prototype.eventXY = function (e) {
    var rect = this.canvas.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top, inside:
             e.clientX >= rect.left && e.clientX <= rect.right && e.clientY >= rect.top && e.clientY <= rect.bottom };
  };

  LightCurve.prototype.inPlot = function (xy) {
    var b = this.box;
    return b && xy.x >= b.left && xy.x <= b.right && xy.y >= b.top && xy.y <= b.bottom;
  };

  LightCurve.prototype.onDown = function (e) {
    var xy = this.eventXY(e);
    if (e.button !== 0 || !this.inPlot(xy)) { return; }
    e.preventDefault();
    this.drag = { x: xy.x, y: xy.y, x2: xy.x, y2: xy.y };
    this.showTip(null);
  };

  LightCurve.prototype.onMove = function (e) {
    if (!this.box) { return; }
    var xy = this.eventXY(e);
    var b = this.box;
    if (this.drag) {
      this.drag.x2 = Math.min(b.right, Math.max(b.left, xy.x));
      this.drag.y2 = Math.min(b.bottom, Math.max(b.top, xy.y));
      this.draw();
      return;
    }
    if (!xy.inside) { return; }
    var best = null, bestD = HIT_RADIUS * HIT_RADIUS;
    this.screen.forEach(function (s) {
      var d = (s.px - xy.x) * (s.px - xy.x) + (s.py - xy.y) * (s.py - xy.y);
      if (d <= bestD) { bestD = d; best = s; }
    });
    var changed = (best ? best.point : null) !== (this.hover ? this.hover.point : null) ||
                  (best && this.hover && best.x !== this.hover.x);
    this.hover = best ? { point: best.point, x: best.x } : null;
    if (changed) { this.draw(); }
    this.showTip(best, xy);
    this.canvas.style.cursor = best ? "pointer" : "crosshair";
  };

  LightCurve.prototype.onUp = function () {
    var d = this.drag;
    if (!d) { return; }
    this.drag = null;
    var w = Math.abs(d.x2 - d.x), h = Math.abs(d.y2 - d.y);
    if (w <= 6 && h <= 6 && this.hover && this.hover.point.frame && this.frameUrl) {
      var p = this.hover.point;  // a click, not a drag: the frame this point came from
      window.location.href = this.frameUrl + "?path=" + encodeURIComponent(p.frame) +
        "&jd=" + encodeURIComponent(p.jd);
      return;
    }
    if (w > 6) {
      var lim = this.lim;
      var x0 = this.fromPx(Math.min(d.x, d.x2)), x1 = this.fromPx(Math.max(d.x, d.x2));
      var y0 = lim.y0, y1 = lim.y1;
      if (h > 6) { y0 = this.fromPy(Math.min(d.y, d.y2)); y1 = this.fromPy(Math.max(d.y, d.y2)); }
      this.view = { x0: x0, x1: x1, y0: y0, y1: y1 };
    }
    this.draw();
  };

  LightCurve.prototype.onWheel = function (e) {
    var xy = this.eventXY(e);
    if (!this.inPlot(xy) || !this.lim) { return; }
    e.preventDefault();
    var factor = e.deltaY < 0 ? 1 / 1.25 : 1.25;
    var cx = this.fromPx(xy.x), cy = this.fromPy(xy.y), lim = this.lim;
    this.view = { x0: cx - (cx - lim.x0) * factor, x1: cx + (lim.x1 - cx) * factor,
                  y0: e.shiftKey ? lim.y0 : cy - (cy - lim.y0) * factor,
                  y1: e.shiftKey ? lim.y1 : cy + (lim.y1 - cy) * factor };
    this.hover = null;
    this.showTip(null);
    this.draw();
  };

  LightCurve.prototype.showTip = function (hit, xy) {
    var tip = this.tip;
    if (!tip) { return; }
    if (!hit) { tip.hidden = true; return; }
    var p = hit.point;
    var lines = [
      p.filter + "   " + p.mag.toFixed(3) + " ± " + p.err.toFixed(3) + " mag",
      "BJD " + p.t.toFixed(5),
      jdToUtc(typeof p.jd === "number" ? p.jd : p.t)
    ];
    if (this.period) { lines.push("phase " + (hit.x % 1).toFixed(3)); }
    if (p.flags) { lines.push("flagged: " + flagNames(p.flags)); }
    if (p.frame) { lines.push(p.frame); }
    tip.textContent = "";
    lines.forEach(function (line, i) {
      var div = document.createElement("div");
      div.textContent = line;
      if (i === 0) { div.className = "lc-tip-head"; }
      tip.appendChild(div);
    });
    tip.hidden = false;
    var plotWidth = this.canvas.clientWidth;
    var left = hit.px + 14, top = hit.py + 14;
    if (left + tip.offsetWidth > plotWidth) { left = hit.px - tip.offsetWidth - 14; }
    if (top + tip.offsetHeight > this.canvas.clientHeight) { top = hit.py - tip.offsetHeight - 14; }
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, top) + "px";
  };

  function start() {
    document.querySelectorAll("section.lc[data-src]").forEach(function (root) {
      root.lightCurve = new LightCurve(root);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
