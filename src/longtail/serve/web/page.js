"use strict";
const $ = (id) => document.getElementById(id);
const filters = { category: null, brand: null };
$("key").value = sessionStorage.getItem("longtail-key") || "";
$("key").addEventListener("change", () => sessionStorage.setItem("longtail-key", $("key").value.trim()));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + $("key").value.trim(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
  return data;
}

function show(list, items, onPick) {
  list.replaceChildren(...items.map((hit) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#"; link.className = "item"; link.textContent = hit.title; link.dataset.itemId = hit.item_id;
    link.addEventListener("click", (event) => { event.preventDefault(); onPick(hit); });
    const meta = document.createElement("div");
    meta.className = "meta"; meta.textContent = [hit.brand, hit.category].filter(Boolean).join(" · ");
    li.append(link, meta);
    return li;
  }));
}

function showFacets(facets) {
  const box = $("facets");
  box.replaceChildren();
  for (const [name, values] of Object.entries(facets)) {
    const title = document.createElement("h2"); title.textContent = name; box.append(title);
    for (const [value, count] of Object.entries(values)) {
      const button = document.createElement("button");
      button.className = "facet" + (filters[name] === value ? " active" : "");
      button.textContent = `${value} (${count})`;
      button.addEventListener("click", () => { filters[name] = filters[name] === value ? null : value; search(); });
      box.append(button);
    }
  }
}

async function similar(hit) {
  $("similar-of").textContent = "Similar to: " + hit.title;
  try { show($("similar"), (await api("GET", `/items/${encodeURIComponent(hit.item_id)}/similar?k=5`)).items, similar); }
  catch (error) { $("status").textContent = error.message; }
}

async function search() {
  const query = $("query").value.trim();
  if (!query) return;
  $("status").textContent = "";
  const body = { query, k: 10 };
  if (filters.category) body.category = filters.category;
  if (filters.brand) body.brand = filters.brand;
  try {
    const data = await api("POST", "/search", body);
    $("summary").textContent = `${data.total} matching items`;
    show($("results"), data.items, similar);
    showFacets(data.facets);
  } catch (error) { $("status").textContent = error.message; }
}

async function user() {
  const id = $("user").value.trim();
  if (!id) return;
  $("status").textContent = "";
  try {
    show($("recommendations"), (await api("GET", `/users/${encodeURIComponent(id)}/recommendations?k=10`)).items, similar);
  } catch (error) { $("status").textContent = error.message; return; }
  try {
    const p = await api("GET", `/users/${encodeURIComponent(id)}/profile`);
    const top = p.top_categories.map((c) => `${c.name} (${Math.round(c.share * 100)}%)`).join("; ");
    const live = p.detail
      ? ` Activity: ${p.detail.activity.level}. Intent: ${Object.entries(p.detail.intent).map(([kind, share]) => `${kind} ${Math.round(share * 100)}%`).join(", ")}.`
      : "";
    $("profile").textContent = `${p.event_count} events, last seen ${p.last_seen.slice(0, 10)}. Top categories: ${top || "none"}.${live}`;
  } catch (error) { $("profile").textContent = "No profile: " + error.message; }
}

$("search-form").addEventListener("submit", (event) => { event.preventDefault(); filters.category = filters.brand = null; search(); });
$("user-form").addEventListener("submit", (event) => { event.preventDefault(); user(); });
