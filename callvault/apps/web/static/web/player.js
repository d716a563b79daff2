/* The call page: player (waveform, speed, per-channel listening, shortcuts) and the forms for
 * tags and comments. Plain JavaScript, no dependencies; the page works without it (native
 * <audio controls>, ordinary POST forms), this script makes it comfortable.
 */
(function () {
  "use strict";

  var T = readJson("cv-call-text") || {};
  var live = null;

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function text(key, fallback) { return T[key] || fallback; }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds || 0));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = (m < 10 ? "0" : "") + m, ss = (r < 10 ? "0" : "") + r;
    return h ? h + ":" + mm + ":" + ss : mm + ":" + ss;
  }

  function announce(message) {
    if (!message) return;
    if (!live) {
      live = document.createElement("div");
      live.className = "cv-toast";
      live.setAttribute("role", "status");
      live.setAttribute("aria-live", "polite");
      document.body.appendChild(live);
    }
    live.textContent = message;
    live.classList.add("is-shown");
    clearTimeout(announce.timer);
    announce.timer = setTimeout(function () { live.classList.remove("is-shown"); }, 3200);
  }

  function isTyping(target) {
    if (!target || !target.closest) return false;
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']");
  }

  // -- player ------------------------------------------------------------------------------------

  function Player(root, data) {
    this.root = root;
    this.data = data;
    this.audio = root.querySelector("[data-audio]");
    this.ui = root.querySelector("[data-ui]");
    this.wave = root.querySelector("[data-wave]");
    this.canvas = root.querySelector("[data-canvas]");
    this.status = root.querySelector("[data-wave-status]");
    this.playBtn = root.querySelector("[data-play]");
    this.current = root.querySelector("[data-current]");
    this.speed = root.querySelector("[data-speed]");
    this.error = root.querySelector("[data-player-error]");
    this.markerBox = root.querySelector("[data-markers]");
    this.duration = Number(data.duration) || 0;
    this.peaks = null;
    this.pending = null; // a seek asked for before the audio is loaded
    this.hover = null;
    this.enabled = [true, true];
    this.graph = null;
    this.sources = [];
    this.sourceIndex = -1;
    this.init();
  }

  Player.prototype.init = function () {
    var self = this;
    var audio = this.audio;
    this.sources = (this.data.sources || []).filter(function (s) {
      return s.type && audio.canPlayType(s.type) !== "";
    });
    if (!this.sources.length) this.sources = this.data.sources || [];
    while (audio.firstChild) audio.removeChild(audio.firstChild);
    this.useSource(0);
    audio.controls = false;
    audio.hidden = true;
    this.ui.hidden = false;

    this.playBtn.addEventListener("click", function () { self.toggle(); });
    this.root.querySelectorAll("[data-skip]").forEach(function (b) {
      b.addEventListener("click", function () { self.skip(Number(b.getAttribute("data-skip"))); });
    });
    this.speed.addEventListener("change", function () { self.setRate(Number(self.speed.value)); });
    this.root.querySelectorAll("[data-channel]").forEach(function (b) {
      b.addEventListener("click", function () { self.toggleChannel(Number(b.getAttribute("data-channel"))); });
    });

    ["play", "pause", "ended"].forEach(function (ev) {
      audio.addEventListener(ev, function () { self.syncPlaying(); });
    });
    audio.addEventListener("timeupdate", function () { self.render(); });
    audio.addEventListener("seeked", function () { self.render(); });
    audio.addEventListener("loadedmetadata", function () {
      audio.playbackRate = Number(self.speed.value) || 1;
      if (self.pending !== null) {
        var t = self.pending;
        self.pending = null;
        try { audio.currentTime = t; } catch (e) { /* applied on the next seek */ }
      }
    });
    audio.addEventListener("waiting", function () { self.setError(""); self.setBusy(true); });
    audio.addEventListener("playing", function () { self.setBusy(false); });
    audio.addEventListener("canplay", function () { self.setBusy(false); });
    audio.addEventListener("error", function () { self.onAudioError(); });

    this.bindWave();
    if ("ResizeObserver" in window) {
      new ResizeObserver(function () { self.draw(); }).observe(this.wave);
    } else {
      window.addEventListener("resize", function () { self.draw(); });
    }
    this.setMarkers(this.data.markers || []);
    this.loadPeaks();
    this.setMediaSession();
    this.render();
  };

  Player.prototype.useSource = function (index) {
    this.sourceIndex = index;
    var s = this.sources[index];
    if (!s) return false;
    this.audio.preload = "none";
    this.audio.src = s.url;
    return true;
  };

  Player.prototype.onAudioError = function () {
    var self = this;
    var failed = this.sources[this.sourceIndex];
    var code = this.audio.error ? this.audio.error.code : 0;
    this.setBusy(false);
    // A format this browser turned out not to decode: try the next one (Ogg Opus -> AAC).
    if (code === 4 && this.sourceIndex + 1 < this.sources.length) {
      var at = this.position();
      this.useSource(this.sourceIndex + 1);
      this.pending = at;
      this.audio.play().catch(function () { self.syncPlaying(); });
      return;
    }
    this.setError(text("audio_error", "音声を読み込めませんでした。"));
    if (!failed || !window.fetch) return;
    // Ask the server why (the same listening session: no new audit entry).
    fetch(failed.url, { headers: { Range: "bytes=0-0" }, credentials: "same-origin" })
      .then(function (res) {
        if (res.ok) return null;
        return res.text().then(function (body) {
          var type = res.headers.get("Content-Type") || "";
          if (res.status === 404) return text("gone", "この録音は見つからないか、閲覧できなくなりました。");
          return type.indexOf("text/plain") === 0 && body.length < 300 ? body : null;
        });
      })
      .then(function (message) { if (message) self.setError(message); })
      .catch(function () { /* keep the generic message */ });
  };

  Player.prototype.setError = function (message) {
    this.error.textContent = message || "";
    this.error.hidden = !message;
  };

  Player.prototype.setBusy = function (busy) {
    this.playBtn.setAttribute("aria-busy", busy ? "true" : "false");
    this.root.classList.toggle("is-loading", !!busy);
  };

  Player.prototype.position = function () {
    if (this.pending !== null) return this.pending;
    return this.audio.currentTime || 0;
  };

  Player.prototype.loaded = function () { return this.audio.readyState >= 1; };

  Player.prototype.seek = function (t, opts) {
    var target = Math.max(0, Math.min(this.duration || t, t));
    if (this.loaded()) {
      this.audio.currentTime = target;
    } else {
      this.pending = target;
    }
    if (opts && opts.play) this.play();
    this.render();
  };

  Player.prototype.skip = function (delta) { this.seek(this.position() + delta); };

  Player.prototype.play = function () {
    var self = this;
    this.setError("");
    if (this.graph && this.graph.ctx.state === "suspended") this.graph.ctx.resume();
    var p = this.audio.play();
    if (p && p.catch) {
      p.catch(function (err) {
        if (err && err.name === "NotAllowedError") return;
        self.syncPlaying();
      });
    }
  };

  Player.prototype.toggle = function () {
    if (this.audio.paused) this.play(); else this.audio.pause();
  };

  Player.prototype.setRate = function (rate) {
    if (!(rate >= 0.5 && rate <= 2)) return;
    this.audio.playbackRate = rate;
    this.audio.defaultPlaybackRate = rate;
    this.speed.value = String(rate);
  };

  Player.prototype.stepRate = function (dir) {
    var options = Array.prototype.map.call(this.speed.options, function (o) { return o.value; });
    var i = options.indexOf(this.speed.value) + dir;
    if (i >= 0 && i < options.length) {
      this.setRate(Number(options[i]));
      announce(text("speed", "速度") + " " + this.speed.options[i].textContent);
    }
  };

  Player.prototype.syncPlaying = function () {
    var playing = !this.audio.paused && !this.audio.ended;
    this.playBtn.classList.toggle("is-playing", playing);
    this.playBtn.setAttribute("aria-label", this.playBtn.getAttribute(playing ? "data-label-pause" : "data-label-play"));
    if (playing) this.tick(); else this.render();
  };

  Player.prototype.tick = function () {
    var self = this;
    if (this.raf) return;
    var loop = function () {
      self.raf = null;
      self.render();
      if (!self.audio.paused) self.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  };

  // Web Audio graph, built on the first channel toggle only (plain playback never depends on it):
  // source -> splitter -> one GainNode per channel (mute) -> merger; a channel heard alone is
  // also fed to the other ear (cross gains), so "customer only" is in both ears, not one.
  Player.prototype.ensureGraph = function () {
    if (this.graph) return this.graph;
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) throw new Error("Web Audio is not available");
    var ctx = new AC();
    var source = ctx.createMediaElementSource(this.audio);
    var split = ctx.createChannelSplitter(2);
    var merge = ctx.createChannelMerger(2);
    var gains = [ctx.createGain(), ctx.createGain()];
    var cross = [ctx.createGain(), ctx.createGain()];
    source.connect(split);
    split.connect(gains[0], 0);
    split.connect(gains[1], 1);
    gains[0].connect(merge, 0, 0);
    gains[1].connect(merge, 0, 1);
    gains[0].connect(cross[0]);
    gains[1].connect(cross[1]);
    cross[0].connect(merge, 0, 1);
    cross[1].connect(merge, 0, 0);
    cross[0].gain.value = 0;
    cross[1].gain.value = 0;
    merge.connect(ctx.destination);
    this.graph = { ctx: ctx, gains: gains, cross: cross };
    return this.graph;
  };

  Player.prototype.toggleChannel = function (ch) {
    if (!this.data.stereo) return;
    var next = this.enabled.slice();
    next[ch] = !next[ch];
    var g;
    try {
      g = this.ensureGraph();
    } catch (e) {
      this.setError(text("no_webaudio", "このブラウザーでは話者ごとの再生に対応していません。"));
      return;
    }
    this.enabled = next;
    var now = g.ctx.currentTime;
    for (var i = 0; i < 2; i++) {
      g.gains[i].gain.setTargetAtTime(next[i] ? 1 : 0, now, 0.015);
      g.cross[i].gain.setTargetAtTime(next[i] && !next[1 - i] ? 1 : 0, now, 0.015);
    }
    if (g.ctx.state === "suspended") g.ctx.resume();
    var names = [this.data.left, this.data.right];
    this.root.querySelectorAll("[data-channel]").forEach(function (b) {
      b.setAttribute("aria-pressed", next[Number(b.getAttribute("data-channel"))] ? "true" : "false");
    });
    announce(names[ch] + (next[ch] ? text("ch_on", ": 聞く") : text("ch_off", ": 消音")));
    this.draw();
  };

  // -- waveform ------------------------------------------------------------------------------------

  Player.prototype.loadPeaks = function () {
    var self = this;
    if (!window.fetch) return;
    fetch(this.data.peaks_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          if (!res.ok || !body.peaks) throw new Error(body.error || "");
          return body;
        });
      })
      .then(function (body) {
        self.peaks = body.peaks;
        self.status.textContent = "";
        self.draw();
      })
      .catch(function (err) {
        self.status.textContent = (err && err.message) || text("no_wave", "波形を表示できません (再生はできます)。");
        self.draw();
      });
  };

  Player.prototype.bindWave = function () {
    var self = this;
    var wave = this.wave;
    var dragging = false;
    var at = function (ev) {
      var r = wave.getBoundingClientRect();
      var x = Math.max(0, Math.min(r.width, ev.clientX - r.left));
      return r.width ? (x / r.width) * self.duration : 0;
    };
    wave.addEventListener("pointerdown", function (ev) {
      if (ev.button !== undefined && ev.button !== 0) return;
      dragging = true;
      try { wave.setPointerCapture(ev.pointerId); } catch (e) { /* old Safari */ }
      self.seek(at(ev));
      ev.preventDefault();
    });
    wave.addEventListener("pointermove", function (ev) {
      if (dragging) self.seek(at(ev));
      else if (ev.pointerType === "mouse") { self.hover = at(ev); self.draw(); }
    });
    var stop = function () { dragging = false; };
    wave.addEventListener("pointerup", stop);
    wave.addEventListener("pointercancel", stop);
    wave.addEventListener("pointerleave", function () { self.hover = null; self.draw(); });
    wave.addEventListener("keydown", function (ev) {
      if (ev.key === "Home") { self.seek(0); ev.preventDefault(); }
      else if (ev.key === "End") { self.seek(self.duration); ev.preventDefault(); }
      else if (ev.key === "PageUp") { self.skip(30); ev.preventDefault(); }
      else if (ev.key === "PageDown") { self.skip(-30); ev.preventDefault(); }
    });
  };

  Player.prototype.render = function () {
    var t = this.position();
    this.current.textContent = clock(t);
    this.wave.setAttribute("aria-valuenow", String(Math.round(t)));
    this.wave.setAttribute("aria-valuetext", clock(t) + " / " + clock(this.duration));
    this.draw();
  };

  Player.prototype.draw = function () {
    var canvas = this.canvas;
    var w = this.wave.clientWidth, h = this.wave.clientHeight;
    if (!w || !h) return;
    var dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var css = getComputedStyle(this.root);
    var colour = function (name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; };
    var played = [colour("--cv-left", "#1d6fe0"), colour("--cv-right", "#c2620a")];
    var rest = [colour("--cv-left-soft", "#b9d2f6"), colour("--cv-right-soft", "#f1d2b3")];
    var muted = "#d3d9e0";
    var pos = this.duration ? this.position() / this.duration : 0;
    var channels = this.peaks ? this.peaks.length : (this.data.stereo ? 2 : 1);
    var laneH = h / channels;
    var bar = 3, gap = 1, step = bar + gap;
    var cols = Math.max(1, Math.floor(w / step));
    var top = 0;
    if (this.peaks) {
      for (var c = 0; c < this.peaks.length; c++) {
        for (var i = 0; i < this.peaks[c].length; i++) if (this.peaks[c][i] > top) top = this.peaks[c][i];
      }
    }
    top = Math.max(top, 0.02);
    for (var ch = 0; ch < channels; ch++) {
      var mid = laneH * ch + laneH / 2;
      var row = this.peaks ? this.peaks[ch] : null;
      var on = channels === 1 || this.enabled[ch];
      // the lane's centre line
      g.fillStyle = "rgba(120,130,145,0.25)";
      g.fillRect(0, Math.round(mid), w, 1);
      if (!row) continue;
      var n = row.length;
      for (var x = 0; x < cols; x++) {
        var a = Math.floor((x / cols) * n), b = Math.max(a + 1, Math.floor(((x + 1) / cols) * n));
        var v = 0;
        for (var k = a; k < b && k < n; k++) if (row[k] > v) v = row[k];
        var amp = Math.pow(v / top, 0.75) * (laneH / 2 - 4);
        var bh = Math.max(1, amp);
        var px = x * step;
        var done = (px + bar / 2) / w <= pos;
        g.fillStyle = !on ? muted : done ? played[ch % 2] : rest[ch % 2];
        g.fillRect(px, mid - bh, bar, bh * 2);
      }
    }
    if (channels === 2) {
      g.fillStyle = "rgba(120,130,145,0.35)";
      g.fillRect(0, Math.round(laneH), w, 1);
    }
    // DTMF key presses: small triangles on the bottom edge (the list beside names the digits)
    var dtmf = this.data.dtmf || [];
    if (dtmf.length && this.duration) {
      g.fillStyle = colour("--cv-accent", "#1f5ba8");
      for (var d = 0; d < dtmf.length; d++) {
        var dx = (dtmf[d].t / this.duration) * w;
        g.beginPath();
        g.moveTo(dx, h - 6);
        g.lineTo(dx - 4, h);
        g.lineTo(dx + 4, h);
        g.closePath();
        g.fill();
      }
    }
    if (this.hover !== null && this.duration) {
      var hx = (this.hover / this.duration) * w;
      g.fillStyle = "rgba(31,41,51,0.35)";
      g.fillRect(hx, 0, 1, h);
      var label = clock(this.hover);
      g.font = "600 11px system-ui, sans-serif";
      var tw = g.measureText(label).width + 10;
      var lx = Math.min(Math.max(hx - tw / 2, 0), w - tw);
      g.fillStyle = "rgba(31,41,51,0.85)";
      g.fillRect(lx, 2, tw, 17);
      g.fillStyle = "#fff";
      g.textAlign = "center";
      g.fillText(label, lx + tw / 2, 14);
    }
    // playhead
    var px2 = Math.round(pos * w);
    g.fillStyle = "#1f2933";
    g.fillRect(Math.min(px2, w - 2), 0, 2, h);
  };

  Player.prototype.setMarkers = function (markers) {
    var self = this;
    var box = this.markerBox;
    if (!box) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    (markers || []).forEach(function (m) {
      if (!self.duration || m.t === null || m.t === undefined) return;
      var b = document.createElement("button");
      b.type = "button";
      b.className = "cv-marker";
      b.style.left = Math.min(100, (m.t / self.duration) * 100) + "%";
      var label = m.label + " " + m.who + ": " + m.text;
      b.title = label;
      b.setAttribute("aria-label", text("marker", "コメント") + " " + label);
      b.addEventListener("click", function (ev) {
        ev.stopPropagation();
        self.seek(m.t, { play: true });
        var item = document.getElementById("comment-" + m.id);
        if (item) {
          item.classList.add("is-flash");
          setTimeout(function () { item.classList.remove("is-flash"); }, 1600);
        }
      });
      box.appendChild(b);
    });
  };

  Player.prototype.setMediaSession = function () {
    if (!("mediaSession" in navigator) || typeof window.MediaMetadata !== "function") return;
    try {
      navigator.mediaSession.metadata = new window.MediaMetadata({
        title: text("media_title", "通話録音"),
        artist: (this.data.left_name || "") + " → " + (this.data.right_name || ""),
        album: "callvault"
      });
    } catch (e) { /* not important */ }
  };

  // -- page-wide behaviour ------------------------------------------------------------------------

  var player = null;
  var playerRoot = document.querySelector("[data-player]");
  var playerData = readJson("cv-player-data");
  if (playerRoot && playerData) {
    try {
      player = new Player(playerRoot, playerData);
    } catch (e) {
      // leave the native <audio controls> in place
      if (window.console) console.error(e);
    }
  }

  document.addEventListener("keydown", function (ev) {
    if (!player || ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || isTyping(ev.target)) return;
    var onControl = ev.target.closest && ev.target.closest("button, a, summary");
    switch (ev.key) {
      case " ":
      case "Spacebar":
        if (onControl) return; // Space presses the focused button
        player.toggle();
        break;
      case "ArrowLeft":
        player.skip(ev.shiftKey ? -1 : -5);
        break;
      case "ArrowRight":
        player.skip(ev.shiftKey ? 1 : 5);
        break;
      case "[":
        player.stepRate(-1);
        break;
      case "]":
        player.stepRate(1);
        break;
      case "1":
      case "2":
        player.toggleChannel(Number(ev.key) - 1);
        break;
      case "c":
      case "C":
        commentAtCurrentTime(true);
        break;
      default:
        return;
    }
    ev.preventDefault();
  });

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("[data-seek]");
    if (link && player) {
      ev.preventDefault();
      player.seek(Number(link.getAttribute("data-seek")), { play: true });
      var r = player.root.getBoundingClientRect();
      if (r.bottom < 0 || r.top > window.innerHeight) player.root.scrollIntoView({ block: "center", behavior: "smooth" });
      return;
    }
    var use = ev.target.closest && ev.target.closest("[data-use-current]");
    if (use) {
      ev.preventDefault();
      commentAtCurrentTime(false);
    }
  });

  function commentAtCurrentTime(focusText) {
    var offset = document.querySelector("[data-comment-offset]");
    var textarea = document.querySelector("[data-comment-text]");
    if (offset && player) {
      offset.value = clock(player.position());
      offset.dataset.touched = "1";
    }
    if (focusText && textarea) textarea.focus();
  }

  function prepareCommentForm() {
    var use = document.querySelector("[data-use-current]");
    if (use && player) use.hidden = false;
    updateCounter();
  }

  function updateCounter() {
    var textarea = document.querySelector("[data-comment-text]");
    var counter = document.querySelector("[data-counter]");
    if (!textarea || !counter) return;
    var max = Number(textarea.getAttribute("maxlength")) || 4000;
    var n = textarea.value.length;
    counter.textContent = n ? n.toLocaleString() + " / " + max.toLocaleString() : "";
    counter.classList.toggle("is-over", n > max);
  }

  document.addEventListener("input", function (ev) {
    if (ev.target.matches && ev.target.matches("[data-comment-text]")) updateCounter();
    if (ev.target.matches && ev.target.matches("[data-comment-offset]")) ev.target.dataset.touched = "1";
  });

  document.addEventListener("focusin", function (ev) {
    // Writing while listening: pin the comment to where the recording is (the field can be cleared).
    if (!player || !ev.target.matches || !ev.target.matches("[data-comment-text]")) return;
    var offset = document.querySelector("[data-comment-offset]");
    if (offset && !offset.value && !offset.dataset.touched && player.position() > 0) {
      offset.value = clock(player.position());
    }
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target.closest && ev.target.closest("form[data-enhance]");
    if (!form) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
      return;
    }
    if (!window.fetch || !window.FormData) return;
    ev.preventDefault();
    var which = form.getAttribute("data-enhance");
    var button = form.querySelector("[type=submit]");
    var errorBox = form.querySelector("[data-error]");
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (body) {
          if (body) return body;
          if (res.status === 403) throw new Error(text("csrf", "セッションの有効期限が切れました。ページを再読み込みしてください。"));
          if (res.status === 404) throw new Error(text("not_found", "対象が見つからないか、操作する権限がありません。"));
          if (res.redirected) throw new Error(text("login", "ログインの有効期限が切れました。ページを再読み込みしてログインしてください。"));
          throw new Error(text("save_failed", "保存できませんでした。") + " (HTTP " + res.status + ")");
        });
      })
      .then(function (body) {
        if (!body.ok) {
          showError(form, errorBox, body.error, body.field);
          return;
        }
        var focusId = which === "tags" ? "tag-name" : (form.querySelector("[data-comment-text]") ? "comment-text" : null);
        Object.keys(body.html || {}).forEach(function (id) {
          var el = document.getElementById(id);
          if (el) el.outerHTML = body.html[id];
        });
        if (player && body.markers) player.setMarkers(body.markers);
        prepareCommentForm();
        announce(body.message);
        if (focusId) {
          var f = document.getElementById(focusId);
          if (f) f.focus();
        }
      })
      .catch(function (err) {
        showError(form, errorBox, (err && err.message) || text("network", "通信に失敗しました。"));
      })
      .then(function () {
        if (button && document.body.contains(button)) { button.disabled = false; button.removeAttribute("aria-busy"); }
      });
  });

  function showError(form, box, message, field) {
    if (box) box.textContent = message || "";
    else announce(message);
    var input = field ? form.querySelector("[name='" + (field === "tag" ? "name" : field) + "']") : null;
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  prepareCommentForm();

  // -- live: a call still recording or being processed tells the page when it changes ------------

  var callRoot = document.querySelector(".cv-call[data-live]");
  if (callRoot && "WebSocket" in window) watchCall(callRoot, 0);

  function watchCall(rootEl, attempt) {
    var id = rootEl.getAttribute("data-call");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try { ws = new WebSocket(scheme + location.host + "/ws/events/"); } catch (e) { return; }
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      var call = msg && msg.call;
      if (!call || call.id !== id) return;
      if (call.recording_state === rootEl.getAttribute("data-recording-state") &&
          call.state === rootEl.getAttribute("data-state")) return;
      ws.close(1000);
      var typing = document.querySelector("[data-comment-text]");
      if (!typing || !typing.value.trim()) { location.reload(); return; }
      showLiveBanner(rootEl, call.recording_state === "ready" ? text("live_ready", "録音の準備ができました。")
        : call.recording_state === "failed" ? text("live_failed", "録音の処理に失敗しました。")
        : text("live_changed", "この通話の状態が変わりました。"));
    };
    ws.onclose = function (ev) {
      if (ev.code === 1000 || ev.code === 4401 || ev.code === 4403 || attempt >= 5) return;
      setTimeout(function () { watchCall(rootEl, attempt + 1); }, 2000 * (attempt + 1));
    };
  }

  function showLiveBanner(rootEl, message) {
    if (rootEl.querySelector(".cv-live-banner")) return;
    var box = document.createElement("div");
    box.className = "alert alert-info cv-live-banner";
    box.setAttribute("role", "status");
    var span = document.createElement("span");
    span.textContent = message;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-primary btn-sm";
    button.textContent = text("live_reload", "表示を更新");
    button.addEventListener("click", function () { location.reload(); });
    box.appendChild(span);
    box.appendChild(button);
    var body = rootEl.querySelector("#recording .card-body");
    (body || rootEl).insertBefore(box, (body || rootEl).firstChild);
  }
})();
