// The page's own behaviour, loaded by blocks.py as the Blocks' js (one function Gradio runs on load).
() => {
  if (localStorage.getItem("dit-dark") === "1") document.body.classList.add("dark");
  const SCALED = "%SCALED%";
  const visibleRunButton = () =>
    ["gen-run", "cmp-run"].map((id) => document.getElementById(id)).find((b) => b && b.offsetParent !== null);

  // A picker's option as the names it answers to: its whole label, the label before " (..." (a
  // sampler's "DDIM (1 NFE/step)"), for a class "7: Sneaker, athletic shoe" its id and each name, and
  // for a hub model "facebook/DiT-XL-2-512" its name without the owner.
  const namesOf = (option) => {
    const label = option.innerText.replace(/^\u2713\s*/, "").trim().toLowerCase();
    const [id, rest] = /^\d+: /.test(label) ? [label.split(": ")[0], label.slice(label.indexOf(": ") + 2)] : ["", label];
    const repo = /^[\w.-]+\/[\w.-]+$/.test(label) ? label.split("/")[1] : "";
    return [label, rest, rest.replace(/ \([^()]*\)$/, ""), ...rest.split(", "), id, repo].filter(Boolean);
  };
  const optionsOf = (input) => {
    const list = document.getElementById(input.getAttribute("aria-controls"));
    return list ? [...list.querySelectorAll("[data-testid=dropdown-option]")] : [];
  };
  // Enter takes an exact (case-insensitive) match of a name or label, not the first option that merely
  // contains the text ("DDIM" is DDIM, not "DDPM (fixed variance) / DDIM eta=1")
  const exactOption = (input) => {
    const typed = input.value.trim().toLowerCase();
    return typed ? optionsOf(input).find((o) => namesOf(o).includes(typed)) : undefined;
  };
  const pick = (option) => option.dispatchEvent(new MouseEvent("mousedown", {bubbles: true, cancelable: true}));
  // a multiselect toggles an option that is picked already: taking it again must not remove it
  const isPicked = (option) => option.getAttribute("aria-selected") === "true";
  // after a pick the picker clears its text; then (a frame later, once the value has landed) run
  const whenCleared = (input, then, until = Date.now() + 2000) => {
    if (!input.value || Date.now() > until) requestAnimationFrame(() => requestAnimationFrame(then));
    else requestAnimationFrame(() => whenCleared(input, then, until));
  };
  // an option chosen with the arrow keys is a person's choice: Enter takes it (unless it is picked already)
  const navigated = new WeakSet();
  document.addEventListener("input", (event) => navigated.delete(event.target), true);

  document.addEventListener("keydown", (event) => {
    const input = event.target.closest && event.target.closest("input[role=combobox]");
    if (input && (event.key === "ArrowDown" || event.key === "ArrowUp")) navigated.add(input);
    if (event.key !== "Enter") return;
    const run = event.ctrlKey || event.metaKey ? visibleRunButton() : undefined;
    if (!run) {
      if (!input) return;
      // Gradio's Enter takes the first option that merely contains the text, and toggles a picked one
      // off: ours takes an exact match only (the picker's note says why nothing else was taken)
      const active = navigated.has(input) && optionsOf(input).find((o) => o.classList.contains("active"));
      const option = active || exactOption(input);
      event.preventDefault();
      event.stopImmediatePropagation();
      if (option && !isPicked(option)) pick(option);
      return;
    }
    // Ctrl+Enter (Cmd+Enter) runs the tab in view; a name still being typed in a picker is taken
    // first, as the list shows it, so the run uses what the picker shows; the list closes, off the form
    event.preventDefault();
    event.stopImmediatePropagation();
    const typed = input && input.value.trim() && (exactOption(input) || optionsOf(input)[0]);
    const go = () => { if (input) input.blur(); run.click(); };
    if (!typed || isPicked(typed)) { go(); return; }
    pick(typed);
    whenCleared(input, go);
  }, true);

  // A slider's number box puts a typed value that is out of range back in range when it is left: the
  // box says so under it (read before Gradio's own listener changes it), until an allowed value is typed
  const clampNote = (event) => {
    const box = event.target;
    if (!box.matches || !box.matches("input[data-testid=number-input][min][max]")) return;
    const block = box.closest(".block");
    const typed = Number(box.value), min = Number(box.min), max = Number(box.max);
    let note = block.querySelector(":scope > .clamp-note");
    if (box.value === "" || (typed >= min && typed <= max)) { if (note) note.remove(); return; }
    if (!note) {
      note = Object.assign(document.createElement("div"), {className: "clamp-note"});
      note.setAttribute("role", "status");
      block.append(note);
    }
    const name = (box.getAttribute("aria-label") || "").replace(/^number input for /, "") || "This value";
    const [bound, word] = typed < min ? [min, "smallest"] : [max, "largest"];
    note.textContent = `${name}: ${box.value} is not allowed; set to ${bound}, the ${word} allowed (${min} to ${max}).`;
  };
  document.addEventListener("blur", clampNote, true);

  // on a phone the form fills the screen: a run brings its live previews and status into view
  document.addEventListener("click", (event) => {
    const run = event.target.closest && event.target.closest("#gen-run, #cmp-run");
    if (!run || window.innerWidth > 700) return;
    const results = document.getElementById(run.id === "gen-run" ? "gen-preview" : "cmp-preview");
    if (results) results.scrollIntoView({block: "start"});
  });

  const fit = (img) => {
    if (!img || !img.isConnected) return;  // replaced by a newer image since it loaded
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!w || !h || !img.parentElement) return;
    if (document.fullscreenElement && document.fullscreenElement.contains(img)) {
      img.style.width = img.style.height = img.style.maxWidth = "";  // fullscreen: the CSS fills the screen
      return;
    }
    // the room: the smallest clipping box around the image (a gallery's scroll area), and the window
    let roomW = Infinity, roomH = window.innerHeight * 0.85;
    for (let e = img.parentElement, i = 0; e && i < 8; e = e.parentElement, i++) {
      // the component's own box follows its image's height, so only its width (the layout's) counts
      if (e.id) { roomW = Math.min(roomW, e.clientWidth || Infinity); break; }
      if (getComputedStyle(e).overflowY !== "visible") {
        roomW = Math.min(roomW, e.clientWidth || Infinity);
        roomH = Math.min(roomH, e.clientHeight || Infinity);
      }
    }
    let k = 0.96 * Math.min(roomW / w, roomH / h);
    if (k >= 1) {
      // an enlarged small image also stays above the fold: from its component's first image to the
      // bottom of the window, unless that is tiny (so every image of a gallery gets the same size)
      const first = (img.closest("[id]") || img).querySelector("img") || img;
      const top = first.parentElement.getBoundingClientRect().top + window.scrollY;
      const fold = Math.max(window.innerHeight - top - 24, 0.3 * window.innerHeight);
      k = Math.max(1, Math.min(k, 0.96 * fold / h));
    }
    const whole = k >= 1 ? Math.floor(k) : k;  // shrinking: any factor, smoothed
    img.style.width = Math.round(w * whole) + "px";
    img.style.height = Math.round(h * whole) + "px";
    img.style.maxWidth = "none";
    img.classList.toggle("px-whole", k >= 1);
  };
  const fitAll = () => document.querySelectorAll(SCALED).forEach(fit);
  // fitted when loaded, and again once the outputs around it have settled (a status line above it)
  document.addEventListener("load", (event) => {
    // the event is over when the timer fires (its target is null by then): keep the image itself
    const img = event.target;
    if (img && img.matches && img.matches(SCALED)) { fit(img); setTimeout(() => fit(img), 300); }
  }, true);
  // in dark mode the grid shows its dark copy (a hidden image of the same size) in place of the white
  // file, which stays what its download button gives
  window.ditDarkGrid = () => {
    const grid = document.querySelector("#cmp-grid img"), copy = document.querySelector("#cmp-grid-dark img");
    if (!grid) return;
    const dark = document.body.classList.contains("dark") && copy && copy.src;
    grid.style.content = dark ? `url("${copy.src}")` : "";
  };
  // the copy is never displayed, so it never loads (Gradio's images load lazily): follow its src instead
  new MutationObserver((changes) => {
    const ours = (node) => node.nodeType === 1 && (node.closest("#cmp-grid, #cmp-grid-dark") || node.querySelector("#cmp-grid img"));
    if (changes.some((change) => ours(change.target))) window.ditDarkGrid();
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
  window.addEventListener("resize", fitAll);
  document.addEventListener("fullscreenchange", fitAll);
}
