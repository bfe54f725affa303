"use strict";
const $ = (id) => document.getElementById(id);
const filters = { category: null, brand: null };
const PAGE = 10;
let page = 0, correct = true, typed = 0;
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

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A product card: title (click for similar items), brand · category, price, and a badge for a merchandising rule.
function show(list, items, onPick, badges = {}) {
  list.replaceChildren(...items.map((hit) => {
    const li = element("li");
    const link = element("a", "item", hit.title);
    link.href = "#"; link.dataset.itemId = hit.item_id;
    link.addEventListener("click", (event) => { event.preventDefault(); onPick(hit); });
    li.append(link);
    if (badges[hit.item_id]) li.append(element("span", "badge", badges[hit.item_id]));
    li.append(element("div", "meta", [hit.brand, hit.category].filter(Boolean).join(" · ")));
    if (hit.price !== null && hit.price !== undefined) li.append(element("div", "price", hit.price.toFixed(2)));
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
      button.addEventListener("click", () => { filters[name] = filters[name] === value ? null : value; page = 0; search(); });
      box.append(button);
    }
  }
}

async function similar(hit) {
  $("similar-of").textContent = "Similar to: " + hit.title;
  try { show($("similar"), (await api("GET", `/items/${encodeURIComponent(hit.item_id)}/similar?k=5`)).items, similar); }
  catch (error) { $("status").textContent = error.message; }
}

function showNotice(data) {
  const box = $("notice");
  box.replaceChildren();
  if (data.did_you_mean) {
    const original = element("a", "", data.did_you_mean.original);
    original.href = "#"; original.id = "original";
    original.addEventListener("click", (event) => { event.preventDefault(); correct = false; page = 0; search(); });
    box.append("Showing results for ", element("b", "", data.did_you_mean.corrected), ". Search instead for ", original, ".");
  }
  if (data.relaxed) {
    const line = element("div", "relaxed");
    const leftOut = data.relaxed.dropped.join(", ");
    const why = { unknown_dropped: `No item has “${leftOut}”`, rarest_dropped: "No item matches every word" }[data.relaxed.step];
    line.textContent = data.relaxed.dense_only
      ? "No item matched your words; showing the closest items by meaning."
      : `${why}; showing results for “${data.relaxed.searched}” (left out: ${leftOut}).`;
    box.append(line);
  }
}

function showPager(total) {
  const pager = $("pager");
  pager.replaceChildren();
  const last = Math.min(total, 100);  // the API returns at most 100 results
  if (last <= PAGE) return;
  const move = (step) => { page += step; search(); };
  const previous = element("button", "", "Previous"), next = element("button", "", "Next");
  previous.type = next.type = "button"; previous.id = "previous"; next.id = "next";
  previous.disabled = page === 0; next.disabled = (page + 1) * PAGE >= last;
  previous.addEventListener("click", () => move(-1)); next.addEventListener("click", () => move(1));
  pager.append(previous, element("span", "", `page ${page + 1} of ${Math.ceil(last / PAGE)}`), next);
}

async function search() {
  const query = $("query").value.trim();
  if (!query) return;
  $("status").textContent = "";
  typed++;  // a suggestion answer still on its way is for text already searched: drop it
  $("suggestions").replaceChildren();
  const body = { query, k: (page + 1) * PAGE, correct };
  if (filters.category) body.category = filters.category;
  if (filters.brand) body.brand = filters.brand;
  try {
    const data = await api("POST", "/search", body);
    $("summary").textContent = `${data.total} matching items`;
    const badges = Object.fromEntries((data.rules || []).filter((r) => r.position !== null).map((r) => [r.item_id, r.action === "pin" ? "pinned" : r.action]));
    show($("results"), data.items.slice(page * PAGE), similar, badges);
    showNotice(data);
    showPager(data.total);
    showFacets(data.facets);
  } catch (error) { $("status").textContent = error.message; }
}

async function suggest() {
  const text = $("query").value;
  const mine = ++typed;  // answers to earlier keystrokes that arrive late are dropped
  if (!text.trim()) { $("suggestions").replaceChildren(); return; }
  try {
    const data = await api("GET", `/suggest?q=${encodeURIComponent(text)}&k=8`);
    if (mine !== typed) return;
    $("suggestions").replaceChildren(...data.suggestions.map((s) => {
      const li = element("li", "", s.text);
      li.setAttribute("role", "option");
      li.append(element("span", "source", s.corrected ? `${s.source}, corrected` : s.source));
      li.addEventListener("mousedown", (event) => { event.preventDefault(); $("query").value = s.text; newSearch(); });
      return li;
    }));
  } catch (error) { $("status").textContent = error.message; }
}

function newSearch() { filters.category = filters.brand = null; page = 0; correct = true; search(); }

function table(rows, columns) {
  const grid = element("table");
  grid.append(element("tr"));
  grid.firstChild.append(...columns.map((c) => element("th", "", c)));
  for (const row of rows) {
    const line = element("tr");
    line.append(...row.map((cell) => element("td", "", String(cell))));
    grid.append(line);
  }
  return grid;
}

async function openConsole() {
  $("status").textContent = "";
  try {
    const data = await api("GET", "/console");
    const body = $("console-body");
    body.replaceChildren(element("div", "meta", `Live model: ${data.services}${data.index ? ` from ${data.index}, built ${data.index_built.slice(0, 16)}` : " (no search index)"}. A/B tests: ${data.ab_tests}.`));
    for (const report of data.reports) {
      body.append(element("h2", "", `${report.kind} report: ${report.path} (${report.modified.slice(0, 16)})`));
      if (report.kind === "audit") {
        const rows = Object.entries(report.summary.tables).map(([name, t]) => [name, t.input_rows, t.kept_rows, t.quarantined_rows, t.flagged_rows]);
        body.append(table(rows, ["table", "input", "kept", "quarantined", "flagged"]));
        body.append(element("div", "meta", report.summary.imbalance ? "Imbalance statistics: in this report." : "Imbalance statistics: not computed."));
      } else {
        body.append(table(Object.entries(report.summary), ["field", "value"]));
      }
    }
    if (!data.reports.length) body.append(element("div", "meta", "No reports beside the served data yet (run `longtail audit` / `longtail evaluate`)."));
    body.append(element("h2", "", "Merchandising rules"));
    body.append(table(data.rules.map((r) => [r.id, r.action, r.item_id, r.query || `category ${r.category}`, r.starts_at || "-", r.ends_at || "-", r.created_by]),
      ["id", "action", "item", "for", "from", "until", "by"]));
    $("console").hidden = false;
  } catch (error) { $("status").textContent = error.message; }
}

async function user() {
  const id = $("user").value.trim();
  if (!id) return;
  $("status").textContent = "";
  try {
    const explained = (await api("GET", `/users/${encodeURIComponent(id)}/recommendations/explained?k=10`)).items;
    show($("recommendations"), explained.map((e) => e.item), similar);
    explained.forEach((e, i) => {
      if (e.because) $("recommendations").children[i].append(element("div", "because", `Because you viewed ${e.because.title}`));
    });
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

$("search-form").addEventListener("submit", (event) => { event.preventDefault(); newSearch(); });
$("query").addEventListener("input", suggest);
$("query").addEventListener("blur", () => $("suggestions").replaceChildren());
$("console-button").addEventListener("click", openConsole);
$("user-form").addEventListener("submit", (event) => { event.preventDefault(); user(); });
