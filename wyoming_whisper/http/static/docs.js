// A small, dependency-free renderer for /openapi.json with a "try it" form per operation.
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function resolve(spec, schema) {
  while (schema && schema.$ref) {
    schema = schema.$ref.replace("#/", "").split("/").reduce((o, k) => o[k], spec);
  }
  return schema || {};
}

function fieldInput(name, schema) {
  if (schema.format === "binary") return el("input", { type: "file", name });
  if (schema.enum) {
    const select = el("select", { name }, el("option", { value: "" }, "(default)"));
    for (const v of schema.enum) select.append(el("option", { value: v }, v));
    if (schema.type === "array") select.setAttribute("multiple", "");
    return select;
  }
  if (schema.type === "array" && schema.items && schema.items.enum) {
    const select = el("select", { name, multiple: "" });
    for (const v of schema.items.enum) select.append(el("option", { value: v }, v));
    return select;
  }
  if (schema.type === "boolean") {
    return el("select", { name }, el("option", { value: "" }, "(default)"),
      el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"));
  }
  return el("input", { type: "text", name, placeholder: (schema.examples || [""])[0] });
}

async function send(path, method, op, form, out) {
  const headers = {};
  const key = document.getElementById("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  let url = "." + path; // relative to the page: works behind a path prefix (ingress)
  for (const p of op.parameters || []) {
    url = url.replace("{" + p.name + "}", encodeURIComponent(form.elements[p.name].value));
  }
  let body;
  const content = op.requestBody && op.requestBody.content;
  if (content && content["multipart/form-data"]) {
    body = new FormData();
    for (const input of form.querySelectorAll("input, select")) {
      if (input.type === "file") { if (input.files[0]) body.append(input.name, input.files[0]); }
      else if (input.multiple) { for (const o of input.selectedOptions) body.append(input.name, o.value); }
      else if (input.value !== "") body.append(input.name, input.value);
    }
  } else if (content && content["application/json"]) {
    const data = {};
    for (const input of form.querySelectorAll("input, select")) {
      if (input.value !== "" && !(op.parameters || []).some((p) => p.name === input.name)) data[input.name] = input.value;
    }
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(data);
  }
  out.replaceChildren(el("p", {}, "Waiting for the server…"));
  const started = performance.now();
  try {
    const response = await fetch(url, { method: method.toUpperCase(), headers, body });
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    const ms = Math.round(performance.now() - started);
    out.replaceChildren(
      el("p", { class: "status" + (response.ok ? "" : " bad") },
        `${response.status} ${response.statusText} · ${response.headers.get("content-type")} · ${ms} ms`),
      el("pre", {}, shown));
  } catch (err) {
    out.replaceChildren(el("p", { class: "status bad" }, String(err)));
  }
}

function operation(spec, path, method, op) {
  const form = el("form");
  for (const p of op.parameters || []) {
    form.append(el("label", { for: p.name }, p.name + (p.required ? " *" : "")), fieldInput(p.name, p.schema || {}));
  }
  const content = (op.requestBody && op.requestBody.content) || {};
  const media = content["multipart/form-data"] || content["application/json"];
  if (media) {
    const schema = resolve(spec, media.schema);
    const required = schema.required || [];
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      form.append(el("label", {}, name + (required.includes(name) ? " *" : "")), fieldInput(name, prop));
      if (prop.description) form.append(el("span", { class: "desc" }, prop.description));
    }
  }
  const out = el("div");
  form.append(el("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", (event) => { event.preventDefault(); send(path, method, op, form, out); });
  const codes = Object.entries(op.responses || {}).map(([code, r]) => `${code}: ${r.description}`).join("\n");
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: "method " + method }, method.toUpperCase()), path, " — ", op.summary || ""),
    form, el("pre", {}, codes), out);
}

async function main() {
  const root = document.getElementById("operations");
  try {
    const spec = await (await fetch("./openapi.json")).json();
    document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
    document.getElementById("description").textContent = spec.info.description || "";
    root.replaceChildren();
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) root.append(operation(spec, path, method, op));
    }
  } catch (err) {
    root.replaceChildren(el("p", { class: "status bad" }, "Could not load /openapi.json: " + err));
  }
}

main();
