// The storefront: how a front end drives a booking-saga checkout, through the public HTTP API only.
//
// - The inventory is GET /v1/catalogue, rendered as it comes (any participant it lists appears), refreshed after
//   every action and every few seconds: `available` is read live from the ledgers.
// - Each checkout attempt gets a fresh Idempotency-Key. A request that gets no answer (network failure) or a 503
//   is sent again with the SAME key and body: the server then answers the one checkout it placed, never a second.
// - A HELD checkout counts down to `expires_at` (corrected for the server's clock, from the Date header). The
//   server's timer decides: at zero the page polls GET /v1/checkouts/{id} until the status moves.
// - A 409 shows what was short and the alternatives; each alternative's `checkout` object is merged into a new
//   checkout body (same customer, new key), one click away.
// - "My bookings" lists the customer's checkouts (GET /v1/checkouts, newest first) with a cancel for the whole
//   booking and one per part still booked (POST .../cancel, with {"parts": [field]} for a part).
"use strict";

const REFRESH_MS = 5000;
const POLL_MS = 1000;
const MAX_ATTEMPTS = 5;
const PROBLEM_BASE = "https://booking-saga.dev/problems/";

const $ = (id) => document.getElementById(id);

const state = {
  catalogue: [], // the participants, as GET /v1/catalogue lists them
  payments: [], // what can pay for a checkout (GET /v1/catalogue `payments`)
  paymentShape: "",
  shape: "", // the offer keys the form was built for: a new shape rebuilds the form
  checkout: null, // the current checkout (201 / GET answer)
  skewMs: 0, // server clock minus this clock
  busy: false,
  polling: false,
};

// ---- HTTP ---------------------------------------------------------------------------------------------------

class NoAnswer extends Error {}

function newKey() {
  // Works outside secure contexts too (crypto.randomUUID does not): 128 random bits, hex.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "demo-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function noteClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const skew = date - Date.now();
  // The header is whole seconds (and a server may stamp it once a second): only a difference well beyond that is
  // a clock that is off.
  state.skewMs = Math.abs(skew) > 3000 ? skew : 0;
}

function headers({ auth = false, key = null, json = false } = {}) {
  const h = { Accept: "application/json, application/problem+json" };
  if (json) h["Content-Type"] = "application/json";
  if (key) h["Idempotency-Key"] = key;
  const token = $("token").value.trim();
  if (auth && token) h.Authorization = "Bearer " + token;
  return h;
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { title: "Unreadable answer", detail: text.slice(0, 300) };
  }
}

// One request; `retry` sends it again, unchanged (same Idempotency-Key), when no answer came or the answer was a
// 503. Only for requests that are safe to repeat: a keyed create, a read, confirm and cancel (both repeatable).
// A rate-limited 429 is sent again whatever `retry` says (see below).
async function call(method, path, { body = undefined, key = null, auth = true, retry = false, onAttempt } = {}) {
  for (let attempt = 1; ; attempt++) {
    if (onAttempt) onAttempt(attempt);
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers({ auth, key, json: body !== undefined }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      if (!retry || attempt >= MAX_ATTEMPTS) throw new NoAnswer(String(error && error.message ? error.message : error));
      await sleep(backoff(attempt, null));
      continue;
    }
    noteClock(response);
    if (response.status === 503 && retry && attempt < MAX_ATTEMPTS) {
      await sleep(backoff(attempt, response.headers.get("Retry-After")));
      continue;
    }
    const answer = { status: response.status, body: await readBody(response), attempts: attempt };
    // Refused by the rate limit before any route ran: nothing happened, so sending it again after Retry-After is
    // safe for every request, an extension included (a hold-limit 429 is an answer, never retried).
    if (rateLimited(answer) && attempt < MAX_ATTEMPTS) {
      await sleep(backoff(attempt, response.headers.get("Retry-After")));
      continue;
    }
    return answer;
  }
}

function rateLimited(answer) {
  const type = answer.body && typeof answer.body.type === "string" ? answer.body.type : "";
  return answer.status === 429 && type.endsWith("/rate-limited");
}

function backoff(attempt, retryAfter) {
  const seconds = Number.parseInt(retryAfter || "", 10);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 30) * 1000;
  return Math.min(500 * 2 ** (attempt - 1), 8000);
}

// ---- the catalogue ------------------------------------------------------------------------------------------

const offerKey = (participant, offer) => participant.name + "|" + JSON.stringify(offer.request);

function quantityOf(request, field) {
  const first = Array.isArray(request) ? request[0] : request;
  const value = first && typeof first === "object" ? first[field] : undefined;
  return Number.isInteger(value) && value > 0 ? value : 1;
}

function titleCase(word) {
  return word ? word.charAt(0).toUpperCase() + word.slice(1).replace(/_/g, " ") : "Quantity";
}

function availableText(count) {
  return count > 0 ? `${count} available` : "sold out";
}

function paintAvailable(span, count) {
  span.textContent = availableText(count);
  span.dataset.available = String(count);
  span.classList.toggle("none", count <= 0);
  span.classList.toggle("low", count > 0 && count <= 5);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// The user's picks, by offer key, so a rebuilt form keeps them.
function currentPicks() {
  const picks = new Map();
  for (const row of document.querySelectorAll("#catalogue .offer")) {
    const input = row.querySelector("input.pick");
    const qty = row.querySelector("input.qty");
    if (input && input.checked) picks.set(row.dataset.key, qty ? qty.value : null);
  }
  for (const box of document.querySelectorAll("#catalogue input.participant-qty")) {
    picks.set("qty|" + box.dataset.participant, box.value);
  }
  return picks;
}

function buildCatalogue(participants) {
  const picks = currentPicks();
  const root = $("catalogue");
  root.replaceChildren();
  participants.forEach((participant, p) => {
    const fieldset = el("fieldset", { className: "participant", "data-participant": participant.name });
    fieldset.append(el("legend", { text: participant.title || participant.name }));
    const list = el("ul", { className: "offers" });
    const group = `pick-${p}`;
    if (!participant.list_field) {
      // At most one offer per non-list participant: radios, with "nothing" first.
      const noneId = `offer-${p}-none`;
      const anyPicked = participant.offers.some((offer) => picks.has(offerKey(participant, offer)));
      list.append(
        el("li", { className: "offer", "data-key": "" },
          el("input", { type: "radio", id: noneId, name: group, value: "", className: "pick-none", checked: !anyPicked }),
          el("label", { for: noneId, text: "Nothing" })),
      );
    }
    participant.offers.forEach((offer, o) => {
      const key = offerKey(participant, offer);
      const id = `offer-${p}-${o}`;
      const availId = `${id}-available`;
      const row = el("li", { className: "offer", "data-key": key, "data-label": offer.label });
      row.append(el("input", {
        type: participant.list_field ? "checkbox" : "radio", id, name: participant.list_field ? null : group,
        className: "pick", checked: picks.has(key), "aria-describedby": availId,
      }));
      row.append(el("label", { for: id, text: offer.label }));
      const avail = el("span", { className: "available", id: availId });
      paintAvailable(avail, offer.available);
      row.append(avail);
      if (offer.price) row.append(el("span", { className: "price", text: formatMoney(offer.price) }));
      if (participant.list_field) {
        const qtyId = `${id}-qty`;
        const kept = picks.get(key);
        row.append(el("span", { className: "quantity" },
          el("label", { for: qtyId, text: titleCase(participant.quantity_field) }),
          el("input", { type: "number", id: qtyId, className: "qty", min: 1, step: 1, inputmode: "numeric",
            "aria-label": `${titleCase(participant.quantity_field)} of ${offer.label}`,
            value: kept || quantityOf(offer.request, participant.quantity_field) })));
      }
      list.append(row);
    });
    fieldset.append(list);
    if (!participant.list_field) {
      const qtyId = `participant-${p}-qty`;
      const kept = picks.get("qty|" + participant.name);
      const first = participant.offers[0];
      fieldset.append(el("div", { className: "participant-quantity" },
        el("label", { for: qtyId, text: titleCase(participant.quantity_field) }),
        el("input", { type: "number", id: qtyId, className: "participant-qty", min: 1, step: 1, inputmode: "numeric",
          "data-participant": participant.name,
          value: kept || (first ? quantityOf(first.request, participant.quantity_field) : 1) })));
    }
    root.append(fieldset);
  });
}

// ---- money --------------------------------------------------------------------------------------------------

// Amounts are integer minor units of an ISO 4217 currency: the currency says how many decimals.
function formatMoney(money) {
  if (!money) return "";
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency: money.currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(money.amount / 10 ** digits);
  } catch (error) {
    return `${money.amount} ${money.currency} (minor units)`;
  }
}

// The catalogue's `payments`: a checkbox each; a checked one adds its field to the checkout body.
function paintPayments(payments) {
  const shape = JSON.stringify(payments.map((p) => [p.field, p.request]));
  if (shape === state.paymentShape) return;
  state.paymentShape = shape;
  const root = $("payments");
  root.replaceChildren();
  payments.forEach((payment, i) => {
    const id = `pay-${i}`;
    root.append(el("div", { className: "payment" },
      el("input", { type: "checkbox", id, className: "pay", "data-index": String(i) }),
      el("label", { for: id, text: `Pay now with ${payment.title.toLowerCase()} (${payment.name})` })));
  });
}

function paymentParts() {
  const parts = {};
  for (const box of document.querySelectorAll("#payments input.pay")) {
    const payment = (state.payments || [])[Number(box.dataset.index)];
    if (box.checked && payment) parts[payment.field] = payment.request;
  }
  return parts;
}

async function refreshWallet() {
  const payment = (state.payments || []).find((p) => p.account);
  const customer = $("customer-id").value.trim();
  if (!payment || !customer) {
    $("wallet").textContent = "";
    return;
  }
  const path = payment.account.replace(/\{[^}]+\}/, encodeURIComponent(customer));
  let answer;
  try {
    answer = await call("GET", path);
  } catch (error) {
    return;
  }
  if (answer.status === 200) {
    const w = answer.body;
    const money = (amount) => formatMoney({ amount, currency: w.currency });
    $("wallet").textContent = `Travel credit: ${money(w.available)} available of ${money(w.balance)} ` +
      `(${money(w.authorized)} authorized for held checkouts, ${money(w.captured)} paid).`;
  } else if (answer.status === 404) {
    $("wallet").textContent = "No travel credit for this customer (an operator funds it: PUT " + path + ").";
  } else {
    $("wallet").textContent = `The wallet could not be read (${describeStatus(answer)}).`;
  }
}

function paintCatalogue(participants) {
  const shape = JSON.stringify(participants.map((p) => [p.name, p.field, p.list_field, p.offers.map((o) => offerKey(p, o))]));
  if (shape !== state.shape) {
    buildCatalogue(participants);
    state.shape = shape;
    return;
  }
  // Same offers: only the numbers move, and focus and typing are left alone.
  participants.forEach((participant, p) => {
    participant.offers.forEach((offer, o) => {
      const span = $(`offer-${p}-${o}-available`);
      if (span && span.dataset.available !== String(offer.available)) paintAvailable(span, offer.available);
    });
  });
}

async function refreshCatalogue() {
  let answer;
  try {
    answer = await call("GET", "/v1/catalogue", { auth: false });
  } catch (error) {
    $("catalogue-status").textContent = "The API does not answer; the numbers below may be out of date.";
    return;
  }
  if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.participants)) {
    $("catalogue-status").textContent =
      `The catalogue could not be read (${describeStatus(answer)}); the numbers below may be out of date.`;
    return;
  }
  state.catalogue = answer.body.participants;
  state.payments = answer.body.payments || [];
  paintCatalogue(state.catalogue);
  paintPayments(state.payments);
  refreshWallet();
  $("catalogue-status").textContent = state.catalogue.length
    ? "Availability is live: it refreshes every few seconds and after each action."
    : "The catalogue lists nothing to book.";
}

function describeStatus(answer) {
  const body = answer.body || {};
  return body.detail ? `${answer.status}: ${body.detail}` : `HTTP ${answer.status}`;
}

// ---- the checkout body --------------------------------------------------------------------------------------

function positiveInt(input) {
  const value = Number(input.value);
  return Number.isInteger(value) && value > 0 ? value : null;
}

function withQuantity(request, field, quantity) {
  const copy = JSON.parse(JSON.stringify(request));
  if (Array.isArray(copy)) {
    for (const line of copy) if (line && typeof line === "object") line[field] = quantity;
  } else if (copy && typeof copy === "object") {
    copy[field] = quantity;
  }
  return copy;
}

// The selection as body members ({<field>: <request>, ...}), or a sentence saying what is wrong with it.
function selection() {
  const parts = {};
  for (const [p, participant] of state.catalogue.entries()) {
    if (participant.list_field) {
      const lines = [];
      for (const [o, offer] of participant.offers.entries()) {
        if (!$(`offer-${p}-${o}`)?.checked) continue;
        const quantity = positiveInt($(`offer-${p}-${o}-qty`));
        if (quantity === null) return `${titleCase(participant.quantity_field)} of ${offer.label} must be a whole number of 1 or more.`;
        const request = Array.isArray(offer.request) ? offer.request : [offer.request];
        lines.push(...withQuantity(request, participant.quantity_field, quantity));
      }
      if (lines.length) parts[participant.field] = lines;
    } else {
      const index = participant.offers.findIndex((_, o) => $(`offer-${p}-${o}`)?.checked);
      if (index < 0) continue;
      const quantity = positiveInt($(`participant-${p}-qty`));
      if (quantity === null) return `${titleCase(participant.quantity_field)} for ${participant.title} must be a whole number of 1 or more.`;
      parts[participant.field] = withQuantity(participant.offers[index].request, participant.quantity_field, quantity);
    }
  }
  return Object.keys(parts).length ? parts : "Pick at least one offer first.";
}

function baseBody() {
  const body = { customer_id: $("customer-id").value.trim(), ...paymentParts() };
  const hold = $("hold-seconds").value.trim();
  if (hold !== "") body.hold_seconds = Number(hold);
  return body;
}

// ---- showing outcomes ---------------------------------------------------------------------------------------

function say(kind, title, detail) {
  const box = $("outcome");
  box.className = kind;
  box.replaceChildren(el("p", { className: "title", text: title }));
  if (detail) box.append(el("p", { className: "detail", text: detail }));
}

function clearProblem() {
  $("problem").hidden = true;
  $("unavailable-block").hidden = true;
  $("alternatives-block").hidden = true;
  $("unavailable").replaceChildren();
  $("alternatives").replaceChildren();
  $("field-errors").replaceChildren();
}

function problemKind(body) {
  const type = (body && typeof body.type === "string") ? body.type : "";
  return type.startsWith(PROBLEM_BASE) ? type.slice(PROBLEM_BASE.length) : type.split("/").pop();
}

// A problem answer, in words: what happened and what the person can do about it.
function showProblem(answer, action) {
  const body = answer.body || {};
  const detail = body.detail || "";
  clearProblem();
  if (answer.status === 409 && body.checkout_status === "REJECTED") {
    say("bad", "Not available: nothing is held.", detail);
    showShortages(body.unavailable || [], body.alternatives || []);
  } else if (answer.status === 409) {
    const status = body.checkout_status ? ` (the checkout is ${body.checkout_status})` : "";
    say("bad", `${body.title || "Conflict"}${status}.`, detail);
    if (body.checkout_id && state.checkout && body.checkout_id === state.checkout.checkout_id) reloadCheckout();
  } else if (rateLimited(answer)) {
    say("warn", "Too many requests: the API asks this page to slow down.", `${detail} Try again in a moment.`.trim());
  } else if (answer.status === 429) {
    say("warn", "Too many holds for this customer.", holdLimitWords(body));
  } else if (answer.status === 422 || answer.status === 400) {
    say("bad", body.title || "The request was refused.", detail);
    showFieldErrors(body.errors || []);
  } else if (answer.status === 401) {
    say("bad", "A customer token is needed.",
      `${detail} Paste a valid customer JWT into “Customer token”: this API runs with CUSTOMER_AUTH=jwt.`.trim());
  } else if (answer.status === 403) {
    say("bad", "Not allowed.", `${detail} With a customer token, the customer id must be the token's subject.`.trim());
  } else if (answer.status === 404) {
    say("bad", "Not found.", detail || `Nothing answers ${action}.`);
  } else if (answer.status === 503) {
    say("warn", "The service is busy or a part of it is down.",
      `${detail} The page tried ${answer.attempts} times with the same Idempotency-Key; try again in a moment.`.trim());
  } else {
    say("bad", body.title || `Unexpected answer (HTTP ${answer.status}).`, detail);
  }
}

function holdLimitWords(body) {
  if (!problemKind(body).endsWith("hold-limit")) {
    return `${body.detail || ""} The API asks for fewer requests: wait a moment, then try again.`.trim();
  }
  const { limit, current, max, resource } = body;
  if (limit === "active_checkouts") {
    return `This customer already has ${current} checkouts held or being placed, and at most ${max} may be at ` +
      "once. Confirm or cancel one of them (or let one expire), then try again.";
  }
  if (limit === "units_per_row") {
    return `This customer already holds ${current} of ${resource || "this"} in other checkouts, and at most ` +
      `${max} per customer. Ask for fewer, or confirm or cancel the other checkout first.`;
  }
  return `${body.detail || "A per-customer limit would be passed."} Nothing is held.`;
}

function showFieldErrors(errors) {
  if (!errors.length) return;
  $("problem").hidden = false;
  for (const error of errors) {
    $("field-errors").append(el("li", { text: `${error.location || "request"}: ${error.message || "invalid"}` }));
  }
}

function showShortages(unavailable, alternatives) {
  $("problem").hidden = false;
  if (unavailable.length) {
    $("unavailable-block").hidden = false;
    for (const short of unavailable) {
      $("unavailable").append(el("li", {
        text: short.reason ? `${short.resource}: ${short.reason}`
          : `${short.resource}: you asked for ${short.requested}, ${short.available} available`,
      }));
    }
  }
  $("alternatives-block").hidden = false;
  if (!alternatives.length) {
    $("alternatives").append(el("li", { text: "No alternatives right now." }));
    return;
  }
  for (const alternative of alternatives) {
    const count = `${alternative.available} available`;
    const words = alternative.description.includes(count) ? alternative.description : `${alternative.description} (${count})`;
    const item = el("li", { text: words });
    const merge = alternative.checkout;
    if (merge && typeof merge === "object" && Object.keys(merge).length) {
      const button = el("button", { type: "button", className: "secondary", text: "Hold this instead",
        "aria-label": `Hold this instead: ${alternative.description}` });
      // A new attempt (new key) for the same customer: the alternative's members replace the whole selection.
      button.addEventListener("click", () => createCheckout({ ...merge, ...baseBody() }));
      item.append(button);
    }
    $("alternatives").append(item);
  }
}

// ---- the checkout -------------------------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["hold", "confirm", "cancel", "extend"]) $(id).disabled = busy || !allowed(id);
  for (const button of document.querySelectorAll("#alternatives button")) button.disabled = busy;
  $("checkout-section").setAttribute("aria-busy", busy ? "true" : "false");
}

function allowed(id) {
  if (id === "hold") return true;
  if (id === "cancel") return Boolean(state.checkout && ["HELD", "CONFIRMED"].includes(state.checkout.status));
  return Boolean(state.checkout && state.checkout.status === "HELD");
}

function showCheckout(checkout) {
  state.checkout = checkout;
  $("checkout").hidden = false;
  const status = $("checkout-status");
  status.textContent = checkout.status;
  status.className = "status " + checkout.status;
  $("checkout-id").textContent = checkout.checkout_id;
  const expires = checkout.expires_at ? new Date(checkout.expires_at) : null;
  $("expires-at").textContent = expires ? expires.toLocaleTimeString() : "—";
  $("expires-at").setAttribute("datetime", checkout.expires_at || "");
  const holds = $("holds");
  holds.replaceChildren();
  for (const hold of checkout.holds || []) {
    const lines = (hold.lines || []).map((line) => {
      const priced = line.unit_price != null && line.currency
        ? ` at ${formatMoney({ amount: line.unit_price, currency: line.currency })} = ` +
          formatMoney({ amount: line.amount, currency: line.currency })
        : "";
      return `${line.resource} × ${line.quantity}${priced}`;
    }).join(", ");
    holds.append(el("li", { text: `${hold.service}: ${hold.status}${lines ? " — " + lines : ""}` }));
  }
  $("total").textContent = checkout.total ? formatMoney(checkout.total) : "—";
  tick();
  setBusy(state.busy);
}

function remainingMs() {
  const checkout = state.checkout;
  if (!checkout || checkout.status !== "HELD" || !checkout.expires_at) return null;
  return Date.parse(checkout.expires_at) - (Date.now() + state.skewMs);
}

function tick() {
  const left = remainingMs();
  const countdown = $("countdown");
  if (left === null) {
    countdown.textContent = state.checkout ? "—" : "";
    return;
  }
  const seconds = Math.max(0, Math.ceil(left / 1000));
  countdown.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  if (left <= 0) pollUntilMoved();
}

// The hold ran out on this clock: the server's timer decides, so ask until the checkout says so.
async function pollUntilMoved() {
  if (state.polling) return;
  state.polling = true;
  try {
    say("warn", "Time is up: waiting for the server to release the holds…");
    while (state.checkout && state.checkout.status === "HELD" && (remainingMs() ?? 1) <= 0) {
      if (!(await reloadCheckout())) return;
      if (state.checkout.status === "HELD" && (remainingMs() ?? 1) <= 0) await sleep(POLL_MS);
    }
    if (state.checkout && state.checkout.status === "EXPIRED") {
      say("bad", "EXPIRED: the hold ran out and everything it held was released.");
      refreshCatalogue();
    } else if (state.checkout) {
      say("ok", `The checkout is ${state.checkout.status}.`);
    }
  } finally {
    state.polling = false;
  }
}

// Read the checkout again; false when the API refuses to show it (asking again would not help).
async function reloadCheckout() {
  if (!state.checkout) return false;
  const id = state.checkout.checkout_id;
  let answer;
  try {
    answer = await call("GET", `/v1/checkouts/${encodeURIComponent(id)}`, { retry: true });
  } catch {
    return true; // no answer: ask again later
  }
  if (answer.status === 200) {
    if (state.checkout && state.checkout.checkout_id === id) showCheckout(answer.body);
    return true;
  }
  if (answer.status === 503 || answer.status === 429) return true;
  showProblem(answer, `GET /v1/checkouts/${id}`);
  return false;
}

function showKey(key, attempt) {
  $("idempotency-key").textContent = key;
  $("attempt-note").textContent = attempt > 1
    ? `— attempt ${attempt}, the same key: the last try got no answer or a 503`
    : "— a new key for this attempt";
}

async function createCheckout(body) {
  if (state.busy) return;
  const key = newKey();
  setBusy(true);
  clearProblem();
  say("", "Placing the holds…");
  try {
    const answer = await call("POST", "/v1/checkouts", {
      body, key, retry: true, onAttempt: (attempt) => showKey(key, attempt),
    });
    if (answer.status === 201) {
      showCheckout(answer.body);
      say("ok", "HELD: everything is held until the timer runs out.", "Confirm to buy, cancel to release, or extend.");
    } else {
      showProblem(answer, "POST /v1/checkouts");
    }
  } catch (error) {
    say("bad", "No answer from the API.",
      `Tried ${MAX_ATTEMPTS} times with the same Idempotency-Key (${error.message}). Retrying later with this key can never hold twice.`);
  } finally {
    setBusy(false);
    refreshCatalogue();
    loadBookingsSoon();
  }
}

async function act(verb) {
  if (state.busy || !state.checkout) return;
  const id = state.checkout.checkout_id;
  const options = { retry: verb !== "extend" };
  if (verb === "extend") {
    const seconds = positiveInt($("extend-seconds"));
    if (seconds === null) {
      say("bad", "Extend by a whole number of seconds, 1 or more.");
      return;
    }
    // Not retried by itself: an extension that did arrive would be applied twice.
    options.body = { seconds };
  }
  setBusy(true);
  clearProblem();
  try {
    const answer = await call("POST", `/v1/checkouts/${encodeURIComponent(id)}/${verb}`, options);
    if (answer.status === 200) {
      showCheckout(answer.body);
      const words = {
        confirm: "CONFIRMED: the holds are now sales.",
        cancel: answer.body.status === "CANCELLED" ? "CANCELLED: nothing is held or sold any more."
          : `${answer.body.status}: nothing is held any more.`,
        extend: "Extended: the timer restarts from the new expiry.",
      };
      say(answer.body.status === "CONFIRMED" || verb !== "confirm" ? "ok" : "bad", words[verb]);
    } else {
      showProblem(answer, `/${verb}`);
    }
  } catch (error) {
    say("bad", "No answer from the API.", `${error.message}. Reload the checkout to see where it stands.`);
    reloadCheckout();
  } finally {
    setBusy(false);
    refreshCatalogue();
    loadBookingsSoon();
  }
}

// ---- my bookings -------------------------------------------------------------------------------------------

const LIVE_PARTS = ["ACTIVE", "CONFIRMED"];

function fieldOf(service) {
  const participant = state.catalogue.find((p) => p.name === service);
  return participant ? participant.field : service;
}

async function loadBookings() {
  const customer = $("customer-id").value.trim();
  const list = $("bookings");
  if (!customer && !$("token").value.trim()) return;
  const query = customer ? `?customer_id=${encodeURIComponent(customer)}&limit=20` : "?limit=20";
  let answer;
  try {
    answer = await call("GET", "/v1/checkouts" + query, { retry: true });
  } catch {
    $("bookings-status").textContent = "No answer from the API: try again.";
    return;
  }
  if (answer.status !== 200) {
    $("bookings-status").textContent = (answer.body && answer.body.detail) || `HTTP ${answer.status}`;
    return;
  }
  const checkouts = answer.body.checkouts || [];
  $("bookings-status").textContent = checkouts.length ? `${checkouts.length} booking(s)` : "No bookings yet.";
  list.replaceChildren();
  for (const checkout of checkouts) {
    const item = el("li", { className: "booking", "data-checkout-id": checkout.checkout_id });
    item.append(el("strong", { className: "status " + checkout.status, text: checkout.status }), " ",
      el("code", { text: checkout.checkout_id }));
    const parts = el("ul", { className: "parts" });
    const live = (checkout.holds || []).filter((hold) => LIVE_PARTS.includes(hold.status));
    for (const hold of checkout.holds || []) {
      const field = fieldOf(hold.service);
      const lines = (hold.lines || []).map((line) => `${line.resource} × ${line.quantity}`).join(", ");
      const part = el("li", { className: "part", "data-part": field, text: `${field}: ${hold.status} — ${lines} ` });
      if (LIVE_PARTS.includes(hold.status) && live.length > 1) {
        const button = el("button", { type: "button", className: "secondary", text: `Cancel ${field}` });
        button.addEventListener("click", () => cancelBooking(checkout.checkout_id, field));
        part.append(button);
      }
      parts.append(part);
    }
    item.append(parts);
    if (live.length) {
      const button = el("button", { type: "button", className: "secondary", text: "Cancel booking" });
      button.addEventListener("click", () => cancelBooking(checkout.checkout_id, null));
      item.append(button);
    }
    list.append(item);
  }
}

// Now, and once more a moment later: a booking's record is written just after the checkout's answer.
function loadBookingsSoon() {
  loadBookings();
  setTimeout(loadBookings, 1500);
}

async function cancelBooking(checkoutId, field) {
  if (state.busy) return;
  setBusy(true);
  clearProblem();
  try {
    const options = { retry: true };
    if (field) options.body = { parts: [field] };
    const answer = await call("POST", `/v1/checkouts/${encodeURIComponent(checkoutId)}/cancel`, options);
    if (answer.status === 200) {
      if (state.checkout && state.checkout.checkout_id === checkoutId) showCheckout(answer.body);
      say("ok", field ? `${field} cancelled: the booking is ${answer.body.status}.`
        : `${answer.body.status}: the booking is cancelled.`);
    } else {
      showProblem(answer, `/cancel`);
    }
  } catch (error) {
    say("bad", "No answer from the API.", `${error.message}. Refresh your bookings to see where they stand.`);
  } finally {
    setBusy(false);
    refreshCatalogue();
    loadBookingsSoon();
  }
}

// ---- wiring -------------------------------------------------------------------------------------------------

function start() {
  $("basket").addEventListener("submit", (event) => {
    event.preventDefault();
    const customer = $("customer-id");
    if (!customer.checkValidity()) {
      say("bad", "The customer id needs 1 to 64 letters, digits or . _ : -");
      customer.focus();
      return;
    }
    const parts = selection();
    if (typeof parts === "string") {
      say("bad", parts);
      return;
    }
    createCheckout({ ...baseBody(), ...parts });
  });
  for (const verb of ["confirm", "cancel", "extend"]) $(verb).addEventListener("click", () => act(verb));
  $("customer-id").addEventListener("change", refreshWallet);
  $("refresh-bookings").addEventListener("click", () => loadBookings());
  setBusy(false);
  refreshCatalogue();
  loadBookings();
  setInterval(tick, 250);
  setInterval(() => {
    if (document.hidden) return;
    refreshCatalogue();
    if (state.checkout && state.checkout.status === "HELD" && !state.busy && !state.polling) reloadCheckout();
  }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
