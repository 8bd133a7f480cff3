#include "annotator/human_page.h"

namespace bpo::annotator {
namespace {

// Model output is shown with textContent only, never parsed as HTML.
constexpr char kPage[] = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bpo: which response is better?</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { display: flex; gap: 1.5em; align-items: baseline; padding: .7em 1.2em;
           background: #1d2330; color: #fff; }
  header h1 { font-size: 1.05em; margin: 0; }
  header .grow { flex: 1; }
  header button { background: none; color: #c9d1e0; border: 1px solid #56607a; }
  main { max-width: 1200px; margin: 0 auto; padding: 1em 1.2em; }
  .card { background: #fff; border: 1px solid #d8dce4; border-radius: 6px; padding: .8em 1em; }
  .text { white-space: pre-wrap; word-wrap: break-word; }
  #prompt { margin-bottom: 1em; }
  .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
  @media (max-width: 720px) { .pair { grid-template-columns: 1fr; } }
  .label { font-size: .8em; text-transform: uppercase; letter-spacing: .06em; color: #6b7385; }
  .buttons { display: flex; gap: .6em; flex-wrap: wrap; margin: 1em 0; }
  button { font: inherit; padding: .45em 1em; border-radius: 5px; cursor: pointer;
           border: 1px solid #9aa3b5; background: #fff; }
  button.main { background: #2f6fdb; border-color: #2f6fdb; color: #fff; }
  button:disabled { opacity: .5; cursor: default; }
  kbd { font-size: .8em; border: 1px solid #aab; border-radius: 3px; padding: 0 .3em; margin-left: .4em; }
  #login-view { max-width: 360px; margin: 4em auto; }
  #login-view input { display: block; width: 100%; box-sizing: border-box; margin: .3em 0 .8em;
                      padding: .45em; font: inherit; }
  .error { color: #b42318; min-height: 1.2em; }
  .muted { color: #6b7385; font-size: .85em; }
</style>
</head>
<body data-state="loading" data-labelled="0">
<header>
  <h1>Which response is better?</h1>
  <span class="grow"></span>
  <span id="who"></span>
  <span>labelled: <b id="labelled">0</b></span>
  <span id="run-progress" class="muted"></span>
  <button id="signout" type="button" hidden>sign out</button>
</header>
<main>
  <form id="login-view" class="card" hidden>
    <p>Sign in to label pairs.</p>
    <label>Name <input id="rater" autocomplete="username" required></label>
    <label>Secret <input id="secret" type="password" autocomplete="current-password" required></label>
    <button id="signin" class="main" type="submit">Sign in</button>
    <p id="login-error" class="error"></p>
  </form>
  <section id="rate-view" hidden>
    <p id="notice" class="error"></p>
    <p id="message"></p>
    <div id="pair-view" hidden>
      <div class="card"><div class="label">Prompt</div><div id="prompt" class="text"></div></div>
      <div class="buttons">
        <button id="btn-left" class="main" type="button" data-choice="left">Left is better<kbd>1</kbd></button>
        <button id="btn-right" class="main" type="button" data-choice="right">Right is better<kbd>2</kbd></button>
        <button id="btn-tie" type="button" data-choice="tie">Tie<kbd>3</kbd></button>
        <button id="btn-skip" type="button" data-choice="skip">Skip<kbd>4</kbd></button>
      </div>
      <div class="pair">
        <div class="card"><div class="label">Left</div><div id="left-text" class="text"></div></div>
        <div class="card"><div class="label">Right</div><div id="right-text" class="text"></div></div>
      </div>
      <p class="muted">pair <span id="pair-id"></span> &middot; keys: 1 or &larr; left,
        2 or &rarr; right, 3 tie, 4 skip</p>
    </div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const kKeys = { "1": "left", "ArrowLeft": "left", "2": "right", "ArrowRight": "right",
                "3": "tie", "t": "tie", "4": "skip", "s": "skip" };
// The session lives in an HttpOnly cookie the page never sees.
let signedIn = false;
let cookieCheck = false;  // signed in; no API call has shown the cookie works yet
let pair = null;
let busy = false;
let retryTimer = 0;

function setState(state) {
  document.body.dataset.state = state;
  $("login-view").hidden = state !== "login";
  $("rate-view").hidden = state === "login";
  $("pair-view").hidden = state !== "rating";
  $("signout").hidden = state === "login";
}

function setButtons(enabled) {
  for (const b of document.querySelectorAll("[data-choice]")) b.disabled = !enabled;
}

function showCount(n) {
  $("labelled").textContent = String(n);
  document.body.dataset.labelled = String(n);
}

async function api(method, path, body) {
  const init = { method: method, headers: { "X-Bpo-Request": "1" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { status: 0, data: { error: "cannot reach the annotation service" } };
  }
  let data;
  try {
    data = await response.json();
  } catch (e) {
    data = { error: "HTTP " + response.status };
  }
  return { status: response.status, data: data };
}

function signedOut(why) {
  clearTimeout(retryTimer);
  if (cookieCheck) {
    why = "Signed in, but the browser did not keep the session cookie: open the page over " +
          "HTTPS (or on localhost).";
  }
  signedIn = false;
  cookieCheck = false;
  pair = null;
  $("who").textContent = "";
  $("run-progress").textContent = "";
  setState("login");
  $("login-error").textContent = why || "";
  $("rater").focus();
}

async function login(event) {
  event.preventDefault();
  const r = await api("POST", "/api/login", { rater: $("rater").value.trim(), secret: $("secret").value });
  if (r.status !== 200) {
    $("login-error").textContent = r.data.error || "sign-in failed";
    return;
  }
  signedIn = true;
  cookieCheck = true;
  $("secret").value = "";
  $("login-error").textContent = "";
  $("who").textContent = r.data.rater;
  showCount(r.data.labelled);
  await next();
  stats();
}

async function next() {
  clearTimeout(retryTimer);
  const r = await api("GET", "/api/next");
  if (r.status === 401) return signedOut(r.data.error);
  cookieCheck = false;
  if (r.status !== 200) {
    pair = null;
    setState("waiting");
    $("message").textContent = (r.data.error || "error") + "; trying again in 5 s.";
    retryTimer = setTimeout(next, 5000);
    return;
  }
  showCount(r.data.labelled);
  if (!r.data.pair) {
    pair = null;
    setState("waiting");
    const s = Math.max(1, Math.round((r.data.retry_after_ms || 1000) / 1000));
    $("message").textContent = "Nothing to label right now; checking again in " + s + " s.";
    retryTimer = setTimeout(next, s * 1000);
    return;
  }
  pair = r.data.pair;
  $("prompt").textContent = pair.prompt;
  $("left-text").textContent = pair.left;
  $("right-text").textContent = pair.right;
  $("pair-id").textContent = pair.pair_id;
  document.body.dataset.pair = pair.pair_id;
  $("message").textContent = "";
  busy = false;
  setButtons(true);
  setState("rating");
  window.scrollTo(0, 0);
}

async function choose(choice) {
  if (!pair || busy) return;
  busy = true;
  setButtons(false);
  const r = await api("POST", "/api/label", { pair_id: pair.pair_id, choice: choice });
  if (r.status === 401) return signedOut(r.data.error);
  if (r.status === 200) {
    showCount(r.data.labelled);
    $("notice").textContent = "";
  } else if (r.status === 409) {
    $("notice").textContent = r.data.error;  // this pair is gone; move on
  } else {
    $("notice").textContent = (r.data.error || "error") + "; click again to retry.";
    busy = false;
    setButtons(true);
    return;
  }
  pair = null;
  await next();
}

async function stats() {
  if (!signedIn) return;
  const r = await api("GET", "/api/stats");
  if (r.status === 401) return signedOut(r.data.error);
  if (r.status !== 200) return;
  cookieCheck = false;
  $("who").textContent = r.data.rater;
  showCount(r.data.labelled);
  if (r.data.run) {
    $("run-progress").textContent = "run: " + r.data.run.pairs_annotated + " of " +
        r.data.run.pairs_total + " pairs annotated";
  }
}

$("login-view").addEventListener("submit", login);
$("signout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  cookieCheck = false;
  signedOut("");
});
for (const b of document.querySelectorAll("[data-choice]")) {
  b.addEventListener("click", () => choose(b.dataset.choice));
}
document.addEventListener("keydown", (event) => {
  if (document.body.dataset.state !== "rating" || event.target.tagName === "INPUT") return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const choice = kKeys[event.key];
  if (choice) {
    event.preventDefault();
    choose(choice);
  }
});
// Keeps the session, and with it the rater's lease, alive while the page is open.
setInterval(stats, 30000);
// A reload keeps the session: the cookie says whether the rater is signed in.
(async () => {
  const r = await api("GET", "/api/stats");
  if (r.status !== 200) return setState("login");
  signedIn = true;
  $("who").textContent = r.data.rater;
  showCount(r.data.labelled);
  await next();
  stats();
})();
</script>
</body>
</html>
)html";

}  // namespace

absl::string_view HumanPageHtml() { return absl::string_view(kPage, sizeof(kPage) - 1); }

}  // namespace bpo::annotator
