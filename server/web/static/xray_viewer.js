// X-ray viewer: draws the image's own samples (8 or 16 bits) on a canvas, so that zoom, window, invert and
// material colour are computed on the pixels themselves (CSS filters on a scaled <img> gave a black box).
"use strict";
(function () {
  const root = document.getElementById("xray-viewer");
  const stage = document.getElementById("xv-stage");
  if (!root || !stage) return;
  const $ = (id) => document.getElementById(id);
  const canvas = $("xv-canvas");
  const ctx = canvas.getContext("2d");
  const words = JSON.parse(root.dataset.words);
  // Ratio of low- to high-energy attenuation: below `organic` light elements (plastics, food, paper),
  // above `metal` heavy ones; the server sends its configured values ([server.xray]) with the pixels.
  const material = { organic: 1.3, metal: 1.7 };
  const PALETTE = { organic: [230, 140, 30], mixed: [40, 170, 60], metal: [40, 90, 220] };
  const MIN_ZOOM = 1 / 16, MAX_ZOOM = 32, STEP = 1.25, PAN = 40;

  const views = {};
  const st = {
    energy: root.dataset.high ? "high" : "low",
    scale: 1, tx: 0, ty: 0, fitted: true,
    contrast: 1, brightness: 0, invert: false, material: false,
  };
  const off = document.createElement("canvas");
  let drag = null;

  function status(text) { $("xv-status").textContent = text; }

  async function load(sha) {
    const resp = await fetch("/desk/images/" + sha + "/pixels", { credentials: "same-origin" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const width = Number(resp.headers.get("X-Image-Width"));
    const height = Number(resp.headers.get("X-Image-Height"));
    const bits = Number(resp.headers.get("X-Image-Bits"));
    material.organic = Number(resp.headers.get("X-Material-Organic-Below")) || material.organic;
    material.metal = Number(resp.headers.get("X-Material-Metal-Above")) || material.metal;
    const buf = await resp.arrayBuffer();
    let data;
    if (bits === 16) {
      // The feed is little-endian; read it as such whatever the machine's own byte order.
      const dv = new DataView(buf);
      data = new Uint16Array(width * height);
      for (let i = 0; i < data.length; i++) data[i] = dv.getUint16(i * 2, true);
    } else {
      data = new Uint8Array(buf);
    }
    if (data.length !== width * height) throw new Error("size mismatch");
    return { width, height, bits, data, ...range(data, bits) };
  }

  // The 0.5th and 99.5th percentiles: the window that shows the whole image without its outliers.
  function range(data, bits) {
    const hist = new Uint32Array(1 << bits);
    for (let i = 0; i < data.length; i++) hist[data[i]]++;
    const want = [data.length * 0.005, data.length * 0.995];
    const out = [0, hist.length - 1];
    let sum = 0, k = 0;
    for (let v = 0; v < hist.length && k < 2; v++) {
      sum += hist[v];
      while (k < 2 && sum >= want[k]) out[k++] = v;
    }
    if (out[1] <= out[0]) out[1] = out[0] + 1;
    return { lo: out[0], hi: out[1] };
  }

  // Sample value -> display byte, for the current window, contrast, brightness and invert.
  function lut(view) {
    const table = new Uint8ClampedArray(1 << view.bits);
    const span = view.hi - view.lo;
    for (let v = 0; v < table.length; v++) {
      let y = ((v - view.lo) / span - 0.5) * st.contrast + 0.5 + st.brightness;
      y = Math.min(1, Math.max(0, y));
      table[v] = Math.round((st.invert ? 1 - y : y) * 255);
    }
    return table;
  }

  function materialOf(h, l, high, low) {
    const ah = Math.log(high.hi / Math.max(h, 1));
    if (ah < 0.05) return null; // air: nothing in the beam
    const r = Math.log(low.hi / Math.max(l, 1)) / ah;
    return r < material.organic ? PALETTE.organic : r < material.metal ? PALETTE.mixed : PALETTE.metal;
  }

  // Render the current view at its own resolution into the off-screen canvas.
  function render() {
    const view = views[st.energy];
    if (!view) return;
    off.width = view.width;
    off.height = view.height;
    const octx = off.getContext("2d");
    const img = octx.createImageData(view.width, view.height);
    const px = img.data;
    const table = lut(view);
    const pair = st.material && views.high && views.low && views.high.data.length === views.low.data.length;
    for (let i = 0, j = 0; i < view.data.length; i++, j += 4) {
      const g = table[view.data[i]];
      const colour = pair ? materialOf(views.high.data[i], views.low.data[i], views.high, views.low) : null;
      if (colour) {
        const f = 0.25 + 0.75 * (g / 255);
        px[j] = colour[0] * f; px[j + 1] = colour[1] * f; px[j + 2] = colour[2] * f;
      } else {
        px[j] = px[j + 1] = px[j + 2] = g;
      }
      px[j + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    draw();
  }

  function size() {
    const r = stage.getBoundingClientRect();
    return { w: Math.max(1, r.width), h: Math.max(1, r.height) };
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const { w, h } = size();
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, w, h);
    ctx.setTransform(dpr * st.scale, 0, 0, dpr * st.scale, dpr * st.tx, dpr * st.ty);
    // Enlarged, each sample stays a sharp square an officer can judge; reduced, it is averaged.
    ctx.imageSmoothingEnabled = st.scale < 1;
    ctx.drawImage(off, 0, 0);
    $("xv-readout").textContent = "×" + st.scale.toFixed(2);
    stage.dataset.scale = String(st.scale);
  }

  function fit() {
    const view = views[st.energy];
    if (!view) return;
    const { w, h } = size();
    st.scale = Math.min(w / view.width, h / view.height);
    st.tx = (w - view.width * st.scale) / 2;
    st.ty = (h - view.height * st.scale) / 2;
    st.fitted = true;
    draw();
  }

  function actual() {
    const { w, h } = size();
    zoomAt(1 / st.scale, w / 2, h / 2);
  }

  // Zoom by `factor` keeping the image point under (x, y) (stage pixels) where it is.
  function zoomAt(factor, x, y) {
    const next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, st.scale * factor));
    const k = next / st.scale;
    st.tx = x - (x - st.tx) * k;
    st.ty = y - (y - st.ty) * k;
    st.scale = next;
    st.fitted = false;
    draw();
  }

  function zoomCentre(factor) {
    const { w, h } = size();
    zoomAt(factor, w / 2, h / 2);
  }

  function pan(dx, dy) {
    st.tx += dx;
    st.ty += dy;
    st.fitted = false;
    draw();
  }

  function setInvert(on) {
    st.invert = on;
    $("xv-invert").setAttribute("aria-pressed", String(on));
    render();
  }

  function setMaterial(on) {
    if (!(views.high && views.low)) return;
    st.material = on;
    $("xv-material").setAttribute("aria-pressed", String(on));
    render();
  }

  function toggleEnergy() {
    if (!(views.high && views.low)) return;
    st.energy = st.energy === "high" ? "low" : "high";
    $("xv-energy-now").textContent = words[st.energy];
    render();
  }

  function fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (root.requestFullscreen) root.requestFullscreen().catch(() => {});
  }

  function setWindow(contrast, brightness) {
    st.contrast = Math.min(4, Math.max(0.25, contrast));
    st.brightness = Math.min(0.5, Math.max(-0.5, brightness));
    $("xv-contrast").value = String(st.contrast);
    $("xv-brightness").value = String(st.brightness);
    render();
  }

  function reset() {
    st.material = false;
    $("xv-material").setAttribute("aria-pressed", "false");
    st.invert = false;
    $("xv-invert").setAttribute("aria-pressed", "false");
    setWindow(1, 0);
    fit();
  }

  function local(e) {
    const r = stage.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y] = local(e);
    zoomAt(Math.exp(-e.deltaY * 0.002), x, y);
  }, { passive: false });
  stage.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    stage.focus();
    stage.setPointerCapture(e.pointerId);
    stage.classList.add("dragging");
    drag = { x: e.clientX, y: e.clientY };
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    pan(e.clientX - drag.x, e.clientY - drag.y);
    drag = { x: e.clientX, y: e.clientY };
  });
  const stop = () => { drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", stop);
  stage.addEventListener("pointercancel", stop);
  stage.addEventListener("dblclick", (e) => { const [x, y] = local(e); zoomAt(2, x, y); });

  $("xv-zoom-in").addEventListener("click", () => zoomCentre(STEP));
  $("xv-zoom-out").addEventListener("click", () => zoomCentre(1 / STEP));
  $("xv-fit").addEventListener("click", fit);
  $("xv-actual").addEventListener("click", actual);
  $("xv-invert").addEventListener("click", () => setInvert(!st.invert));
  $("xv-material").addEventListener("click", () => setMaterial(!st.material));
  $("xv-energy").addEventListener("click", toggleEnergy);
  $("xv-fullscreen").addEventListener("click", fullscreen);
  $("xv-reset").addEventListener("click", reset);
  $("xv-contrast").addEventListener("input", (e) => setWindow(Number(e.target.value), st.brightness));
  $("xv-brightness").addEventListener("input", (e) => setWindow(st.contrast, Number(e.target.value)));
  document.addEventListener("fullscreenchange", () => fit());
  new ResizeObserver(() => (st.fitted ? fit() : draw())).observe(stage);

  // Keys that the desk's own shortcuts (C, R, I, D, S, F, V) leave free; never while typing.
  const KEYS = {
    "+": () => zoomCentre(STEP), "=": () => zoomCentre(STEP), "-": () => zoomCentre(1 / STEP),
    "0": fit, "1": actual, N: () => setInvert(!st.invert), M: () => setMaterial(!st.material),
    E: toggleEnergy, Z: fullscreen,
    "[": () => setWindow(st.contrast / 1.1, st.brightness), "]": () => setWindow(st.contrast * 1.1, st.brightness),
    ",": () => setWindow(st.contrast, st.brightness - 0.02), ".": () => setWindow(st.contrast, st.brightness + 0.02),
  };
  const ARROWS = { ArrowLeft: [PAN, 0], ArrowRight: [-PAN, 0], ArrowUp: [0, PAN], ArrowDown: [0, -PAN] };
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !Object.keys(views).length) return;
    const t = e.target;
    const typing = t instanceof HTMLInputElement && !["radio", "checkbox", "range"].includes(t.type);
    if (typing || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
    // Arrows pan only while the image has the focus: elsewhere they scroll the page as usual.
    if (ARROWS[e.key] && document.activeElement === stage) {
      e.preventDefault();
      pan(...ARROWS[e.key]);
      return;
    }
    const action = KEYS[e.key.length === 1 ? e.key.toUpperCase() : ""];
    if (action && !(t instanceof HTMLInputElement && t.type === "range" && "[],.".includes(e.key))) {
      e.preventDefault();
      action();
    }
  });

  // For the page's own checks and the browser tests: the view's state, read only.
  window.parcelguardXray = {
    state: () => ({ ...st, views: Object.keys(views), ready: Boolean(views[st.energy]) }),
    size: () => { const v = views[st.energy]; return v ? [v.width, v.height, v.bits] : null; },
  };

  (async () => {
    try {
      for (const [name, sha] of [["high", root.dataset.high], ["low", root.dataset.low]]) {
        if (sha) views[name] = await load(sha);
      }
      status("");
      render();
      fit();
      root.dataset.ready = "true";
    } catch (err) {
      status(words.failed + " (" + err.message + ")");
      root.dataset.ready = "failed";
    }
  })();
})();
