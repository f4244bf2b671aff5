// mcrf: render prediction records (the objects of `mcrf predict --format jsonl`).
// Used by the demo page of `mcrf serve` (records fetched from POST /predict) and by the page
// `mcrf predict --format html` writes (records embedded as <script type="application/json"
// class="mcrf-data"> elements). Plain DOM, no dependencies; text is only ever set through
// textContent, so nothing in a record is interpreted as HTML.
"use strict";

(function () {
  // a stable colour per entity type: twelve well-separated hues, picked by a hash of the type
  const HUES = [210, 280, 55, 180, 30, 320, 95, 250, 155, 130, 0, 345];
  function hue(label) {
    let h = 0;
    for (const ch of label) h = (h * 31 + ch.codePointAt(0)) % 1000003;
    return HUES[h % HUES.length];
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function tokenOffsets(record) {  // tokens are slices of text, in order
    const offsets = [];
    let pos = 0;
    for (const token of record.tokens) {
      const start = record.text.indexOf(token, pos);
      offsets.push([start, start + token.length]);
      pos = start + token.length;
    }
    return offsets;
  }

  function token(record, i) {
    const conf = record.token_confidences[i];
    const node = el("span", "mcrf-tok", record.tokens[i]);
    node.style.setProperty("--sure", conf);
    node.style.setProperty("--unsure", (1 - conf).toFixed(3));
    node.title = record.tags[i] + "  confidence " + conf.toFixed(4);
    node.dataset.tag = record.tags[i];
    node.dataset.confidence = conf;
    return node;
  }

  function sentence(record) {
    const line = el("div", "mcrf-text");
    const offsets = tokenOffsets(record);
    const spanAt = new Map(record.spans.map((span) => [span.start, span]));
    let pos = 0;
    for (let i = 0; i < record.tokens.length; ) {
      line.append(record.text.slice(pos, offsets[i][0]));
      const span = spanAt.get(i);
      if (span) {
        const mark = el("mark", "mcrf-ent");
        mark.style.setProperty("--hue", hue(span.label));
        mark.dataset.label = span.label;
        mark.title = span.label + "  confidence " + span.confidence.toFixed(4);
        for (let j = span.start; j < span.end; j++) {
          if (j > span.start) mark.append(record.text.slice(offsets[j - 1][1], offsets[j][0]));
          mark.append(token(record, j));
        }
        mark.append(el("span", "mcrf-label", span.label));
        line.append(mark);
        pos = offsets[span.end - 1][1];
        i = span.end;
      } else {
        line.append(token(record, i));
        pos = offsets[i][1];
        i += 1;
      }
    }
    line.append(record.text.slice(pos));
    return line;
  }

  function spanTable(record) {
    if (!record.spans.length) return el("div", "mcrf-none", record.tokens.length ? "no entities" : "empty line");
    const table = el("table", "mcrf-spans");
    const head = table.createTHead().insertRow();
    for (const name of ["entity", "type", "confidence", "characters"]) head.append(el("th", "", name));
    const body = table.createTBody();
    for (const span of record.spans) {
      const row = body.insertRow();
      row.append(el("td", "mcrf-span-text", span.text));
      const type = el("td", "mcrf-span-label", span.label);
      type.style.color = "hsl(" + hue(span.label) + " 60% 30%)";
      row.append(type);
      row.append(el("td", "mcrf-num", span.confidence.toFixed(4)));
      row.append(el("td", "mcrf-num", span.char_start + "–" + span.char_end));
    }
    return table;
  }

  function render(record) {
    const box = el("section", "mcrf-record");
    box.append(sentence(record), spanTable(record));
    return box;
  }

  async function tag(event) {
    event.preventDefault();
    const button = document.getElementById("mcrf-submit");
    const status = document.getElementById("mcrf-status");
    const results = document.getElementById("mcrf-results");
    const texts = document.getElementById("mcrf-input").value.split(/\r?\n/);
    button.disabled = true;
    status.className = "";
    status.textContent = "tagging…";
    try {
      const answer = await fetch("predict", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ texts }),
      });
      const body = await answer.json();
      if (!answer.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
      results.replaceChildren(...body.results.map(render));
      status.textContent = body.results.length + " line(s) tagged";
    } catch (error) {
      status.className = "mcrf-error";
      status.textContent = "error: " + error.message;
    } finally {
      button.disabled = false;
    }
  }

  async function describeModel() {
    const target = document.getElementById("mcrf-model");
    try {
      const info = await (await fetch("info")).json();
      target.textContent = info.encoder + " + " + info.decoder + " (" + info.scheme + "), mcrf " + info.mcrf_version;
    } catch (error) { /* the page works without it */ }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const results = document.getElementById("mcrf-results");
    for (const data of document.querySelectorAll("script.mcrf-data")) {
      results.append(render(JSON.parse(data.textContent)));
    }
    const form = document.getElementById("mcrf-form");
    if (form) {
      form.addEventListener("submit", tag);
      describeModel();
    }
  });

  window.mcrfRender = render;
})();
