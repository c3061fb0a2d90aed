// Voxsouth supervisor dashboard: live and recent calls, a call's transcript, consent evidence,
// escalations and recordings, and escalation alerts (the Calls view, the default); the voice
// targets, their CSV import and the do-not-call list (Targets); outbound campaigns with their
// progress, refreshed every few seconds while one runs (Campaigns); callbacks booked at the
// callee's local time, rescheduled or cancelled while they wait (Bookings); phone surveys with
// their results counted per question (Surveys); secret-shopper scripts with the calls scored
// against them and the trend per line tested (Shopper); audio clips calls play, uploaded or
// rendered from words, with a player each, and the voice the org's prompts are said in (Audio);
// outbound webhook endpoints, their delivery log and replays, for owners and admins (Webhooks).
//
// Plain browser JavaScript, no build step, no dependencies. State comes from the REST API
// (/api/calls, /api/escalations) and is kept current by the live feed (/api/feed over
// WebSocket, /api/feed/sse when WebSockets cannot connect). The session cookie is HttpOnly;
// every write sends the session's CSRF token in X-CSRF-Token (from the sign-in response, or
// from /api/auth/me when the page is reloaded with a session).
//
// Feed contract (control/api/feed.py): `hello` carries the newest event id at connect; events
// carry increasing ids; `resync` (or close code 4000) means "reload from the REST API and
// reconnect without a last id". After any other drop the page reconnects with backoff, passing
// the last id it saw, and the server replays what was missed.
"use strict";

(() => {
  const HANDLERS = new Set(["owner", "admin", "operator"]); // roles with escalations:handle
  const LISTENERS = new Set(["owner", "admin", "operator", "analyst"]); // recordings:listen
  // targets:read and campaigns:read; viewers get 403 and are not offered those views.
  const PLANNERS = new Set(["owner", "admin", "operator", "analyst"]);
  // targets:manage, do_not_call:add and campaigns:manage.
  const MANAGERS = new Set(["owner", "admin", "operator"]);
  // do_not_call:remove: taking a number off the list lets it be called again.
  const LIST_REMOVERS = new Set(["owner", "admin"]);
  // bookings:read, and bookings:manage (book, reschedule and cancel callbacks).
  const BOOKING_READERS = new Set(["owner", "admin", "operator", "analyst"]);
  const BOOKING_MANAGERS = new Set(["owner", "admin", "operator"]);
  // surveys:read and shopper:read (viewers get 403 and are not offered those views).
  const SURVEY_READERS = new Set(["owner", "admin", "operator", "analyst"]);
  const SHOPPER_READERS = new Set(["owner", "admin", "operator", "analyst"]);
  // surveys:manage: make surveys and ask them on the org's numbers.
  const SURVEY_MANAGERS = new Set(["owner", "admin", "operator"]);
  // shopper:manage: write scripts and score calls against them.
  const SHOPPER_SCORERS = new Set(["owner", "admin", "analyst"]);
  // webhooks:manage: read, add and remove endpoints, read their log and replay deliveries.
  const WEBHOOK_MANAGERS = new Set(["owner", "admin"]);
  // audio:read (viewers get 403 and are not offered the view), audio:manage (upload, render and
  // delete clips) and voice:manage (the voice the org's prompts are said in).
  const AUDIO_READERS = new Set(["owner", "admin", "operator", "analyst"]);
  const AUDIO_MANAGERS = new Set(["owner", "admin", "operator"]);
  const VOICE_MANAGERS = new Set(["owner", "admin"]);
  const AUDIO_PAGE = 50;
  // The voices of /api/org/voice in words ("say" is SignalWire's own, rendering nothing).
  const ENGINE_NAMES = {
    say: "SignalWire's <Say>",
    elevenlabs: "ElevenLabs",
    piper: "Piper",
  };
  const DELIVERIES_PAGE = 50;
  // "unknown": closed after its process died (a later status callback may still name the end).
  const TERMINAL = new Set(["completed", "busy", "failed", "no-answer", "canceled", "unknown"]);
  const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };
  const SEVERITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 };
  const RESYNC_CLOSE_CODE = 4000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CONNECT_TIMEOUT_MS = 10000;
  const KEEP_RESOLVED = 50;
  const RECENT_CALLS = 20;
  const TARGETS_PAGE = 50;
  const CAMPAIGNS_PAGE = 50;
  const RESULTS_PAGE = 100;
  const BOOKINGS_PAGE = 50;
  // The bookings list starts a day back: a callback being placed, or just placed, stays in
  // sight (with its call) next to the ones to come.
  const BOOKINGS_SINCE_MS = 24 * 60 * 60 * 1000;
  const CAMPAIGN_POLL_MS = 2000; // the feed has no campaign events: a running one is polled
  const MAX_IMPORT_BYTES = 5 * 1024 * 1024; // the server's limit (control/api/targets.py)
  const MAX_REJECTED_SHOWN = 500;
  // Each view and the element that holds it.
  const VIEWS = {
    calls: "dashboard",
    targets: "targets-view",
    campaigns: "campaigns-view",
    bookings: "bookings-view",
    surveys: "surveys-view",
    shopper: "shopper-view",
    audio: "audio-view",
    webhooks: "webhooks-view",
  };
  // Who may open each view other than calls (every role reads calls).
  const VIEW_ROLES = {
    targets: PLANNERS,
    campaigns: PLANNERS,
    bookings: BOOKING_READERS,
    surveys: SURVEY_READERS,
    shopper: SHOPPER_READERS,
    audio: AUDIO_READERS,
    webhooks: WEBHOOK_MANAGERS,
  };
  const SURVEY_ANSWERS = 50; // the newest answers read to list what callers said
  // Question kinds (control/api/surveys.py) in words.
  const QUESTION_KINDS = {
    yes_no: "yes or no",
    rating: "rating 1 to 5",
    choice: "keypad choice",
    speech: "open answer",
  };
  const MAX_CHOICES = 9; // keys 1 to 9
  // What a campaign's status lets a manager do next (storage/campaigns.py, _MOVES).
  const CAMPAIGN_MOVES = {
    draft: ["start"],
    running: ["pause", "cancel"],
    paused: ["resume", "cancel"],
  };
  const TARGET_STATES = [
    ["pending", "Pending"],
    ["dialing", "Dialing"],
    ["in_call", "In call"],
    ["done", "Done"],
    ["skipped", "Skipped"],
  ];
  // What a call's recording did when secure mode came on or went off (`secure_recording` rows);
  // "not_paused" has its own alert (secureNote).
  const SECURE_RECORDING = {
    paused: "recording paused",
    stopped: "recording stopped",
    resumed: "recording resumed",
    not_resumed: "recording still paused",
  };

  // Read by the end-to-end test and handy in the console; holds no secrets.
  const stats = {
    beepsAttempted: 0,
    beepsPlayed: 0,
    eventsSeen: 0,
    transport: "none",
    lastEventId: null,
    campaignPolling: false, // the shown campaign is read every CAMPAIGN_POLL_MS
  };
  window.voxsouthDashboard = stats;

  const el = (id) => document.getElementById(id);

  const state = {
    me: null,
    csrf: null,
    calls: new Map(), // live calls by id
    recent: [], // the newest calls, live or ended, newest first
    secureRecording: new Map(), // call id -> what the feed last said its recording did
    alerts: new Map(), // escalations by id
    alertItems: new Map(), // their <li> by id
    beeped: new Set(),
    selected: null, // id of the call in the transcript panel
    selectedCall: null,
    segments: new Set(), // transcript segment ids shown for the selected call
    partials: new Map(), // track -> the <li> of its words so far (replaced by the final)
    consentEvents: new Set(), // consent evidence ids shown for the selected call
    callEscalations: new Map(), // the selected call's escalations by id
    lastEventId: null,
    view: "calls", // the view shown: a key of VIEWS
    targetsTag: "", // the tag the targets table is filtered by
    targetsCursor: null, // next_cursor of the targets table's last page
    dncCursor: null, // next_cursor of the do-not-call list's last page
    targetsLoads: 0, // loads of the targets table started (a newer one wins)
    campaignsCursor: null,
    campaignItems: new Map(), // the campaigns list's <li> by campaign id
    campaignId: null, // the campaign in the detail panel
    campaign: null, // its detail, as last shown
    campaignRequests: 0, // reads and moves of the shown campaign started
    campaignShown: 0, // the number of the request whose answer is shown
    campaignRefreshing: 0, // refreshes in flight (a poll waits for them)
    campaignRefreshFailed: false, // the error shown is a refresh's, cleared by the next one
    campaignPoll: null, // setInterval id while the shown campaign runs
    bookings: new Map(), // the bookings listed, by id
    bookingItems: new Map(), // their <li> by id
    bookingLoads: 0, // loads of the bookings list started (a newer one wins)
    surveys: new Map(), // the surveys listed, by id
    surveyItems: new Map(), // their <li> by id
    surveyId: null, // the survey in the detail panel
    surveyRequests: 0, // reads of the shown survey started (a newer one wins)
    newQuestions: [], // the questions of the survey being written
    scripts: new Map(), // the shopper scripts listed, by id
    scriptItems: new Map(), // their <li> by id
    scriptId: null, // the script in the detail panel
    scriptRequests: 0, // reads of the shown script's scores started (a newer one wins)
    webhooks: new Map(), // the webhook endpoints listed, by id
    webhookItems: new Map(), // their <li> by id
    webhookLoads: 0, // loads of the endpoints list started (a newer one wins)
    webhookId: null, // the endpoint whose delivery log is shown
    deliveryLoads: 0, // loads of the shown log started (a newer one wins)
    clips: new Map(), // the audio clips listed, by id
    clipItems: new Map(), // their <li> by id
    audioCursor: null, // next_cursor of the clips list's last page
    audioLoads: 0, // loads of the clips list started (a newer one wins)
    voiceLoads: 0, // reads and writes of the org's prompt voice started (a newer one wins)
  };

  // ---- REST ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  function api(method, path, body) {
    if (body === undefined) return send(method, path);
    return send(method, path, JSON.stringify(body), "application/json");
  }

  // A file's bytes as the body (a CSV import): the same session, CSRF header and errors as
  // api(), another content type.
  function sendFile(method, path, file, contentType) {
    return send(method, path, file, contentType);
  }

  // A form's parts as multipart/form-data (an audio upload): the browser writes the
  // Content-Type, with its boundary.
  function sendForm(method, path, form) {
    return send(method, path, form);
  }

  async function send(method, path, body, contentType) {
    const headers = { Accept: "application/json" };
    if (body !== undefined && contentType !== undefined) headers["Content-Type"] = contentType;
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body,
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "NETWORK", "the server cannot be reached");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && path !== "/api/auth/login" && state.me) signedOut();
      throw new ApiError(
        response.status,
        error.code || `HTTP_${response.status}`,
        error.message || response.statusText || "request failed",
        error.details,
      );
    }
    return data;
  }

  // ---- Formatting --------------------------------------------------------------------------

  function clock(ms) {
    const s = Math.max(0, Math.floor((ms || 0) / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function timeOfDay(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
  }

  function dateTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
  }

  // When on the call something happened: its offset on the call's clock when it has one (what
  // the media plane detected), otherwise the time of day (what a person or the API recorded).
  function whenOnCall(offsetMs, iso) {
    if (typeof offsetMs === "number") return clock(offsetMs);
    return timeOfDay(iso);
  }

  function consentState(call) {
    if (call.recording_consent === true) return "granted";
    if (call.recording_consent === false) return "refused";
    return "pending";
  }

  function ruleLabel(rule) {
    if (rule === "all_party") return "all-party consent";
    if (rule === "one_party") return "one-party consent";
    return "rule not decided";
  }

  function verifiedBy(by) {
    if (!by) return "";
    if (by.startsWith("detector:")) return `by ${by.slice("detector:".length).replaceAll("_", " ")}`;
    if (by.startsWith("user:")) return "by an agent";
    if (by.startsWith("api_key:")) return "by an API client";
    return `by ${by}`;
  }

  function party(call) {
    if (!call) return "unknown call";
    return `${call.from_number || "unknown"} → ${call.to_number || "unknown"}`;
  }

  function speakerOf(segment) {
    if (segment.speaker) return segment.speaker;
    return segment.track === "inbound" ? "caller" : "agent";
  }

  function trackSpeaker(track) {
    if (track === "inbound") return "caller";
    if (track === "outbound") return "agent";
    return "";
  }

  function mayListen() {
    return state.me !== null && LISTENERS.has(state.me.role);
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  }

  function showPageError(message) {
    showError("page-error", message);
  }

  function showError(id, message) {
    const p = el(id);
    p.textContent = message || "";
    p.hidden = !message;
  }

  // An API error in words: its message, and the fields it names when they add to it.
  function errorText(err) {
    const fields = err.details && Array.isArray(err.details.fields) ? err.details.fields : [];
    const parts = fields
      .filter((f) => f && f.message && f.message !== err.message)
      .map((f) => (f.field ? `${f.field}: ${f.message}` : f.message));
    return parts.length ? `${err.message} (${parts.join("; ")})` : err.message;
  }

  function hasRole(roles) {
    return state.me !== null && roles.has(state.me.role);
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many || `${one}s`}`;
  }

  function hourOf(value) {
    return typeof value === "string" ? value.slice(0, 5) : "";
  }

  // Who put a number on the do-not-call list (`user:<id>` or `api_key:<id>`).
  function addedBy(by) {
    if (!by) return "";
    if (by.startsWith("user:")) return "by a team member";
    if (by.startsWith("api_key:")) return "by an API client";
    return `by ${by}`;
  }

  // ---- Sound -----------------------------------------------------------------------------
  // Browsers keep an AudioContext suspended until the user interacts with the page: the first
  // gesture (the sign-in itself, or any click or key) resumes it, and until then the
  // "Enable alert sound" button is offered. A beep that cannot play is counted and skipped.

  let audio = null;

  function audioContext() {
    if (audio) return audio;
    const Ctor = window.AudioContext || window.webkitAudioContext;
    if (!Ctor) return null;
    try {
      audio = new Ctor();
    } catch (err) {
      return null;
    }
    audio.addEventListener("statechange", updateSoundButton);
    return audio;
  }

  function unlockAudio() {
    const ctx = audioContext();
    if (ctx && ctx.state === "suspended") ctx.resume().then(updateSoundButton, () => {});
    updateSoundButton();
  }

  function updateSoundButton() {
    const ready = audio !== null && audio.state === "running";
    el("sound-button").hidden = ready || !state.me;
  }

  function beep(severity) {
    stats.beepsAttempted += 1;
    const ctx = audio;
    if (!ctx || ctx.state !== "running") {
      updateSoundButton();
      return;
    }
    try {
      const urgent = (SEVERITY_RANK[severity] || 0) >= SEVERITY_RANK.high;
      const t = ctx.currentTime;
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = urgent ? 988 : 740;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + (urgent ? 0.35 : 0.2));
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.addEventListener("ended", () => {
        osc.disconnect();
        gain.disconnect();
      });
      osc.start(t);
      osc.stop(t + 0.4);
      stats.beepsPlayed += 1;
    } catch (err) {
      // Sound is a courtesy; the visible alert is what counts.
    }
  }

  // ---- Signing in and out ----------------------------------------------------------------

  function showLogin() {
    el("session").hidden = true;
    el("dashboard").hidden = true;
    el("login").hidden = false;
    el("login-email").focus();
  }

  function signedIn(me) {
    state.me = me;
    state.csrf = me.csrf_token || null;
    el("who").textContent = `${me.email || "API key"} · ${me.role}`;
    el("login").hidden = true;
    el("login-error").hidden = true;
    el("login-org-row").hidden = true;
    el("session").hidden = false;
    showPageError("");
    setUpViews();
    showView("calls");
    updateSoundButton();
    startFeed();
  }

  function signedOut() {
    stopFeed();
    stopCampaignPoll();
    clearPlanning();
    state.me = null;
    state.csrf = null;
    state.calls.clear();
    state.recent = [];
    state.secureRecording.clear();
    state.alerts.clear();
    state.alertItems.clear();
    state.beeped.clear();
    state.selected = null;
    state.selectedCall = null;
    state.segments.clear();
    state.partials.clear();
    state.lastEventId = null;
    el("alerts").replaceChildren();
    el("calls").replaceChildren();
    el("recent-calls").replaceChildren();
    el("transcript").replaceChildren();
    clearCallParts();
    el("call-detail").hidden = true;
    el("call-none").hidden = false;
    renderCounts();
    showLogin();
  }

  // ---- Views: calls (the default), targets, campaigns, bookings, surveys, shopper, audio,
  // webhooks ---------------------------------------------------------------------------------

  function mayOpen(view) {
    if (view === "calls") return true;
    return VIEW_ROLES[view] !== undefined && hasRole(VIEW_ROLES[view]);
  }

  // What the signed-in role is offered: viewers read neither targets, campaigns, bookings,
  // surveys, shopper scores nor audio clips; only managers import, add to the do-not-call list,
  // make or move campaigns, book, move or cancel callbacks, make or ask surveys and upload,
  // render or delete clips; only owners, admins and analysts write scripts and score calls;
  // only owners and admins choose the voice of the org's prompts.
  function setUpViews() {
    el("views-nav").hidden = false;
    for (const button of document.querySelectorAll(".view-button")) {
      button.hidden = !mayOpen(button.dataset.view);
    }
    const manage = hasRole(MANAGERS);
    el("import-panel").hidden = !manage;
    el("dnc-form").hidden = !manage;
    el("new-campaign-panel").hidden = !manage;
    el("new-booking-panel").hidden = !hasRole(BOOKING_MANAGERS);
    if (hasRole(BOOKING_MANAGERS)) fillTimeZones();
    el("new-survey-panel").hidden = !hasRole(SURVEY_MANAGERS);
    el("survey-attach-form").hidden = !hasRole(SURVEY_MANAGERS);
    const score = hasRole(SHOPPER_SCORERS);
    el("new-script-panel").hidden = !score;
    el("score-form").hidden = !score;
    el("upload-audio-panel").hidden = !hasRole(AUDIO_MANAGERS);
    el("render-audio-panel").hidden = !hasRole(AUDIO_MANAGERS);
    el("org-voice-form").hidden = !hasRole(VOICE_MANAGERS);
  }

  function showView(view) {
    const shown = mayOpen(view) ? view : "calls";
    state.view = shown;
    for (const [name, id] of Object.entries(VIEWS)) el(id).hidden = name !== shown;
    for (const button of document.querySelectorAll(".view-button")) {
      button.setAttribute("aria-pressed", String(button.dataset.view === shown));
    }
    if (shown !== "campaigns") stopCampaignPoll();
    if (shown !== "audio") pauseClips();
    if (shown === "targets") openTargets();
    if (shown === "campaigns") openCampaigns();
    if (shown === "bookings") openBookings();
    if (shown === "surveys") openSurveys();
    if (shown === "shopper") openShopper();
    if (shown === "audio") openAudio();
    if (shown === "webhooks") openWebhooks();
  }

  // Signed out: the views forget what they showed.
  function clearPlanning() {
    state.view = "calls";
    state.targetsTag = "";
    state.targetsCursor = null;
    state.targetsLoads += 1; // answers still in flight are dropped
    state.campaignsCursor = null;
    state.campaignItems.clear();
    state.campaignId = null;
    state.campaign = null;
    state.campaignRequests += 1;
    state.campaignShown = state.campaignRequests;
    el("views-nav").hidden = true;
    el("targets-view").hidden = true;
    el("campaigns-view").hidden = true;
    for (const id of ["targets-rows", "import-rejected", "dnc-list", "campaigns-list"]) {
      el(id).replaceChildren();
    }
    for (const id of ["results-rows", "campaign-facts", "campaign-counts"]) {
      el(id).replaceChildren();
    }
    for (const id of ["import-counts", "dnc-outcome", "new-campaign-outcome", "targets-count"]) {
      el(id).textContent = "";
    }
    for (const id of ["targets-error", "import-error", "dnc-error", "campaigns-error"]) {
      showError(id, "");
    }
    showError("new-campaign-error", "");
    showError("campaign-error", "");
    for (const id of ["targets-filter", "import-form", "dnc-form", "new-campaign-form"]) {
      el(id).reset();
    }
    el("campaign-detail").hidden = true;
    el("campaign-none").hidden = false;
    el("campaign-title").textContent = "Campaign";
    clearBookings();
    clearSurveys();
    clearShopper();
    clearAudio();
    clearWebhooks();
  }

  async function onLogin(event) {
    event.preventDefault();
    unlockAudio(); // a user gesture: the one chance to allow sound without another click
    const error = el("login-error");
    error.hidden = true;
    const body = {
      email: el("login-email").value.trim(),
      password: el("login-password").value,
    };
    if (!el("login-org-row").hidden && el("login-org").value) body.org_id = el("login-org").value;
    const submit = el("login-submit");
    submit.disabled = true;
    try {
      const result = await api("POST", "/api/auth/login", body);
      el("login-form").reset();
      signedIn({
        email: result.user.email,
        role: result.role,
        org_id: result.org.id,
        csrf_token: result.csrf_token,
      });
    } catch (err) {
      if (err.code === "ORG_REQUIRED" && Array.isArray(err.details.orgs)) {
        const select = el("login-org");
        select.replaceChildren(
          ...err.details.orgs.map((o) => {
            const option = node("option", "", o.name);
            option.value = o.org_id;
            return option;
          }),
        );
        el("login-org-row").hidden = false;
      }
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  async function onLogout() {
    // Live updates stop first: a refresh they start while the session ends would be refused.
    stopFeed();
    stopCampaignPoll();
    try {
      await api("POST", "/api/auth/logout");
    } catch (err) {
      // Signed out on this page either way.
    }
    signedOut();
  }

  // ---- Live calls ------------------------------------------------------------------------

  async function loadCalls() {
    const [progress, ringing] = await Promise.all([
      api("GET", "/api/calls?status=in-progress&limit=200"),
      api("GET", "/api/calls?status=ringing&limit=200"),
    ]);
    state.calls = new Map([...ringing.calls, ...progress.calls].map((c) => [c.id, c]));
    renderCalls();
  }

  let callsRefresh = null;

  function refreshCallsSoon() {
    // Several call events often arrive together: one reload for all of them.
    if (callsRefresh !== null) return;
    callsRefresh = setTimeout(() => {
      callsRefresh = null;
      if (!state.me) return;
      Promise.all([loadCalls(), loadRecent()]).catch((err) =>
        showPageError(`Could not load calls: ${err.message}`),
      );
    }, 250);
  }

  function renderCalls() {
    const list = el("calls");
    const calls = [...state.calls.values()].sort((a, b) =>
      (b.started_at || "").localeCompare(a.started_at || ""),
    );
    const items = calls.map((call) => {
      let li = list.querySelector(`li[data-call-id="${CSS.escape(call.id)}"]`);
      if (!li) {
        li = node("li", "call");
        li.dataset.callId = call.id;
        const button = node("button", "call-button");
        button.type = "button";
        button.addEventListener("click", () => openCall(li.dataset.callId));
        li.append(button);
      }
      fillCall(li, call);
      return li;
    });
    list.replaceChildren(...items);
    renderCounts();
  }

  function fillCall(li, call) {
    const consent = consentState(call);
    const button = li.querySelector("button");
    button.setAttribute("aria-pressed", String(call.id === state.selected));
    const status = node("span", `badge status status-${call.status}`, call.status);
    const badge = node("span", `badge consent consent-${consent}`, `consent ${consent}`);
    const rule = node("span", "rule-name", ruleLabel(call.consent_rule));
    const by = node("span", "verified", verifiedBy(call.consent_verified_by));
    const line1 = node("span", "call-line");
    line1.append(node("span", "parties", party(call)), status);
    if (call.escalated) line1.append(node("span", "badge escalated", "escalated"));
    if (call.secure_mode) line1.append(secureBadge());
    const line2 = node("span", "call-line");
    line2.append(badge, rule, by);
    button.replaceChildren(line1, line2);
    const note = secureNote(call.id);
    if (note) button.append(node("span", "call-line alert-note", note));
    li.classList.toggle("selected", call.id === state.selected);
  }

  function secureBadge() {
    return node("span", "badge secure", "Secure mode");
  }

  // The one thing about secure mode a supervisor must act on: the caller may be giving card
  // details while the recording runs.
  function secureNote(callId) {
    const notPaused = state.secureRecording.get(callId) === "not_paused";
    return notPaused ? "Recording could not be paused" : "";
  }

  function markSelected() {
    for (const li of document.querySelectorAll("#calls > li, #recent-calls > li")) {
      const chosen = li.dataset.callId === state.selected;
      li.classList.toggle("selected", chosen);
      li.querySelector("button").setAttribute("aria-pressed", String(chosen));
    }
  }

  // ---- Recent calls (live or ended) --------------------------------------------------------

  async function loadRecent() {
    const page = await api("GET", `/api/calls?limit=${RECENT_CALLS}`);
    state.recent = page.calls;
    renderRecent();
  }

  function renderRecent() {
    const list = el("recent-calls");
    const items = state.recent.map((call) => {
      let li = list.querySelector(`li[data-call-id="${CSS.escape(call.id)}"]`);
      if (!li) {
        li = node("li", "call");
        li.dataset.callId = call.id;
        const button = node("button", "call-button");
        button.type = "button";
        button.addEventListener("click", () => openCall(li.dataset.callId));
        li.append(button);
      }
      fillRecent(li, call);
      return li;
    });
    list.replaceChildren(...items);
    el("recent-empty").hidden = items.length > 0;
  }

  function fillRecent(li, call) {
    const button = li.querySelector("button");
    button.setAttribute("aria-pressed", String(call.id === state.selected));
    const line1 = node("span", "call-line");
    line1.append(
      node("span", "parties", party(call)),
      node("span", `badge status status-${call.status}`, call.status),
    );
    if (call.escalated) line1.append(node("span", "badge escalated", "escalated"));
    const line2 = node("span", "call-line");
    line2.append(node("span", "started", dateTime(call.started_at)));
    if (typeof call.duration_seconds === "number") {
      line2.append(node("span", "duration", clock(call.duration_seconds * 1000)));
    }
    button.replaceChildren(line1, line2);
    li.classList.toggle("selected", call.id === state.selected);
  }

  function renderCounts() {
    el("calls-count").textContent = state.calls.size ? `(${state.calls.size})` : "";
    el("calls-empty").hidden = state.calls.size > 0;
    const open = [...state.alerts.values()].filter((a) => a.status !== "resolved").length;
    el("alerts-count").textContent = open ? `(${open} open)` : "";
    el("nav-alerts").textContent = open ? `${open} open` : ""; // seen from the other views
    el("alerts-empty").hidden = state.alerts.size > 0;
  }

  function updateCall(callId, changes) {
    const call = state.calls.get(callId);
    if (call) {
      Object.assign(call, changes);
      const li = el("calls").querySelector(`li[data-call-id="${CSS.escape(callId)}"]`);
      if (li) fillCall(li, call);
    }
    const recent = state.recent.find((c) => c.id === callId);
    if (recent) {
      Object.assign(recent, changes);
      const li = el("recent-calls").querySelector(`li[data-call-id="${CSS.escape(callId)}"]`);
      if (li) fillRecent(li, recent);
    }
    if (state.selectedCall && state.selectedCall.id === callId) {
      Object.assign(state.selectedCall, changes);
      renderFacts();
    }
  }

  // ---- The call panel: facts, transcript, consent evidence, escalations, recordings ---------

  async function openCall(callId) {
    state.selected = callId;
    state.selectedCall =
      state.calls.get(callId) || state.recent.find((c) => c.id === callId) || { id: callId };
    state.segments.clear();
    state.partials.clear();
    el("transcript").replaceChildren();
    clearCallParts();
    el("call-none").hidden = true;
    el("call-detail").hidden = false;
    markSelected();
    renderFacts();
    renderTranscriptEmpty();
    let call;
    try {
      call = await api("GET", `/api/calls/${encodeURIComponent(callId)}`);
    } catch (err) {
      if (state.selected === callId) showPageError(`Could not open the call: ${err.message}`);
      return;
    }
    if (state.selected !== callId) return; // another call was chosen meanwhile
    const { transcript, consent_events, escalations, recordings, ...facts } = call;
    if (facts.secure_mode === undefined && state.selectedCall.secure_mode !== undefined) {
      facts.secure_mode = state.selectedCall.secure_mode; // what the feed said, if not the API
    }
    state.selectedCall = facts;
    renderFacts();
    if (transcript === undefined) {
      el("transcript-empty").textContent = "Your role may not read transcripts.";
    }
    for (const segment of transcript || []) addSegment(segment);
    renderTranscriptEmpty();
    // Rows the feed brought while this loaded are shown once: both are keyed by id.
    for (const row of consent_events || []) addConsentEvent(row);
    for (const row of escalations || []) upsertCallEscalation(row);
    renderRecordings(recordings || []);
  }

  function renderFacts() {
    const call = state.selectedCall;
    if (!call) return;
    el("call-title").textContent = `Call ${party(call)}`;
    const rows = [
      ["Status", call.status || "…"],
      [
        "Recording consent",
        `${consentState(call)} ${verifiedBy(call.consent_verified_by)}`.trim(),
      ],
      [
        "Consent rule",
        `${ruleLabel(call.consent_rule)}${call.consent_rule_reason ? ` (${call.consent_rule_reason})` : ""}`,
      ],
    ];
    if (call.escalated) rows.push(["Escalated", "yes"]);
    if (call.secure_mode) {
      const recording = SECURE_RECORDING[state.secureRecording.get(call.id)];
      const dd = node("dd");
      dd.append(secureBadge());
      if (recording) dd.append(node("span", "secure-recording", recording));
      rows.push(["Privacy", dd]);
    }
    el("call-facts").replaceChildren(
      ...rows.flatMap(([k, v]) => [node("dt", "", k), v instanceof Node ? v : node("dd", "", v)]),
    );
    renderSecureNote(call.id);
  }

  function renderSecureNote(callId) {
    const p = el("call-secure-note");
    const note = secureNote(callId);
    if (p.textContent !== note) p.textContent = note; // announced once, when it appears
    p.hidden = !note;
  }

  function clearCallParts() {
    state.consentEvents.clear();
    state.callEscalations.clear();
    el("consent-events").replaceChildren();
    el("call-escalations").replaceChildren();
    el("recordings").replaceChildren();
    el("recordings-denied").hidden = true;
    el("call-secure-note").textContent = "";
    el("call-secure-note").hidden = true;
    renderPartsEmpty();
  }

  function renderPartsEmpty() {
    el("consent-empty").hidden = state.consentEvents.size > 0;
    el("call-escalations-empty").hidden = state.callEscalations.size > 0;
    el("recordings-empty").hidden = el("recordings").children.length > 0;
  }

  // Who the evidence is from: a speaker heard on a track, a person who recorded a verdict, or
  // the platform, which plays the disclosure before the call's audio.
  function evidenceSource(row) {
    const speaker = trackSpeaker(row.track);
    if (speaker) return speaker;
    if (row.actor) return verifiedBy(row.actor);
    return row.kind === "disclosure" ? "platform" : "";
  }

  function consentVerdictLabel(row) {
    if (row.verdict) return `consent ${row.verdict}`;
    if (row.kind === "disclosure") return "disclosure given";
    return row.kind || "evidence";
  }

  function addConsentEvent(row) {
    if (!row.id || state.consentEvents.has(row.id)) return;
    state.consentEvents.add(row.id);
    const li = node("li", "call-event consent-event");
    li.dataset.consentEventId = row.id;
    li.dataset.at = row.occurred_at || "";
    const head = node("span", "call-line");
    head.append(
      node("span", "when", whenOnCall(row.offset_ms, row.occurred_at)),
      node("span", "who", evidenceSource(row)),
      node("span", `badge verdict consent-${row.verdict || "pending"}`, consentVerdictLabel(row)),
    );
    if (row.detector) head.append(node("span", "detector", row.detector.replaceAll("_", " ")));
    li.append(head);
    if (row.evidence) li.append(node("blockquote", "evidence", `“${row.evidence}”`));
    // In the order it happened; the feed and the API may interleave.
    const list = el("consent-events");
    const at = li.dataset.at;
    const after = at ? [...list.children].find((c) => c.dataset.at > at) : undefined;
    list.insertBefore(li, after || null);
    renderPartsEmpty();
  }

  function upsertCallEscalation(row) {
    const known = state.callEscalations.get(row.id);
    const merged = { ...(known || {}), ...row };
    if (known && STATUS_RANK[known.status] > STATUS_RANK[merged.status]) {
      merged.status = known.status; // status only moves forward
    }
    state.callEscalations.set(row.id, merged);
    const list = el("call-escalations");
    let li = list.querySelector(`li[data-escalation-id="${CSS.escape(row.id)}"]`);
    if (!li) {
      li = node("li", "call-event call-escalation");
      li.dataset.escalationId = row.id;
      list.append(li);
    }
    fillCallEscalation(li, merged);
    renderPartsEmpty();
  }

  function fillCallEscalation(li, esc) {
    const severity = SEVERITY_RANK[esc.severity] === undefined ? "medium" : esc.severity;
    li.className = `call-event call-escalation sev-${severity} status-${esc.status}`;
    const head = node("span", "call-line");
    head.append(
      node("span", "when", whenOnCall(esc.start_ms, esc.raised_at)),
      node("span", "who", trackSpeaker(esc.track)),
      node("span", "severity", severity),
      node("strong", "rule", esc.rule_name || esc.kind || "escalation"),
      node("span", "status-badge", esc.status),
    );
    li.replaceChildren(head);
    if (esc.evidence) li.append(node("blockquote", "evidence", `“${esc.evidence}”`));
  }

  function recordingUrl(sid, format) {
    const path = `/api/recordings/${encodeURIComponent(sid)}/audio`;
    return format ? `${path}?format=${format}` : path;
  }

  function renderRecordings(recordings) {
    const may = mayListen();
    el("recordings").replaceChildren(...recordings.map((r, i) => recordingItem(r, i + 1, may)));
    el("recordings-denied").hidden = may || !recordings.some((r) => r.has_audio);
    renderPartsEmpty();
  }

  function recordingItem(rec, n, may) {
    const li = node("li", "recording");
    li.dataset.recordingSid = rec.recording_sid;
    const name = `Recording ${n}`;
    const head = node("p", "call-line");
    head.append(
      node("strong", "", name),
      node("span", `badge status status-${rec.status}`, rec.status),
    );
    if (typeof rec.duration_s === "number") {
      head.append(node("span", "duration", clock(rec.duration_s * 1000)));
    }
    li.append(head);
    if (!rec.has_audio) {
      li.append(node("p", "empty", `No audio (${rec.status}).`));
      return li;
    }
    if (!may) return li; // the section says so once
    // Same origin: the session cookie authenticates it, and Range requests let it seek.
    const player = node("audio", "player");
    player.controls = true;
    player.preload = "none";
    player.src = recordingUrl(rec.recording_sid);
    player.setAttribute("aria-label", `${name} of call ${party(state.selectedCall)}`);
    player.append(node("span", "", "This browser cannot play it: download it below."));
    const links = node("p", "actions");
    for (const [format, label] of [[null, "WAV"], ["mp3", "MP3"]]) {
      const link = node("a", "download", `Download ${label}`);
      link.href = recordingUrl(rec.recording_sid, format);
      link.download = `${rec.recording_sid}.${format || "wav"}`;
      link.setAttribute("aria-label", `Download ${name} (${label})`);
      links.append(link);
    }
    li.append(player, links);
    return li;
  }

  function renderTranscriptEmpty() {
    el("transcript-empty").hidden = state.segments.size > 0;
  }

  // A speaker's words so far: one line per track at the end of the transcript, replaced as
  // they change, removed when withdrawn (empty) or when the utterance's final segment arrives.
  function showPartial(partial) {
    const known = state.partials.get(partial.track);
    if (!partial.text) {
      if (known) known.remove();
      state.partials.delete(partial.track);
      return;
    }
    const speaker = speakerOf(partial);
    const li = known || node("li", `segment partial speaker-${speaker}`);
    li.replaceChildren(
      node("span", "when", clock(partial.start_ms)),
      node("span", "who", speaker),
      node("span", "text", partial.text),
    );
    if (!known) {
      state.partials.set(partial.track, li);
      el("transcript").append(li);
      li.scrollIntoView({ block: "nearest" });
    }
  }

  function addSegment(segment) {
    const partial = state.partials.get(segment.track);
    if (partial) {
      partial.remove();
      state.partials.delete(segment.track);
    }
    if (!segment.id || state.segments.has(segment.id)) return;
    state.segments.add(segment.id);
    const speaker = speakerOf(segment);
    const li = node("li", `segment speaker-${speaker}`);
    li.dataset.segmentId = segment.id;
    li.dataset.start = String(segment.start_ms || 0);
    const text =
      segment.text === null || segment.text === undefined
        ? node("span", "text hidden-text", "(text hidden for your role)")
        : node("span", "text", segment.text);
    li.append(node("span", "when", clock(segment.start_ms)), node("span", "who", speaker), text);
    // Offsets order the conversation; segments may arrive a little out of order.
    const list = el("transcript");
    const after = [...list.children].find((c) => Number(c.dataset.start) > (segment.start_ms || 0));
    list.insertBefore(li, after || null);
    renderTranscriptEmpty();
    if (!after) li.scrollIntoView({ block: "nearest" });
  }

  // ---- Escalation alerts -----------------------------------------------------------------

  async function loadAlerts() {
    const [open, acknowledged] = await Promise.all([
      api("GET", "/api/escalations?status=open&limit=200"),
      api("GET", "/api/escalations?status=acknowledged&limit=200"),
    ]);
    const rows = [...open.escalations, ...acknowledged.escalations].sort((a, b) =>
      (a.raised_at || "").localeCompare(b.raised_at || ""),
    );
    const keep = new Set(rows.map((r) => r.id));
    for (const [id, li] of state.alertItems) {
      if (!keep.has(id)) {
        li.remove();
        state.alertItems.delete(id);
        state.alerts.delete(id);
      }
    }
    for (const row of rows) upsertAlert(row, { replace: true });
    renderCounts();
  }

  function upsertAlert(row, { replace = false } = {}) {
    const known = state.alerts.get(row.id);
    const merged = { ...(known || {}), ...row };
    // Events can overtake each other (a reload racing the feed): status only moves forward.
    if (known && !replace && STATUS_RANK[known.status] > STATUS_RANK[merged.status]) {
      merged.status = known.status;
    }
    if (!merged.from_number) {
      const call = state.calls.get(merged.call_id);
      if (call) {
        merged.from_number = call.from_number;
        merged.to_number = call.to_number;
      }
    }
    state.alerts.set(row.id, merged);
    let li = state.alertItems.get(row.id);
    const isNew = !li;
    if (isNew) {
      li = makeAlertItem(row.id);
      state.alertItems.set(row.id, li);
      el("alerts").prepend(li); // newest first
    }
    fillAlert(li, merged);
    if (isNew && !replace) {
      li.classList.add("arrived");
      li.addEventListener("animationend", () => li.classList.remove("arrived"), { once: true });
    }
    pruneResolved();
    renderCounts();
    return merged;
  }

  function pruneResolved() {
    const resolved = [...state.alertItems.entries()].filter(
      ([id]) => state.alerts.get(id).status === "resolved",
    );
    // Oldest first (insertion order): keep the newest few.
    for (const [id, li] of resolved.slice(0, Math.max(0, resolved.length - KEEP_RESOLVED))) {
      li.remove();
      state.alertItems.delete(id);
      state.alerts.delete(id);
    }
  }

  function makeAlertItem(id) {
    const li = el("alert-template").content.firstElementChild.cloneNode(true);
    li.dataset.escalationId = id;
    const notes = li.querySelector(".notes");
    notes.id = `notes-${id}`;
    li.querySelector(".notes-label").htmlFor = notes.id;
    const form = li.querySelector(".resolve-form");
    li.querySelector(".acknowledge").addEventListener("click", () => acknowledge(id));
    li.querySelector(".resolve").addEventListener("click", () => {
      form.hidden = false;
      li.querySelector(".resolve").hidden = true;
      notes.focus();
    });
    li.querySelector(".cancel-resolve").addEventListener("click", () => {
      form.hidden = true;
      li.querySelector(".resolve").hidden = false;
      li.querySelector(".resolve").focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      resolve(id, notes.value);
    });
    li.querySelector(".open-call").addEventListener("click", () => {
      const esc = state.alerts.get(id);
      if (esc) openCall(esc.call_id);
    });
    return li;
  }

  function fillAlert(li, esc) {
    const severity = SEVERITY_RANK[esc.severity] === undefined ? "medium" : esc.severity;
    for (const name of [...li.classList]) {
      if (name.startsWith("sev-") || name.startsWith("status-")) li.classList.remove(name);
    }
    li.classList.add(`sev-${severity}`, `status-${esc.status}`);
    li.querySelector(".severity").textContent = severity;
    li.querySelector(".rule").textContent = esc.rule_name || esc.kind || "escalation";
    li.querySelector(".status-badge").textContent = esc.status;
    const who = esc.track === "inbound" ? " (caller)" : esc.track === "outbound" ? " (agent)" : "";
    li.querySelector(".alert-call").textContent = `Call ${party(esc)}${who}`;
    const evidence = li.querySelector(".evidence");
    evidence.textContent = esc.evidence ? `“${esc.evidence}”` : "";
    evidence.hidden = !esc.evidence;
    const meta = [`raised ${timeOfDay(esc.raised_at)}`];
    if (esc.acknowledged_at) meta.push(`acknowledged ${timeOfDay(esc.acknowledged_at)}`);
    if (esc.resolved_at) meta.push(`resolved ${timeOfDay(esc.resolved_at)}`);
    if (esc.resolution_notes) meta.push(`notes: ${esc.resolution_notes}`);
    li.querySelector(".alert-meta").textContent = meta.join(" · ");
    const label = `${esc.rule_name || "escalation"} on call ${party(esc)}`;
    const may = state.me !== null && HANDLERS.has(state.me.role);
    const ack = li.querySelector(".acknowledge");
    ack.hidden = !may || esc.status !== "open";
    ack.setAttribute("aria-label", `Acknowledge ${label}`);
    const resolveButton = li.querySelector(".resolve");
    const form = li.querySelector(".resolve-form");
    if (!may || esc.status === "resolved") {
      resolveButton.hidden = true;
      form.hidden = true;
    } else if (form.hidden) {
      resolveButton.hidden = false;
    }
    resolveButton.setAttribute("aria-label", `Resolve ${label}`);
    li.querySelector(".open-call").setAttribute("aria-label", `Open call ${party(esc)}`);
  }

  function alertError(id, message) {
    const li = state.alertItems.get(id);
    if (!li) return;
    const p = li.querySelector(".alert-error");
    p.textContent = message || "";
    p.hidden = !message;
  }

  async function act(id, path, body, buttons) {
    alertError(id, "");
    for (const b of buttons) b.disabled = true;
    try {
      const row = await api("POST", `/api/escalations/${encodeURIComponent(id)}/${path}`, body);
      upsertAlert(row);
      return true;
    } catch (err) {
      alertError(id, err.message);
      if (err.status === 409 || err.status === 404) {
        try {
          upsertAlert(await api("GET", `/api/escalations/${encodeURIComponent(id)}`), {
            replace: true,
          });
        } catch (ignored) {
          // The error shown is enough.
        }
      }
      return false;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  function acknowledge(id) {
    const li = state.alertItems.get(id);
    return act(id, "acknowledge", undefined, [li.querySelector(".acknowledge")]);
  }

  async function resolve(id, notes) {
    const li = state.alertItems.get(id);
    const buttons = [li.querySelector(".confirm-resolve"), li.querySelector(".cancel-resolve")];
    if (await act(id, "resolve", { notes }, buttons)) {
      li.querySelector(".resolve-form").hidden = true;
    }
  }

  function alertFromEvent(event) {
    const d = event.data;
    return {
      id: d.event_id,
      call_id: event.call_id,
      rule_name: d.rule_name,
      kind: d.kind,
      severity: d.severity,
      track: d.track,
      start_ms: d.start_ms,
      end_ms: d.end_ms,
      evidence: d.evidence,
      raised_at: d.occurred_at || event.at,
      status: "open",
    };
  }

  function consentFromEvent(event) {
    const d = event.data;
    return {
      id: d.event_id,
      kind: d.kind,
      detector: d.detector,
      verdict: d.verdict,
      track: d.track,
      offset_ms: d.offset_ms,
      evidence: d.evidence,
      actor: d.actor,
      occurred_at: d.occurred_at || event.at,
    };
  }

  async function completeAlert(id) {
    // A raised escalation on a call this page does not list: the API knows its numbers.
    try {
      upsertAlert(await api("GET", `/api/escalations/${encodeURIComponent(id)}`));
    } catch (err) {
      // Shown without numbers.
    }
  }

  // ---- Voice targets ---------------------------------------------------------------------

  function openTargets() {
    loadTargets();
    loadDoNotCall();
  }

  function targetsPath(cursor) {
    const query = new URLSearchParams({ limit: String(TARGETS_PAGE) });
    if (state.targetsTag) query.set("tag", state.targetsTag);
    if (cursor) query.set("cursor", cursor);
    return `/api/voice-targets?${query}`;
  }

  // The first page (replacing the table), or with `more` the page after the last one shown.
  async function loadTargets({ more = false } = {}) {
    state.targetsLoads += 1;
    const load = state.targetsLoads;
    const button = el("targets-more");
    button.disabled = true;
    let page;
    try {
      page = await api("GET", targetsPath(more ? state.targetsCursor : null));
    } catch (err) {
      if (load === state.targetsLoads) {
        showError("targets-error", `Could not load the targets: ${errorText(err)}`);
        button.disabled = false;
      }
      return;
    }
    if (load !== state.targetsLoads) return; // a newer load (another tag, say) replaced it
    showError("targets-error", "");
    const rows = page.targets.map(targetRow);
    if (more) el("targets-rows").append(...rows);
    else el("targets-rows").replaceChildren(...rows);
    state.targetsCursor = page.next_cursor || null;
    button.hidden = !state.targetsCursor;
    button.disabled = false;
    const shown = el("targets-rows").children.length;
    el("targets-count").textContent = shown ? `(${shown}${state.targetsCursor ? "+" : ""})` : "";
    el("targets-table").hidden = shown === 0;
    el("targets-empty").textContent = state.targetsTag
      ? `No voice targets with tag “${state.targetsTag}”.`
      : "No voice targets.";
    el("targets-empty").hidden = shown > 0;
  }

  function targetRow(target) {
    const tr = node("tr");
    tr.dataset.targetId = target.id;
    tr.dataset.number = target.number;
    const zone = target.time_zone_set ? target.time_zone : `${target.time_zone} (from the number)`;
    const fields = Object.entries(target.fields || {}).map(([k, v]) => `${k}: ${v}`);
    tr.append(
      node("td", "number", target.number),
      node("td", "", target.name || ""),
      node("td", "", zone),
      node("td", "", (target.tags || []).join(", ")),
      node("td", "", fields.join("; ")),
      node("td", "when", dateTime(target.created_at)),
    );
    return tr;
  }

  function onTargetsFilter(event) {
    event.preventDefault();
    state.targetsTag = el("targets-tag").value.trim();
    loadTargets();
  }

  function onTargetsClear() {
    el("targets-tag").value = "";
    state.targetsTag = "";
    loadTargets();
  }

  async function onImport(event) {
    event.preventDefault();
    showError("import-error", "");
    const file = el("import-file").files[0];
    if (!file) {
      showError("import-error", "Choose a CSV file to import.");
      return;
    }
    if (file.size > MAX_IMPORT_BYTES) {
      showError("import-error", "The file is too large: an import takes at most 5 MB.");
      return;
    }
    const onDuplicate = el("import-duplicate").value === "skip" ? "skip" : "update";
    const submit = el("import-submit");
    submit.disabled = true;
    try {
      const report = await sendFile(
        "POST",
        `/api/voice-targets/import?on_duplicate=${onDuplicate}`,
        file,
        "text/csv",
      );
      renderImportReport(report);
      el("import-file").value = "";
      loadTargets();
    } catch (err) {
      renderImportReport(null);
      const why = err.code === "BODY_TOO_LARGE" ? "the file is too large" : errorText(err);
      showError("import-error", `Could not import ${file.name}: ${why}`);
    } finally {
      submit.disabled = false;
    }
  }

  function renderImportReport(report) {
    if (!report) {
      el("import-counts").textContent = "";
      el("import-rejected").replaceChildren();
      return;
    }
    const rejected = Array.isArray(report.rejected) ? report.rejected : [];
    el("import-counts").textContent = [
      `${report.added} added`,
      `${report.updated} updated`,
      `${report.unchanged} unchanged`,
      `${rejected.length} rejected`,
    ].join(" · ");
    // A file may hold 50,000 rows: the first few hundred rejected say what is wrong.
    const items = rejected
      .slice(0, MAX_REJECTED_SHOWN)
      .map((r) => node("li", "", `line ${r.line}: ${r.field}: ${r.message}`));
    if (rejected.length > MAX_REJECTED_SHOWN) {
      items.push(node("li", "", `and ${rejected.length - MAX_REJECTED_SHOWN} more rejected rows`));
    }
    el("import-rejected").replaceChildren(...items);
  }

  // ---- The do-not-call list ----------------------------------------------------------------

  // The newest page (replacing the list), or with `more` the page after the last one shown.
  async function loadDoNotCall({ more = false } = {}) {
    const button = el("dnc-more");
    button.disabled = true;
    const query = new URLSearchParams();
    if (more && state.dncCursor) query.set("cursor", state.dncCursor);
    let page;
    try {
      page = await api("GET", `/api/do-not-call?${query}`);
    } catch (err) {
      showError("dnc-error", `Could not load the do-not-call list: ${errorText(err)}`);
      button.disabled = false;
      return;
    }
    const may = hasRole(LIST_REMOVERS);
    const items = page.numbers.map((row) => doNotCallItem(row, may));
    if (more) el("dnc-list").append(...items);
    else el("dnc-list").replaceChildren(...items);
    state.dncCursor = page.next_cursor || null;
    button.hidden = !state.dncCursor;
    button.disabled = false;
    const shown = el("dnc-list").children.length;
    el("dnc-count").textContent = shown ? `(${shown}${state.dncCursor ? "+" : ""})` : "";
    el("dnc-empty").hidden = shown > 0;
  }

  function doNotCallItem(row, mayRemove) {
    const li = node("li", "dnc-item");
    li.dataset.number = row.number;
    const head = node("p", "call-line");
    head.append(node("strong", "number", row.number));
    if (row.reason) head.append(node("span", "reason", row.reason));
    const added = `added ${dateTime(row.created_at)} ${addedBy(row.added_by)}`;
    li.append(head, node("p", "alert-meta", added));
    if (mayRemove) {
      const remove = node("button", "secondary", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove ${row.number} from the do-not-call list`);
      remove.addEventListener("click", () => removeDoNotCall(row.number, remove));
      li.append(remove);
    }
    return li;
  }

  async function onAddDoNotCall(event) {
    event.preventDefault();
    showError("dnc-error", "");
    el("dnc-outcome").textContent = "";
    const body = { number: el("dnc-number").value.trim() };
    const reason = el("dnc-reason").value.trim();
    if (reason) body.reason = reason;
    const submit = el("dnc-submit");
    submit.disabled = true;
    try {
      const result = await api("POST", "/api/do-not-call", body);
      el("dnc-outcome").textContent =
        result.outcome === "added"
          ? `${result.number} added to the list.`
          : `${result.number} was on the list already.`;
      el("dnc-form").reset();
      await loadDoNotCall();
    } catch (err) {
      showError("dnc-error", `Could not add the number: ${errorText(err)}`);
    } finally {
      submit.disabled = false;
    }
  }

  async function removeDoNotCall(number, button) {
    showError("dnc-error", "");
    el("dnc-outcome").textContent = "";
    button.disabled = true;
    try {
      await api("DELETE", `/api/do-not-call/${encodeURIComponent(number)}`);
      el("dnc-outcome").textContent = `${number} taken off the list.`;
    } catch (err) {
      showError("dnc-error", `Could not remove ${number}: ${errorText(err)}`);
      button.disabled = false;
    }
    await loadDoNotCall();
    el("dnc-title").focus(); // its button is gone
  }

  // ---- Campaigns -------------------------------------------------------------------------

  function openCampaigns() {
    loadCampaigns();
    if (state.campaignId) refreshCampaign();
  }

  async function loadCampaigns({ more = false } = {}) {
    const query = new URLSearchParams({ limit: String(CAMPAIGNS_PAGE) });
    if (more && state.campaignsCursor) query.set("cursor", state.campaignsCursor);
    const button = el("campaigns-more");
    button.disabled = true;
    let page;
    try {
      page = await api("GET", `/api/campaigns?${query}`);
    } catch (err) {
      showError("campaigns-error", `Could not load the campaigns: ${errorText(err)}`);
      button.disabled = false;
      return;
    }
    showError("campaigns-error", "");
    if (!more) {
      state.campaignItems.clear();
      el("campaigns-list").replaceChildren();
    }
    for (const campaign of page.campaigns) {
      if (state.campaignItems.has(campaign.id)) continue;
      const li = campaignItem(campaign);
      state.campaignItems.set(campaign.id, li);
      el("campaigns-list").append(li);
    }
    state.campaignsCursor = page.next_cursor || null;
    button.hidden = !state.campaignsCursor;
    button.disabled = false;
    el("campaigns-empty").hidden = state.campaignItems.size > 0;
  }

  function campaignItem(campaign) {
    const li = node("li", "campaign");
    li.dataset.campaignId = campaign.id;
    const button = node("button", "call-button campaign-button");
    button.type = "button";
    button.addEventListener("click", () => {
      selectCampaign(li.dataset.campaignId);
      el("campaign-title").scrollIntoView({ block: "nearest" }); // below the list on a phone
    });
    li.append(button);
    fillCampaignItem(li, campaign);
    return li;
  }

  function fillCampaignItem(li, campaign) {
    const chosen = campaign.id === state.campaignId;
    const button = li.querySelector("button");
    button.setAttribute("aria-pressed", String(chosen));
    const line1 = node("span", "call-line");
    line1.append(
      node("span", "parties", campaign.name),
      node("span", `badge status campaign-status status-${campaign.status}`, campaign.status),
    );
    const line2 = node("span", "call-line");
    line2.append(node("span", "started", `made ${dateTime(campaign.created_at)}`));
    button.replaceChildren(line1, line2);
    li.classList.toggle("selected", chosen);
  }

  function markCampaignSelected() {
    for (const [id, li] of state.campaignItems) {
      const chosen = id === state.campaignId;
      li.classList.toggle("selected", chosen);
      li.querySelector("button").setAttribute("aria-pressed", String(chosen));
    }
  }

  function selectCampaign(id) {
    if (state.campaignId !== id) {
      stopCampaignPoll();
      state.campaignId = id;
      state.campaign = null;
      state.campaignRefreshFailed = false;
      el("campaign-title").textContent = "Campaign";
      el("campaign-facts").replaceChildren();
      el("campaign-counts").replaceChildren();
      el("campaign-outcomes").textContent = "";
      el("campaign-progress-text").textContent = "";
      el("results-rows").replaceChildren();
      el("campaign-cancel-confirm").hidden = true;
      showError("campaign-error", "");
      renderCampaignActions(null);
    }
    el("campaign-none").hidden = true;
    el("campaign-detail").hidden = false;
    markCampaignSelected();
    return refreshCampaign({ always: true });
  }

  // The shown campaign's detail and results, read again. A poll skips while one is in flight.
  async function refreshCampaign({ always = false } = {}) {
    const id = state.campaignId;
    if (!id || (state.campaignRefreshing > 0 && !always)) return;
    state.campaignRequests += 1;
    const request = state.campaignRequests;
    state.campaignRefreshing += 1;
    const path = `/api/campaigns/${encodeURIComponent(id)}`;
    try {
      const [campaign, results] = await Promise.all([
        api("GET", path),
        api("GET", `${path}/results?limit=${RESULTS_PAGE}`),
      ]);
      if (applyCampaign(id, request, campaign)) {
        renderResults(results);
        if (state.campaignRefreshFailed) {
          state.campaignRefreshFailed = false;
          showError("campaign-error", "");
        }
      }
    } catch (err) {
      if (state.campaignId === id && request >= state.campaignShown && err.status !== 401) {
        state.campaignRefreshFailed = true;
        showError("campaign-error", `Could not read the campaign: ${errorText(err)}`);
        if (err.status === 404) stopCampaignPoll();
      }
    } finally {
      state.campaignRefreshing -= 1;
      syncCampaignPoll();
    }
  }

  // Shows an answer about the campaign unless the campaign changed or a newer answer (a move
  // that overtook a poll, say) is shown already. True when shown.
  function applyCampaign(id, request, campaign) {
    if (state.campaignId !== id || request < state.campaignShown) return false;
    state.campaignShown = request;
    if (!campaign.progress && state.campaign && state.campaign.progress) {
      campaign.progress = state.campaign.progress;
    }
    state.campaign = campaign;
    renderCampaign(campaign);
    const li = state.campaignItems.get(id);
    if (li) fillCampaignItem(li, campaign);
    syncCampaignPoll();
    return true;
  }

  function flowText(flow) {
    if (!flow) return "";
    if (flow.say) return `says “${flow.say}”`;
    if (flow.play) return `plays ${flow.play}`;
    if (flow.connect) return `connects to ${flow.connect}`;
    return "";
  }

  function windowText(hours) {
    if (!hours) return "";
    const names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const days = Array.isArray(hours.days) ? hours.days : [];
    const which = days.length === 7 ? "every day" : days.map((d) => names[d] || d).join(", ");
    return `${hourOf(hours.start)}–${hourOf(hours.end)}, ${which} (the target's local time)`;
  }

  function renderCampaign(campaign) {
    el("campaign-title").textContent = `Campaign “${campaign.name}”`;
    const status = node("dd");
    status.append(
      node("span", `badge status campaign-status status-${campaign.status}`, campaign.status),
    );
    const rows = [
      ["Status", status],
      ["Call flow", flowText(campaign.flow)],
      ["From", campaign.from || ""],
      ["Calls at a time", String(campaign.max_concurrent)],
      ["Calling hours", windowText(campaign.window)],
    ];
    if (campaign.retries && campaign.retries.max_attempts) {
      rows.push(["Attempts", `at most ${campaign.retries.max_attempts} per target`]);
    }
    if (campaign.on_machine) {
      const machine = campaign.on_machine === "message" ? "leave the flow as a message" : "hang up";
      rows.push(["Answering machine", machine]);
    }
    rows.push(["Made", dateTime(campaign.created_at)]);
    if (campaign.started_at) rows.push(["Started", dateTime(campaign.started_at)]);
    if (campaign.finished_at) rows.push(["Finished", dateTime(campaign.finished_at)]);
    el("campaign-facts").replaceChildren(
      ...rows.flatMap(([k, v]) => [node("dt", "", k), v instanceof Node ? v : node("dd", "", v)]),
    );
    renderProgress(campaign.progress);
    renderCampaignActions(campaign);
  }

  function renderProgress(progress) {
    if (!progress) return;
    const finished = (progress.done || 0) + (progress.skipped || 0);
    const bar = el("campaign-progress");
    bar.max = Math.max(1, progress.targets || 0);
    bar.value = finished;
    const text = progress.targets
      ? `${finished} of ${plural(progress.targets, "target")} finished`
      : "No targets enrolled.";
    // Set only when it changes: the polite live region speaks each change, not each poll.
    if (el("campaign-progress-text").textContent !== text) {
      el("campaign-progress-text").textContent = text;
    }
    const counts = [["targets", "Targets"], ...TARGET_STATES].flatMap(([key, label]) => {
      const dd = node("dd", "", String(progress[key] || 0));
      dd.dataset.state = key;
      return [node("dt", "", label), dd];
    });
    el("campaign-counts").replaceChildren(...counts);
    const outcomes = Object.entries(progress.outcomes || {})
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([outcome, n]) => `${outcome} ${n}`);
    el("campaign-outcomes").textContent = outcomes.length
      ? `Outcomes: ${outcomes.join(" · ")}`
      : "No outcomes yet.";
  }

  function renderCampaignActions(campaign) {
    const allowed = campaign && hasRole(MANAGERS) ? CAMPAIGN_MOVES[campaign.status] || [] : [];
    for (const action of ["start", "pause", "resume", "cancel"]) {
      el(`campaign-${action}-button`).hidden = !allowed.includes(action);
    }
    if (!allowed.includes("cancel")) el("campaign-cancel-confirm").hidden = true;
    if (!el("campaign-cancel-confirm").hidden) el("campaign-cancel-button").hidden = true;
  }

  function campaignButtons() {
    return [
      ...document.querySelectorAll("#campaign-actions button, #campaign-cancel-confirm button"),
    ];
  }

  async function moveCampaign(action) {
    const id = state.campaignId;
    if (!id) return;
    showError("campaign-error", "");
    state.campaignRefreshFailed = false;
    const buttons = campaignButtons();
    for (const b of buttons) b.disabled = true;
    state.campaignRequests += 1;
    const request = state.campaignRequests;
    let moved = false;
    try {
      const campaign = await api("POST", `/api/campaigns/${encodeURIComponent(id)}/${action}`);
      el("campaign-cancel-confirm").hidden = true;
      applyCampaign(id, request, campaign);
      moved = true;
    } catch (err) {
      if (state.campaignId === id) showError("campaign-error", errorText(err));
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    if (state.campaignId !== id) return;
    if (moved) {
      // Where the pressed button was: the next action, or the campaign's heading.
      const next = campaignButtons().find((b) => !b.hidden && b.offsetParent !== null);
      (next || el("campaign-title")).focus();
    }
    await refreshCampaign({ always: true }); // its results (and its status after a 409)
  }

  function askCancelCampaign() {
    el("campaign-cancel-confirm").hidden = false;
    el("campaign-cancel-button").hidden = true;
    el("campaign-cancel-yes").focus();
  }

  function keepCampaign() {
    el("campaign-cancel-confirm").hidden = true;
    renderCampaignActions(state.campaign);
    el("campaign-cancel-button").focus();
  }

  function syncCampaignPoll() {
    const campaign = state.campaign;
    const running =
      state.me !== null &&
      state.view === "campaigns" &&
      campaign !== null &&
      campaign.id === state.campaignId &&
      campaign.status === "running";
    if (!running) {
      stopCampaignPoll();
    } else if (state.campaignPoll === null) {
      state.campaignPoll = setInterval(pollCampaign, CAMPAIGN_POLL_MS);
      stats.campaignPolling = true;
    }
  }

  function stopCampaignPoll() {
    if (state.campaignPoll === null) return;
    clearInterval(state.campaignPoll);
    state.campaignPoll = null;
    stats.campaignPolling = false;
  }

  function pollCampaign() {
    if (document.hidden) return; // a background tab waits; the next visible tick reads it
    refreshCampaign();
  }

  function renderResults(page) {
    const body = el("results-rows");
    const rows = page.targets.map((target) => {
      let tr = body.querySelector(`tr[data-number="${CSS.escape(target.number)}"]`);
      if (!tr) {
        tr = node("tr");
        tr.dataset.number = target.number;
        for (let i = 0; i < 7; i += 1) tr.append(node("td"));
        tr.cells[0].className = "number";
        tr.cells[4].className = "when";
        tr.cells[5].className = "when";
      }
      fillResult(tr, target);
      return tr;
    });
    // Kept rows keep their buttons (and the focus on one): only changed cells are written.
    rows.forEach((tr, i) => {
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    el("results-table").hidden = rows.length === 0;
    el("results-empty").hidden = rows.length > 0;
    el("results-more").hidden = !page.next_after;
  }

  function setCell(cell, text) {
    if (cell.textContent !== text) cell.textContent = text;
  }

  function fillResult(tr, target) {
    const cells = tr.cells;
    setCell(cells[0], target.number);
    setCell(cells[1], target.state.replace("_", " "));
    tr.dataset.state = target.state;
    setCell(cells[2], String(target.attempts));
    setCell(cells[3], target.outcome || "");
    const waiting = target.state === "pending" && target.attempts > 0;
    setCell(cells[4], waiting ? dateTime(target.next_at) : "");
    setCell(cells[5], dateTime(target.updated_at));
    const button = cells[6].querySelector("button");
    if (!target.call_id) {
      if (button) button.remove();
    } else if (!button || button.dataset.callId !== target.call_id) {
      const open = node("button", "secondary", "Open call");
      open.type = "button";
      open.dataset.callId = target.call_id;
      open.setAttribute("aria-label", `Open the call to ${target.number}`);
      open.addEventListener("click", () => openCallFromView(open.dataset.callId));
      cells[6].replaceChildren(open);
    }
  }

  // A call named in another view (a campaign's result, a survey's answer, a scored call),
  // opened in the calls view.
  function openCallFromView(callId) {
    showView("calls");
    openCall(callId);
    el("call-title").scrollIntoView({ block: "nearest" });
  }

  async function onCreateCampaign(event) {
    event.preventDefault();
    showError("new-campaign-error", "");
    el("new-campaign-outcome").textContent = "";
    const body = {
      name: el("campaign-name").value.trim(),
      flow: { say: el("campaign-say").value.trim() },
      from: el("campaign-from").value.trim(),
    };
    const concurrent = el("campaign-concurrent").value.trim();
    if (concurrent) body.max_concurrent = Number(concurrent);
    const hours = {};
    if (el("campaign-start").value) hours.start = el("campaign-start").value;
    if (el("campaign-end").value) hours.end = el("campaign-end").value;
    if (Object.keys(hours).length) body.window = hours;
    const tag = el("campaign-tag").value.trim();
    const submit = el("campaign-submit");
    submit.disabled = true;
    let created;
    try {
      created = await api("POST", "/api/campaigns", body);
    } catch (err) {
      showError("new-campaign-error", `Could not create the campaign: ${errorText(err)}`);
      submit.disabled = false;
      return;
    }
    let outcome = `Campaign “${created.name}” created as a draft.`;
    if (tag) {
      try {
        const path = `/api/campaigns/${encodeURIComponent(created.id)}/targets`;
        const enrolled = await api("POST", path, { tag });
        outcome += ` ${plural(enrolled.added, "target")} with tag “${tag}” enrolled.`;
      } catch (err) {
        const why = errorText(err);
        const message = `The campaign was made, but its targets with tag “${tag}” were not: ${why}`;
        showError("new-campaign-error", message);
      }
    }
    submit.disabled = false;
    el("new-campaign-form").reset();
    el("new-campaign-outcome").textContent = outcome;
    await loadCampaigns();
    await selectCampaign(created.id);
  }

  // ---- Bookings (callbacks) ----------------------------------------------------------------
  // A booking is a call placed at the time the callee asked for, read in their time zone: the
  // page shows that time as the server gives it (`local_at`, with the zone's offset), and a
  // time written in the form (<input type="datetime-local">) is sent as it is, for the server
  // to read in the callee's zone.

  function openBookings() {
    loadBookings();
  }

  // Signed out: the view forgets what it showed.
  function clearBookings() {
    state.bookings.clear();
    state.bookingItems.clear();
    state.bookingLoads += 1; // answers still in flight are dropped
    el("bookings-view").hidden = true;
    el("bookings-list").replaceChildren();
    for (const id of ["bookings-count", "bookings-outcome", "new-booking-outcome"]) {
      el(id).textContent = "";
    }
    showError("bookings-error", "");
    showError("new-booking-error", "");
    el("new-booking-form").reset();
    markInvalidBookingFields([]);
    onBookingFlow();
    el("bookings-empty").hidden = true;
    el("bookings-more").hidden = true;
  }

  // The IANA zones this browser knows, offered as the time zone field's suggestions.
  function fillTimeZones() {
    const list = el("booking-zones");
    if (list.children.length > 0 || typeof Intl.supportedValuesOf !== "function") return;
    let zones = [];
    try {
      zones = Intl.supportedValuesOf("timeZone");
    } catch (err) {
      return; // suggestions are a courtesy
    }
    list.append(
      ...zones.map((zone) => {
        const option = node("option");
        option.value = zone;
        return option;
      }),
    );
  }

  async function loadBookings() {
    state.bookingLoads += 1;
    const load = state.bookingLoads;
    const since = new Date(Date.now() - BOOKINGS_SINCE_MS).toISOString();
    const query = new URLSearchParams({ from: since, limit: String(BOOKINGS_PAGE) });
    const button = el("bookings-refresh");
    button.disabled = true;
    let page;
    try {
      page = await api("GET", `/api/bookings?${query}`);
    } catch (err) {
      if (load === state.bookingLoads && err.status !== 401) {
        showError("bookings-error", `Could not load the bookings: ${errorText(err)}`);
      }
      return;
    } finally {
      if (load === state.bookingLoads) button.disabled = false;
    }
    if (load !== state.bookingLoads || !state.me) return; // a newer load, or signed out
    showError("bookings-error", "");
    renderBookings(page.bookings);
  }

  function renderBookings(bookings) {
    const list = el("bookings-list");
    const active = document.activeElement;
    const items = new Map();
    for (const booking of bookings) {
      const li = state.bookingItems.get(booking.id) || bookingItem(booking.id);
      state.bookings.set(booking.id, booking);
      fillBooking(li, booking);
      items.set(booking.id, li);
    }
    // Kept items keep their open forms, what is written in them and their errors.
    [...items.values()].forEach((li, i) => {
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    while (list.children.length > items.size) list.lastElementChild.remove();
    for (const id of state.bookings.keys()) if (!items.has(id)) state.bookings.delete(id);
    state.bookingItems = items;
    // A row moved (rescheduled, it took its new place): the focus it held goes back to it.
    if (active && active !== document.activeElement && list.contains(active)) active.focus();
    el("bookings-count").textContent = items.size ? `(${items.size})` : "";
    el("bookings-empty").hidden = items.size > 0;
    el("bookings-more").hidden = items.size < BOOKINGS_PAGE;
  }

  // When the call is due, where the callee is: the date and time `local_at` names (the
  // server's reading of the callee's zone), not shifted by the browser's zone.
  function bookingWhen(booking) {
    const local = typeof booking.local_at === "string" ? booking.local_at : "";
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
    if (!m) return dateTime(booking.at);
    const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    const date = day.toLocaleDateString(undefined, {
      weekday: "short",
      year: "numeric",
      month: "short",
      day: "numeric",
      timeZone: "UTC",
    });
    return `${date}, ${m[4]}:${m[5]} ${booking.time_zone}`;
  }

  // The same instant on this browser's clock, when its zone is another.
  function yourTime(booking) {
    let here = "";
    try {
      here = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (err) {
      here = "";
    }
    if (!here || here === booking.time_zone) return "";
    const d = new Date(booking.at);
    if (Number.isNaN(d.getTime())) return "";
    return `your time ${d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}`;
  }

  function bookingFlowText(flow) {
    if (!flow) return "";
    if (flow.connect) return `connect to ${flow.connect}`;
    if (flow.say) return `say “${flow.say}”`;
    return "";
  }

  // A datetime-local input's value ("2026-12-08T15:30") for the booking's local time.
  function localInputValue(booking) {
    const local = typeof booking.local_at === "string" ? booking.local_at : "";
    return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(local) ? local.slice(0, 16) : "";
  }

  function bookingItem(id) {
    const li = node("li", "booking");
    li.dataset.bookingId = id;
    const info = node("div", "booking-info");

    const actions = node("div", "actions booking-actions");
    const open = node("button", "secondary open-booking-call", "Open call");
    open.type = "button";
    open.addEventListener("click", () => {
      if (open.dataset.callId) openCallFromView(open.dataset.callId);
    });
    const move = node("button", "secondary reschedule", "Reschedule…");
    move.type = "button";
    const cancel = node("button", "secondary danger cancel-booking", "Cancel…");
    cancel.type = "button";
    actions.append(open, move, cancel);

    const form = node("form", "inline-form reschedule-form");
    form.noValidate = true;
    form.hidden = true;
    const row = node("p");
    const input = node("input", "reschedule-at");
    input.type = "datetime-local";
    input.id = `reschedule-at-${id}`;
    const label = node("label", "reschedule-label");
    label.htmlFor = input.id;
    row.append(label, input);
    const buttons = node("p", "form-buttons");
    const save = node("button", "", "Save");
    save.type = "submit";
    const keepTime = node("button", "secondary keep-time", "Keep the time");
    keepTime.type = "button";
    buttons.append(save, keepTime);
    form.append(row, buttons);

    const confirm = node("div", "confirm cancel-confirm");
    confirm.hidden = true;
    const question = node("p", "cancel-question");
    question.id = `cancel-question-${id}`;
    const confirmButtons = node("div", "actions");
    const yes = node("button", "danger", "Cancel booking");
    yes.type = "button";
    yes.setAttribute("aria-describedby", question.id);
    const no = node("button", "secondary", "Keep it");
    no.type = "button";
    confirmButtons.append(yes, no);
    confirm.append(question, confirmButtons);

    const error = node("p", "error booking-error");
    error.setAttribute("role", "alert");
    error.hidden = true;

    move.addEventListener("click", () => {
      const booking = state.bookings.get(id);
      if (!booking) return;
      input.value = localInputValue(booking);
      form.hidden = false;
      move.hidden = true;
      input.focus();
    });
    keepTime.addEventListener("click", () => {
      form.hidden = true;
      refillBooking(id);
      move.focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      rescheduleBooking(id);
    });
    cancel.addEventListener("click", () => {
      confirm.hidden = false;
      cancel.hidden = true;
      yes.focus();
    });
    no.addEventListener("click", () => {
      confirm.hidden = true;
      refillBooking(id);
      cancel.focus();
    });
    yes.addEventListener("click", () => cancelBooking(id));

    li.append(info, actions, form, confirm, error);
    return li;
  }

  function refillBooking(id) {
    const li = state.bookingItems.get(id);
    const booking = state.bookings.get(id);
    if (li && booking) fillBooking(li, booking);
  }

  function fillBooking(li, booking) {
    // What a row's error said is about what it was: a booking that moved on clears it.
    const changed = li.dataset.state !== booking.state || li.dataset.status !== booking.status;
    if (changed && li.dataset.state !== undefined) bookingRowError(li, "");
    li.dataset.state = booking.state;
    li.dataset.status = booking.status;
    const when = bookingWhen(booking);
    const head = node("p", "call-line");
    head.append(node("strong", "number", booking.number), node("span", "booking-when", when));
    const mine = yourTime(booking);
    if (mine) head.append(node("span", "booking-your-time", `(${mine})`));
    const progress = node("p", "call-line");
    // A cancelled booking says so once (its target is skipped, its outcome "cancelled"), unless
    // its call was under way.
    const cancelled = booking.status === "cancelled";
    if (cancelled) {
      progress.append(node("span", "badge status campaign-status status-cancelled", "cancelled"));
    }
    if (!cancelled || booking.state !== "skipped") {
      const stateClass = `badge status booking-state state-${booking.state}`;
      progress.append(node("span", stateClass, booking.state.replace("_", " ")));
    }
    if (booking.outcome && !(cancelled && booking.outcome === "cancelled")) {
      progress.append(node("span", "booking-outcome", booking.outcome));
    }
    const tries = `${booking.attempts} of ${plural(booking.max_attempts, "attempt")}`;
    progress.append(node("span", "booking-attempts", tries));
    const does = node("p", "booking-does");
    does.append(node("span", "booking-flow-text", bookingFlowText(booking.flow)));
    if (booking.from) does.append(node("span", "booking-from", ` · from ${booking.from}`));
    const parts = [head, progress, does];
    if (booking.remind_email) {
      const before = booking.remind_before_min;
      const text = `reminder to ${booking.remind_email}${before ? `, ${before} min before` : ""}`;
      parts.push(node("p", "booking-reminder", text));
    }
    li.querySelector(".booking-info").replaceChildren(...parts);

    const manage = hasRole(BOOKING_MANAGERS);
    const waiting = booking.status === "running" && booking.state === "pending";
    const open = li.querySelector(".open-booking-call");
    open.hidden = !booking.call_id;
    open.dataset.callId = booking.call_id || "";
    open.setAttribute("aria-label", `Open the call to ${booking.number}`);
    const form = li.querySelector(".reschedule-form");
    if (!manage || !waiting) form.hidden = true;
    const move = li.querySelector(".reschedule");
    move.hidden = !manage || !waiting || !form.hidden;
    move.setAttribute("aria-label", `Reschedule the callback to ${booking.number}`);
    li.querySelector(".reschedule-label").textContent =
      `New time for ${booking.number} (${booking.time_zone})`;
    const confirm = li.querySelector(".cancel-confirm");
    if (!manage || booking.status !== "running") confirm.hidden = true;
    const cancel = li.querySelector(".cancel-booking");
    cancel.hidden = !manage || booking.status !== "running" || !confirm.hidden;
    cancel.setAttribute("aria-label", `Cancel the callback to ${booking.number}`);
    li.querySelector(".cancel-question").textContent =
      `Cancel the callback to ${booking.number} on ${when}? ` +
      "A call in progress ends as it would. This cannot be undone.";
    li.querySelector(".booking-actions").hidden = open.hidden && move.hidden && cancel.hidden;
  }

  function bookingRowError(li, message) {
    const p = li.querySelector(".booking-error");
    p.textContent = message || "";
    p.hidden = !message;
  }

  // An API error in words, always naming the fields it names (the server's words for a field
  // often are its whole message: "at: the time has passed").
  function fieldsText(err) {
    const fields = bookingErrorFields(err);
    if (!fields.length) return err.message;
    const parts = fields.map((f) => (f.field ? `${f.field}: ${f.message}` : f.message));
    const same = fields.every((f) => f.message === err.message);
    return same ? parts.join("; ") : `${err.message} (${parts.join("; ")})`;
  }

  function bookingErrorFields(err) {
    const fields = err.details && Array.isArray(err.details.fields) ? err.details.fields : [];
    return fields.filter((f) => f && typeof f.message === "string" && f.message);
  }

  async function rescheduleBooking(id) {
    const li = state.bookingItems.get(id);
    if (!li) return;
    const input = li.querySelector(".reschedule-at");
    bookingRowError(li, "");
    el("bookings-outcome").textContent = "";
    if (!input.value) {
      bookingRowError(li, "Choose the new date and time.");
      input.focus();
      return;
    }
    const buttons = [...li.querySelectorAll(".reschedule-form button")];
    for (const b of buttons) b.disabled = true;
    let moved;
    try {
      moved = await api("PATCH", `/api/bookings/${encodeURIComponent(id)}`, { at: input.value });
    } catch (err) {
      if (err.status === 409 || err.status === 404) await loadBookings(); // what it is now
      bookingRowError(li, `Could not reschedule the callback: ${fieldsText(err)}`);
      input.setAttribute("aria-invalid", String(err.status === 422));
      return;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    input.removeAttribute("aria-invalid");
    li.querySelector(".reschedule-form").hidden = true;
    state.bookings.set(id, moved);
    fillBooking(li, moved);
    li.querySelector(".reschedule").focus();
    el("bookings-outcome").textContent =
      `The callback to ${moved.number} is moved to ${bookingWhen(moved)}.`;
    await loadBookings(); // its place among the others
  }

  async function cancelBooking(id) {
    const li = state.bookingItems.get(id);
    if (!li) return;
    bookingRowError(li, "");
    el("bookings-outcome").textContent = "";
    const buttons = [...li.querySelectorAll(".cancel-confirm button")];
    for (const b of buttons) b.disabled = true;
    let cancelled;
    try {
      cancelled = await api("POST", `/api/bookings/${encodeURIComponent(id)}/cancel`);
    } catch (err) {
      if (err.status === 409 || err.status === 404) await loadBookings(); // what it is now
      bookingRowError(li, `Could not cancel the callback: ${fieldsText(err)}`);
      return;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    li.querySelector(".cancel-confirm").hidden = true;
    state.bookings.set(id, cancelled);
    fillBooking(li, cancelled);
    el("bookings-title").focus(); // its buttons are gone
    el("bookings-outcome").textContent =
      `The callback to ${cancelled.number} on ${bookingWhen(cancelled)} is cancelled.`;
    await loadBookings();
  }

  function onBookingFlow() {
    const say = el("booking-flow-say").checked;
    el("booking-say-row").hidden = !say;
    el("booking-connect-row").hidden = say;
  }

  // The form's inputs by the field the server names in an error.
  const BOOKING_INPUTS = {
    number: "booking-number",
    at: "booking-at",
    time_zone: "booking-zone",
    connect: "booking-connect",
    say: "booking-say",
    from: "booking-from",
    max_attempts: "booking-attempts",
    remind_email: "booking-email",
    remind_before_min: "booking-remind-min",
  };

  // Marks the inputs of the fields named (and only those) invalid; focuses the first.
  function markInvalidBookingFields(names) {
    const named = new Set(names);
    let first = null;
    for (const [field, id] of Object.entries(BOOKING_INPUTS)) {
      const input = el(id);
      if (named.has(field) && input.offsetParent !== null) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-errormessage", "new-booking-error");
        first = first || input;
      } else {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-errormessage");
      }
    }
    if (first) first.focus();
  }

  // A number in a field the server wants in E.164: the usual separators dropped.
  function e164(value) {
    return value.replace(/[\s().-]/g, "");
  }

  async function onCreateBooking(event) {
    event.preventDefault();
    showError("new-booking-error", "");
    el("new-booking-outcome").textContent = "";
    markInvalidBookingFields([]);
    const body = {
      number: el("booking-number").value.trim(),
      at: el("booking-at").value,
      from: e164(el("booking-from").value),
    };
    if (el("booking-flow-say").checked) body.say = el("booking-say").value.trim();
    else body.connect = e164(el("booking-connect").value);
    const zone = el("booking-zone").value.trim();
    if (zone) body.time_zone = zone;
    const attempts = el("booking-attempts").value.trim();
    if (attempts) body.max_attempts = Number(attempts);
    const email = el("booking-email").value.trim();
    if (email) {
      body.remind_email = email;
      const before = el("booking-remind-min").value.trim();
      if (before) body.remind_before_min = Number(before);
    }
    const submit = el("booking-submit");
    submit.disabled = true;
    let created;
    try {
      created = await api("POST", "/api/bookings", body);
    } catch (err) {
      showError("new-booking-error", `Could not book the callback: ${fieldsText(err)}`);
      markInvalidBookingFields(bookingErrorFields(err).map((f) => f.field));
      return;
    } finally {
      submit.disabled = false;
    }
    el("new-booking-form").reset();
    onBookingFlow();
    el("new-booking-outcome").textContent =
      `Callback to ${created.number} booked for ${bookingWhen(created)}.`;
    await loadBookings();
  }

  // ---- Surveys ---------------------------------------------------------------------------

  function openSurveys() {
    loadSurveys();
    if (state.surveyId) refreshSurvey();
  }

  // Signed out: the view forgets what it showed.
  function clearSurveys() {
    state.surveys.clear();
    state.surveyItems.clear();
    state.surveyId = null;
    state.surveyRequests += 1; // answers still in flight are dropped
    state.newQuestions = [];
    el("surveys-view").hidden = true;
    for (const id of ["surveys-list", "survey-facts", "survey-questions", "new-questions"]) {
      el(id).replaceChildren();
    }
    for (const id of ["new-survey-outcome", "survey-attach-outcome", "survey-calls"]) {
      el(id).textContent = "";
    }
    for (const id of ["surveys-error", "new-survey-error", "survey-error", "survey-attach-error"]) {
      showError(id, "");
    }
    el("new-survey-form").reset();
    el("survey-attach-form").reset();
    el("question-choices-row").hidden = true;
    el("questions-empty").hidden = false;
    el("survey-detail").hidden = true;
    el("survey-none").hidden = false;
    el("survey-title").textContent = "Survey";
  }

  async function loadSurveys() {
    let list;
    try {
      list = await api("GET", "/api/surveys");
    } catch (err) {
      if (err.status !== 401) {
        showError("surveys-error", `Could not load the surveys: ${errorText(err)}`);
      }
      return;
    }
    if (!state.me) return; // signed out meanwhile
    showError("surveys-error", "");
    state.surveys = new Map(list.surveys.map((survey) => [survey.id, survey]));
    state.surveyItems.clear();
    const items = list.surveys.map((survey) => {
      const badge = plural(survey.questions.length, "question");
      const li = pickItem("survey", survey.name, badge, survey.created_at, () => {
        selectSurvey(survey.id);
        el("survey-title").scrollIntoView({ block: "nearest" }); // below the list on a phone
      });
      li.dataset.surveyId = survey.id;
      state.surveyItems.set(survey.id, li);
      return li;
    });
    el("surveys-list").replaceChildren(...items);
    el("surveys-empty").hidden = items.length > 0;
    markPicked(state.surveyItems, state.surveyId);
  }

  // A survey or a script in its view's list: a button that shows it.
  function pickItem(className, name, badge, createdAt, onPick) {
    const li = node("li", `pick ${className}`);
    const button = node("button", "call-button pick-button");
    button.type = "button";
    button.addEventListener("click", onPick);
    const line1 = node("span", "call-line");
    line1.append(node("span", "parties", name), node("span", "badge status", badge));
    const line2 = node("span", "call-line");
    line2.append(node("span", "started", `made ${dateTime(createdAt)}`));
    button.append(line1, line2);
    li.append(button);
    return li;
  }

  function markPicked(items, chosenId) {
    for (const [id, li] of items) {
      const chosen = id === chosenId;
      li.classList.toggle("selected", chosen);
      li.querySelector("button").setAttribute("aria-pressed", String(chosen));
    }
  }

  function selectSurvey(id) {
    if (state.surveyId !== id) {
      state.surveyId = id;
      el("survey-facts").replaceChildren();
      el("survey-questions").replaceChildren();
      el("survey-calls").textContent = "";
      el("survey-attach-outcome").textContent = "";
      showError("survey-error", "");
      showError("survey-attach-error", "");
      el("survey-attach-form").reset();
    }
    el("survey-none").hidden = true;
    el("survey-detail").hidden = false;
    markPicked(state.surveyItems, id);
    renderSurveyFacts(state.surveys.get(id));
    return refreshSurvey();
  }

  function renderSurveyFacts(survey) {
    if (!survey) return;
    el("survey-title").textContent = `Survey “${survey.name}”`;
    const rows = [
      ["Questions", String(survey.questions.length)],
      ["Closing words", survey.closing || ""],
      ["Made", dateTime(survey.created_at)],
    ];
    el("survey-facts").replaceChildren(
      ...rows.flatMap(([k, v]) => [node("dt", "", k), node("dd", "", v)]),
    );
  }

  // The shown survey and its results, read again (a newer read wins).
  async function refreshSurvey() {
    const id = state.surveyId;
    if (!id) return;
    state.surveyRequests += 1;
    const request = state.surveyRequests;
    const path = `/api/surveys/${encodeURIComponent(id)}`;
    const button = el("survey-refresh");
    button.disabled = true;
    try {
      const known = state.surveys.get(id);
      const [survey, results] = await Promise.all([
        known ? Promise.resolve(known) : api("GET", path),
        api("GET", `${path}/results`),
      ]);
      if (request !== state.surveyRequests) return;
      state.surveys.set(id, survey);
      renderSurveyFacts(survey);
      renderSurveyResults(survey, results);
      showError("survey-error", "");
    } catch (err) {
      if (request === state.surveyRequests && err.status !== 401) {
        showError("survey-error", `Could not read the survey: ${errorText(err)}`);
      }
    } finally {
      if (request === state.surveyRequests) button.disabled = false;
    }
  }

  function renderSurveyResults(survey, results) {
    const text = results.calls
      ? `${plural(results.calls, "call")} answered`
      : "No calls have answered yet.";
    if (el("survey-calls").textContent !== text) el("survey-calls").textContent = text;
    el("survey-questions").replaceChildren(
      ...results.questions.map((q) => questionResult(survey.questions[q.question] || {}, q)),
    );
  }

  function questionResult(asked, q) {
    const li = node("li", `survey-question kind-${q.kind}`);
    li.dataset.question = String(q.question);
    const head = node("p", "question-head");
    head.append(
      node("strong", "prompt", q.prompt),
      node("span", "badge status", QUESTION_KINDS[q.kind] || q.kind),
    );
    const counts = node("p", "question-counts");
    counts.append(
      node("span", "answered", `${q.answered} answered`),
      node("span", "unreadable", `${q.unreadable} unreadable`),
    );
    li.append(head, counts);
    if (q.kind === "speech") {
      li.append(spokenAnswers(q));
      return li;
    }
    const bars = node("ul", "bars");
    bars.setAttribute("aria-label", `Answers to question ${q.question + 1}`);
    bars.append(...valueRows(asked, q).map((row) => barItem(row, q.answered)));
    li.append(bars);
    if (q.kind === "rating") li.append(node("p", "mean", ratingMean(q.values)));
    return li;
  }

  // The answers a question can have, in their order, with their counts (values the question
  // no longer names come last).
  function valueRows(asked, q) {
    const values = q.values || {};
    let rows = [];
    if (q.kind === "yes_no") {
      rows = [
        { value: "yes", key: "", label: "Yes" },
        { value: "no", key: "", label: "No" },
      ];
    } else if (q.kind === "rating") {
      rows = ["1", "2", "3", "4", "5"].map((k) => ({ value: k, key: k, label: "" }));
    } else if (q.kind === "choice") {
      const choices = asked.choices || {};
      rows = Object.keys(choices)
        .sort((a, b) => Number(a) - Number(b))
        .map((k) => ({ value: k, key: k, label: choices[k] }));
    }
    const named = new Set(rows.map((r) => r.value));
    for (const value of Object.keys(values).sort()) {
      if (!named.has(value)) rows.push({ value, key: value, label: "" });
    }
    return rows.map((r) => ({ ...r, n: values[r.value] || 0 }));
  }

  function barItem(row, answered) {
    const li = node("li", "bar");
    li.dataset.value = row.value;
    const name = node("span", "bar-name");
    if (row.key) name.append(node("span", "bar-key", row.key));
    if (row.label) name.append(node("span", "bar-label", row.label));
    const meter = node("meter", "bar-meter");
    meter.min = 0;
    meter.max = Math.max(1, answered);
    meter.value = row.n;
    meter.setAttribute("aria-hidden", "true"); // the count beside it says it
    li.append(name, meter, node("span", "bar-count", String(row.n)));
    return li;
  }

  function ratingMean(values) {
    let sum = 0;
    let n = 0;
    for (const [key, count] of Object.entries(values || {})) {
      const rating = Number(key);
      if (rating >= 1 && rating <= 5) {
        sum += rating * count;
        n += count;
      }
    }
    return n ? `mean ${(sum / n).toFixed(1)} of 5` : "No ratings yet.";
  }

  // An open question: the spoken answers counted, and on demand the words of the newest.
  function spokenAnswers(q) {
    const wrap = node("div", "spoken");
    const line = node("p", "call-line");
    const spoken = (q.values || {}).spoken || 0;
    const button = node("button", "secondary", "Show answers");
    button.type = "button";
    button.setAttribute("aria-label", `Show answers to question ${q.question + 1}`);
    line.append(node("span", "bar-count", plural(spoken, "spoken answer")), button);
    const list = node("ul", "spoken-answers");
    list.setAttribute("aria-label", `Spoken answers to question ${q.question + 1}`);
    const note = node("p", "empty");
    note.hidden = true;
    const error = node("p", "error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    button.addEventListener("click", () => showSpoken(q.question, { button, list, note, error }));
    wrap.append(line, error, note, list);
    return wrap;
  }

  async function showSpoken(question, parts) {
    const id = state.surveyId;
    const { button, list, note, error } = parts;
    button.disabled = true;
    error.hidden = true;
    let found;
    try {
      const path = `/api/surveys/${encodeURIComponent(id)}/answers?limit=${SURVEY_ANSWERS}`;
      found = await api("GET", path);
    } catch (err) {
      error.textContent = `Could not read the answers: ${errorText(err)}`;
      error.hidden = false;
      return;
    } finally {
      button.disabled = false;
    }
    if (state.surveyId !== id) return;
    const answers = found.answers.filter((a) => a.question === question && a.value !== null);
    list.replaceChildren(...answers.map((a, i) => spokenItem(a, question, i + 1)));
    note.textContent = answers.length
      ? ""
      : `No spoken answers to this question among the ${SURVEY_ANSWERS} newest answers.`;
    note.hidden = answers.length > 0;
  }

  function spokenItem(answer, question, n) {
    const li = node("li", "spoken-answer");
    li.dataset.callId = answer.call_id;
    const words =
      answer.speech === undefined
        ? node("span", "hidden-text", "(words hidden for your role)")
        : node("blockquote", "evidence", `“${answer.speech || ""}”`);
    const meta = node("p", "call-line");
    meta.append(node("span", "started", dateTime(answer.answered_at)));
    const open = node("button", "secondary", "Open call");
    open.type = "button";
    open.setAttribute("aria-label", `Open the call of answer ${n} to question ${question + 1}`);
    open.addEventListener("click", () => openCallFromView(answer.call_id));
    meta.append(open);
    li.append(words, meta);
    return li;
  }

  function onQuestionKind() {
    el("question-choices-row").hidden = el("question-kind").value !== "choice";
  }

  function onAddQuestion() {
    showError("new-survey-error", "");
    el("new-survey-outcome").textContent = "";
    const kind = el("question-kind").value;
    const prompt = el("question-prompt").value.trim();
    if (!prompt) {
      showError("new-survey-error", "Write what the caller hears, then add the question.");
      el("question-prompt").focus();
      return;
    }
    const question = { kind, prompt };
    if (kind === "choice") {
      const labels = el("question-choices")
        .value.split(";")
        .map((label) => label.trim())
        .filter(Boolean);
      if (labels.length === 0 || labels.length > MAX_CHOICES) {
        showError("new-survey-error", "A keypad choice has 1 to 9 choices, separated by ;.");
        el("question-choices").focus();
        return;
      }
      question.choices = Object.fromEntries(labels.map((label, i) => [String(i + 1), label]));
    }
    state.newQuestions.push(question);
    el("question-prompt").value = "";
    el("question-choices").value = "";
    renderNewQuestions();
    el("question-prompt").focus();
  }

  function renderNewQuestions() {
    const items = state.newQuestions.map((q, i) => {
      const li = node("li", "new-question");
      const text = node("span", "new-question-text");
      text.append(node("span", "badge status", QUESTION_KINDS[q.kind] || q.kind), ` ${q.prompt}`);
      if (q.choices) {
        const keys = Object.entries(q.choices).map(([k, label]) => `${k} ${label}`);
        text.append(node("span", "hint", keys.join(" · ")));
      }
      const remove = node("button", "secondary", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove question ${i + 1}`);
      remove.addEventListener("click", () => {
        state.newQuestions.splice(i, 1);
        renderNewQuestions();
        el("question-prompt").focus();
      });
      li.append(text, remove);
      return li;
    });
    el("new-questions").replaceChildren(...items);
    el("questions-empty").hidden = items.length > 0;
  }

  async function onCreateSurvey(event) {
    event.preventDefault();
    showError("new-survey-error", "");
    el("new-survey-outcome").textContent = "";
    const body = { name: el("survey-title-input").value.trim(), questions: state.newQuestions };
    const closing = el("survey-closing").value.trim();
    if (closing) body.closing = closing;
    const submit = el("survey-submit");
    submit.disabled = true;
    let created;
    try {
      created = await api("POST", "/api/surveys", body);
    } catch (err) {
      const why =
        err.code === "PLAN_REQUIRED"
          ? `${err.message} (surveys come with the Insights and Enterprise plans)`
          : errorText(err);
      showError("new-survey-error", `Could not create the survey: ${why}`);
      return;
    } finally {
      submit.disabled = false;
    }
    el("new-survey-form").reset();
    state.newQuestions = [];
    renderNewQuestions();
    onQuestionKind();
    el("new-survey-outcome").textContent = `Survey “${created.name}” created.`;
    await loadSurveys();
    await selectSurvey(created.id);
  }

  async function onAttachSurvey(event) {
    event.preventDefault();
    const id = state.surveyId;
    if (!id) return;
    showError("survey-attach-error", "");
    el("survey-attach-outcome").textContent = "";
    const number = el("survey-number").value.replace(/[\s().-]/g, "");
    if (!number) {
      showError("survey-attach-error", "Write one of your numbers, in E.164 (+1…).");
      el("survey-number").focus();
      return;
    }
    const submit = el("survey-attach-submit");
    submit.disabled = true;
    try {
      const path = `/api/surveys/${encodeURIComponent(id)}/numbers/${encodeURIComponent(number)}`;
      await api("PUT", path);
      if (state.surveyId !== id) return;
      el("survey-attach-form").reset();
      el("survey-attach-outcome").textContent = `Inbound calls to ${number} now take this survey.`;
    } catch (err) {
      if (state.surveyId === id) {
        const why = errorText(err);
        showError("survey-attach-error", `Could not ask the survey on ${number}: ${why}`);
      }
    } finally {
      submit.disabled = false;
    }
  }

  // ---- Secret shopper ----------------------------------------------------------------------

  function openShopper() {
    loadScripts();
    if (state.scriptId) refreshScript();
  }

  // Signed out: the view forgets what it showed.
  function clearShopper() {
    state.scripts.clear();
    state.scriptItems.clear();
    state.scriptId = null;
    state.scriptRequests += 1; // answers still in flight are dropped
    el("shopper-view").hidden = true;
    for (const id of ["scripts-list", "script-moment-list", "scores-rows", "trend"]) {
      el(id).replaceChildren();
    }
    for (const id of ["new-script-outcome", "score-outcome"]) el(id).textContent = "";
    for (const id of ["scripts-error", "new-script-error", "script-error", "score-error"]) {
      showError(id, "");
    }
    el("new-script-form").reset();
    el("score-form").reset();
    el("script-detail").hidden = true;
    el("script-none").hidden = false;
    el("script-title").textContent = "Script";
  }

  async function loadScripts() {
    let list;
    try {
      list = await api("GET", "/api/shopper-scripts");
    } catch (err) {
      if (err.status !== 401) {
        showError("scripts-error", `Could not load the scripts: ${errorText(err)}`);
      }
      return;
    }
    if (!state.me) return; // signed out meanwhile
    showError("scripts-error", "");
    state.scripts = new Map(list.scripts.map((script) => [script.id, script]));
    state.scriptItems.clear();
    const items = list.scripts.map((script) => {
      const badge = plural(script.moments.length, "moment");
      const li = pickItem("script", script.name, badge, script.created_at, () => {
        selectScript(script.id);
        el("script-title").scrollIntoView({ block: "nearest" });
      });
      li.dataset.scriptId = script.id;
      state.scriptItems.set(script.id, li);
      return li;
    });
    el("scripts-list").replaceChildren(...items);
    el("scripts-empty").hidden = items.length > 0;
    markPicked(state.scriptItems, state.scriptId);
  }

  function selectScript(id) {
    if (state.scriptId !== id) {
      state.scriptId = id;
      el("scores-rows").replaceChildren();
      el("trend").replaceChildren();
      el("score-outcome").textContent = "";
      showError("script-error", "");
      showError("score-error", "");
      el("score-form").reset();
    }
    el("script-none").hidden = true;
    el("script-detail").hidden = false;
    markPicked(state.scriptItems, id);
    renderScript(state.scripts.get(id));
    return refreshScript();
  }

  function renderScript(script) {
    if (!script) return;
    el("script-title").textContent = `Script “${script.name}”`;
    el("script-moment-list").replaceChildren(
      ...script.moments.map((m) => {
        const li = node("li", `moment kind-${m.kind}`);
        const head = node("p", "call-line");
        head.append(
          node("strong", "", m.name),
          node("span", `badge status moment-${m.kind}`, m.kind),
        );
        if (m.speaker && m.speaker !== "agent") {
          head.append(node("span", "who", `said by ${m.speaker}`));
        }
        if (m.weight !== undefined && m.weight !== 1) {
          head.append(node("span", "who", `weight ${m.weight}`));
        }
        const phrases = (m.phrases || []).map((p) => `“${p}”`).join(" · ");
        li.append(head, node("p", "hint", phrases));
        return li;
      }),
    );
  }

  // The shown script's scores and trend, read again (a newer read wins).
  async function refreshScript() {
    const id = state.scriptId;
    if (!id) return;
    state.scriptRequests += 1;
    const request = state.scriptRequests;
    const path = `/api/shopper-scripts/${encodeURIComponent(id)}`;
    try {
      const known = state.scripts.get(id);
      const [script, scores, trend] = await Promise.all([
        known ? Promise.resolve(known) : api("GET", path),
        api("GET", `${path}/scores`),
        api("GET", `${path}/trend`),
      ]);
      if (request !== state.scriptRequests) return;
      state.scripts.set(id, script);
      renderScript(script);
      renderScores(scores.scores);
      renderTrend(trend.trend);
      showError("script-error", "");
    } catch (err) {
      if (request === state.scriptRequests && err.status !== 401) {
        showError("script-error", `Could not read the scores: ${errorText(err)}`);
      }
    }
  }

  function scoreText(score) {
    if (typeof score !== "number") return "";
    return Number.isInteger(score) ? String(score) : score.toFixed(1);
  }

  // What a moment's result means: an expected moment met or not, a forbidden one avoided or
  // said (a fault).
  function momentOutcome(m) {
    if (m.kind === "forbidden") return m.found ? ["fault", "fault: said"] : ["avoided", "avoided"];
    return m.found ? ["met", "met"] : ["missed", "not met"];
  }

  function renderScores(scores) {
    el("scores-rows").replaceChildren(...scores.map(scoreRow));
    el("scores-table").hidden = scores.length === 0;
    el("scores-empty").hidden = scores.length > 0;
  }

  function scoreRow(scored) {
    const tr = node("tr");
    tr.dataset.callId = scored.call_id;
    const moments = scored.moments || [];
    const right = moments.filter((m) => m.found === (m.kind === "expected")).length;
    const faults = moments.filter((m) => m.kind === "forbidden" && m.found).length;
    const details = node("details", "moments");
    let summary = `${right} of ${plural(moments.length, "moment")} right`;
    if (faults) summary += `, ${plural(faults, "fault")}`;
    details.append(node("summary", "", summary));
    const list = node("ul", "moment-results");
    list.append(
      ...moments.map((m) => {
        const [kind, label] = momentOutcome(m);
        const li = node("li", `moment-result outcome-${kind}`);
        li.dataset.moment = m.name;
        const head = node("span", "call-line");
        head.append(node("strong", "", m.name), node("span", "badge status", label));
        if (typeof m.at_ms === "number") head.append(node("span", "when", `at ${clock(m.at_ms)}`));
        li.append(head);
        if (m.evidence) li.append(node("blockquote", "evidence", `“${m.evidence}”`));
        return li;
      }),
    );
    details.append(list);
    const momentsCell = node("td");
    momentsCell.append(details);
    const open = node("button", "secondary", "Open call");
    open.type = "button";
    open.setAttribute(
      "aria-label",
      `Open the call to ${scored.agent_number} of ${dateTime(scored.call_started)}`,
    );
    open.addEventListener("click", () => openCallFromView(scored.call_id));
    const callCell = node("td");
    callCell.append(open);
    const score = node("td", "score", scoreText(scored.score));
    if (scored.score >= 80) score.classList.add("score-good");
    else if (scored.score < 50) score.classList.add("score-poor");
    tr.append(
      node("td", "number", scored.agent_number),
      node("td", "when", dateTime(scored.call_started)),
      score,
      momentsCell,
      callCell,
    );
    return tr;
  }

  // One small table per line tested: its weeks, oldest first.
  function renderTrend(rows) {
    const lines = new Map();
    for (const row of rows) {
      if (!lines.has(row.agent_number)) lines.set(row.agent_number, []);
      lines.get(row.agent_number).push(row);
    }
    const blocks = [...lines].map(([line, weeks]) => {
      const block = node("section", "trend-line");
      block.dataset.line = line;
      const title = node("h4", "number", line);
      title.id = `trend-${line.replace(/[^0-9A-Za-z]/g, "")}`;
      const table = node("table", "data-table");
      table.setAttribute("aria-labelledby", title.id);
      const head = node("tr");
      for (const name of ["Week", "Calls", "Mean score"]) {
        const th = node("th", "", name);
        th.scope = "col";
        head.append(th);
      }
      const thead = node("thead");
      thead.append(head);
      const body = node("tbody");
      body.append(
        ...weeks.map((w) => {
          const tr = node("tr");
          tr.append(
            node("td", "when", weekOf(w.week)),
            node("td", "number", String(w.calls)),
            node("td", "number", scoreText(w.mean_score)),
          );
          return tr;
        }),
      );
      table.append(thead, body);
      block.append(title, table);
      return block;
    });
    el("trend").replaceChildren(...blocks);
    el("trend-empty").hidden = blocks.length > 0;
  }

  // A week as Postgres truncates it (its Monday, UTC): the date, not shifted by the browser's
  // time zone.
  function weekOf(iso) {
    return typeof iso === "string" ? `week of ${iso.slice(0, 10)}` : "";
  }

  async function onScoreCall(event) {
    event.preventDefault();
    const id = state.scriptId;
    if (!id) return;
    showError("score-error", "");
    el("score-outcome").textContent = "";
    const callId = el("score-call").value.trim();
    if (!callId) {
      showError("score-error", "Write the id of the ended call to score.");
      el("score-call").focus();
      return;
    }
    const submit = el("score-submit");
    submit.disabled = true;
    let scored;
    try {
      const path = `/api/shopper-scripts/${encodeURIComponent(id)}/score`;
      scored = await api("POST", path, { call_id: callId });
    } catch (err) {
      if (state.scriptId === id) {
        showError("score-error", `Could not score the call: ${errorText(err)}`);
      }
      return;
    } finally {
      submit.disabled = false;
    }
    if (state.scriptId !== id) return;
    el("score-form").reset();
    el("score-outcome").textContent =
      `The call to ${scored.agent_number} scored ${scoreText(scored.score)} of 100.`;
    await refreshScript();
  }

  // Moments written one a line: "what it is | expected or forbidden | phrase; phrase" (the
  // kind may be left out: expected).
  function parseMoments(text) {
    const moments = [];
    const lines = text.split("\n").map((l) => l.trim());
    for (const [i, line] of lines.entries()) {
      if (!line) continue;
      const parts = line.split("|").map((p) => p.trim());
      if (parts.length < 2 || parts.length > 3) {
        return { problem: `line ${i + 1}: write what it is | expected or forbidden | phrases` };
      }
      const [name, kindText, phraseText] =
        parts.length === 3 ? parts : [parts[0], "expected", parts[1]];
      const kind = kindText.toLowerCase();
      if (kind !== "expected" && kind !== "forbidden") {
        const problem = `line ${i + 1}: a moment is expected or forbidden, not “${kindText}”`;
        return { problem };
      }
      const phrases = phraseText
        .split(";")
        .map((p) => p.trim())
        .filter(Boolean);
      if (!name || phrases.length === 0) {
        return { problem: `line ${i + 1}: a moment needs its name and a way of saying it` };
      }
      moments.push({ name, kind, phrases });
    }
    return moments.length ? { moments } : { problem: "Write at least one moment." };
  }

  async function onCreateScript(event) {
    event.preventDefault();
    showError("new-script-error", "");
    el("new-script-outcome").textContent = "";
    const { moments, problem } = parseMoments(el("script-moments").value);
    if (problem) {
      showError("new-script-error", `Could not create the script: ${problem}`);
      el("script-moments").focus();
      return;
    }
    const submit = el("script-submit");
    submit.disabled = true;
    let created;
    try {
      const body = { name: el("script-title-input").value.trim(), moments };
      created = await api("POST", "/api/shopper-scripts", body);
    } catch (err) {
      showError("new-script-error", `Could not create the script: ${errorText(err)}`);
      return;
    } finally {
      submit.disabled = false;
    }
    el("new-script-form").reset();
    el("new-script-outcome").textContent = `Script “${created.name}” created.`;
    await loadScripts();
    await selectScript(created.id);
  }

  // ---- Audio ---------------------------------------------------------------------------------
  // The org's audio clips (control/api/audio.py): files uploaded and words rendered by a voice,
  // kept as the 8 kHz mu-law WAV calls play. A clip's player reads /api/audio/{id}/content with
  // the session cookie (same origin, as the page's media-src asks); the signed play_url is for
  // SignalWire, not the page. And the voice the org's prompts are said in (/api/org/voice),
  // chosen by owners and admins among the engines the server has.

  function openAudio() {
    loadClips();
    loadOrgVoice();
  }

  // Signed out: the view forgets what it showed (its players stop as they leave the page).
  function clearAudio() {
    state.clips.clear();
    state.clipItems.clear();
    state.audioCursor = null;
    state.audioLoads += 1; // answers still in flight are dropped
    state.voiceLoads += 1;
    el("audio-view").hidden = true;
    el("audio-list").replaceChildren();
    el("audio-count").textContent = "";
    el("audio-more").hidden = true;
    el("audio-empty").hidden = true;
    el("org-voice-current").textContent = "";
    for (const id of ["audio-outcome", "upload-audio-outcome", "render-audio-outcome"]) {
      el(id).textContent = "";
    }
    el("org-voice-outcome").textContent = "";
    for (const id of ["audio-error", "upload-audio-error", "render-audio-error"]) {
      showError(id, "");
    }
    showError("org-voice-error", "");
    for (const id of ["upload-audio-form", "render-audio-form", "org-voice-form"]) {
      el(id).reset();
    }
    el("audio-file").removeAttribute("aria-invalid");
    el("org-voice-engine").replaceChildren();
    const own = node("option", "", "The organization's voice");
    own.value = "";
    el("render-engine").replaceChildren(own);
    el("render-none").hidden = true;
    el("render-submit").disabled = false;
  }

  // Leaving the view: what plays stops (the player keeps its place).
  function pauseClips() {
    for (const player of el("audio-list").querySelectorAll("audio")) player.pause();
  }

  function engineName(engine) {
    return ENGINE_NAMES[engine] || engine;
  }

  // A clip's length: tenths of a second for a prompt, minutes and seconds past a minute.
  function clipLength(ms) {
    const n = Math.max(0, ms || 0);
    if (n >= 60000) return clock(n);
    const tenths = Math.round(n / 100);
    return `${Math.floor(tenths / 10)}.${tenths % 10} s`;
  }

  function clipSource(clip) {
    if (clip.source === "upload") {
      return `${(clip.uploaded_type || "audio").toUpperCase()} file`;
    }
    const engine = engineName(clip.engine);
    return clip.voice ? `${engine} voice ${clip.voice}` : `${engine} voice`;
  }

  // The first page (replacing the list), or with `more` the page after the last one shown.
  async function loadClips({ more = false } = {}) {
    state.audioLoads += 1;
    const load = state.audioLoads;
    const button = el("audio-more");
    button.disabled = true;
    let page;
    try {
      const query = new URLSearchParams({ limit: String(AUDIO_PAGE) });
      if (more && state.audioCursor) query.set("cursor", state.audioCursor);
      page = await api("GET", `/api/audio?${query}`);
    } catch (err) {
      if (load === state.audioLoads && err.status !== 401) {
        showError("audio-error", `Could not load the audio clips: ${errorText(err)}`);
        button.disabled = false;
      }
      return;
    }
    if (load !== state.audioLoads || !state.me) return; // a newer load, or signed out
    showError("audio-error", "");
    renderClips(page.clips, more);
    state.audioCursor = page.next_cursor || null;
    button.hidden = !state.audioCursor;
    button.disabled = false;
    const shown = state.clipItems.size;
    el("audio-count").textContent = shown ? `(${shown}${state.audioCursor ? "+" : ""})` : "";
  }

  // Items already shown are kept, not remade: a clip playing plays on, an open confirmation and
  // a row's error stay.
  function renderClips(clips, more) {
    const list = el("audio-list");
    const order = more ? [...state.clipItems.keys()] : [];
    const items = new Map();
    for (const clip of clips) {
      const li = state.clipItems.get(clip.id) || clipItem(clip.id);
      state.clips.set(clip.id, clip);
      fillClip(li, clip);
      items.set(clip.id, li);
      if (!order.includes(clip.id)) order.push(clip.id);
    }
    const lis = order.map((id) => items.get(id) || state.clipItems.get(id));
    lis.forEach((li, i) => {
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    while (list.children.length > lis.length) list.lastElementChild.remove();
    for (const id of state.clips.keys()) if (!order.includes(id)) state.clips.delete(id);
    state.clipItems = new Map(order.map((id, i) => [id, lis[i]]));
    el("audio-empty").hidden = lis.length > 0;
  }

  function clipItem(id) {
    const li = node("li", "audio-clip");
    li.dataset.clipId = id;
    const info = node("div", "clip-info");
    // Same origin: the session cookie authenticates it; read when the user plays it.
    const player = node("audio", "player");
    player.controls = true;
    player.preload = "none";
    player.src = `/api/audio/${encodeURIComponent(id)}/content`;
    player.append(node("span", "", "This browser cannot play it."));
    li.append(info, player);
    if (!hasRole(AUDIO_MANAGERS)) return li;

    const actions = node("div", "actions clip-actions");
    const remove = node("button", "secondary danger delete-clip", "Delete…");
    remove.type = "button";
    actions.append(remove);
    const confirm = node("div", "confirm delete-confirm");
    confirm.hidden = true;
    const question = node("p", "delete-question");
    question.id = `delete-question-${id}`;
    const confirmButtons = node("div", "actions");
    const yes = node("button", "danger", "Delete clip");
    yes.type = "button";
    yes.setAttribute("aria-describedby", question.id);
    const no = node("button", "secondary", "Keep it");
    no.type = "button";
    confirmButtons.append(yes, no);
    confirm.append(question, confirmButtons);
    const error = node("p", "error clip-error");
    error.setAttribute("role", "alert");
    error.hidden = true;

    remove.addEventListener("click", () => {
      clipRowError(li, "");
      confirm.hidden = false;
      remove.hidden = true;
      yes.focus();
    });
    no.addEventListener("click", () => {
      confirm.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    yes.addEventListener("click", () => deleteClip(id));
    li.append(actions, confirm, error);
    return li;
  }

  function fillClip(li, clip) {
    li.dataset.source = clip.source;
    const head = node("p", "call-line");
    head.append(
      node("strong", "clip-name", clip.name),
      node("span", "badge status clip-source", clipSource(clip)),
      node("span", "duration clip-length", clipLength(clip.duration_ms)),
    );
    const parts = [head];
    // A render is named by the start of its words: the words whole when they are longer.
    if (clip.source === "voice" && clip.text && clip.text !== clip.name) {
      parts.push(node("blockquote", "evidence clip-text", `“${clip.text}”`));
    }
    const made = clip.source === "voice" ? "rendered" : "uploaded";
    parts.push(node("p", "clip-created", `${made} ${dateTime(clip.created_at)}`));
    li.querySelector(".clip-info").replaceChildren(...parts);
    li.querySelector("audio").setAttribute("aria-label", `Play ${clip.name}`);
    const remove = li.querySelector(".delete-clip");
    if (!remove) return;
    remove.setAttribute("aria-label", `Delete the clip ${clip.name}`);
    li.querySelector(".delete-question").textContent =
      `Delete the clip “${clip.name}”? Calls can no longer play it. This cannot be undone.`;
  }

  function clipRowError(li, message) {
    const p = li.querySelector(".clip-error");
    if (!p) return;
    p.textContent = message || "";
    p.hidden = !message;
  }

  // Why a clip was not deleted: what plays it, when something does.
  function deleteRefusal(err) {
    const users = Array.isArray(err.details.used_by) ? err.details.used_by : [];
    if (err.code !== "CLIP_IN_USE" || users.length === 0) return errorText(err);
    return `it is played by ${users.join(", ")}. Play something else there first.`;
  }

  async function deleteClip(id) {
    const li = state.clipItems.get(id);
    const clip = state.clips.get(id);
    if (!li || !clip) return;
    clipRowError(li, "");
    el("audio-outcome").textContent = "";
    const buttons = [...li.querySelectorAll(".delete-confirm button")];
    for (const b of buttons) b.disabled = true;
    try {
      await api("DELETE", `/api/audio/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status === 404) {
        await loadClips(); // what there is now (the list's load clears its error: then this)
        showError("audio-error", `Could not delete “${clip.name}”: ${errorText(err)}`);
        return;
      }
      li.querySelector(".delete-confirm").hidden = true;
      li.querySelector(".delete-clip").hidden = false;
      clipRowError(li, `Could not delete “${clip.name}”: ${deleteRefusal(err)}`);
      li.querySelector(".delete-clip").focus();
      return;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    li.remove();
    state.clipItems.delete(id);
    state.clips.delete(id);
    el("audio-title").focus(); // its button is gone
    el("audio-outcome").textContent = `The clip “${clip.name}” is deleted.`;
    await loadClips();
  }

  async function onUploadAudio(event) {
    event.preventDefault();
    showError("upload-audio-error", "");
    el("upload-audio-outcome").textContent = "";
    const input = el("audio-file");
    input.removeAttribute("aria-invalid");
    const file = input.files[0];
    if (!file) {
      showError("upload-audio-error", "Choose an audio file to upload.");
      input.focus();
      return;
    }
    const form = new FormData();
    const name = el("audio-name").value.trim();
    if (name) form.append("name", name);
    form.append("file", file, file.name);
    const submit = el("audio-upload-submit");
    submit.disabled = true;
    let clip;
    try {
      clip = await sendForm("POST", "/api/audio", form);
    } catch (err) {
      showError("upload-audio-error", `Could not upload ${file.name}: ${errorText(err)}`);
      if (err.status === 413 || err.status === 422) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-errormessage", "upload-audio-error");
        input.focus();
      }
      return;
    } finally {
      submit.disabled = false;
    }
    el("upload-audio-form").reset();
    el("upload-audio-outcome").textContent =
      `“${clip.name}” uploaded (${clipLength(clip.duration_ms)}).`;
    await loadClips();
  }

  async function onRenderAudio(event) {
    event.preventDefault();
    showError("render-audio-error", "");
    el("render-audio-outcome").textContent = "";
    const words = el("render-text");
    const text = words.value.trim();
    if (!text) {
      showError("render-audio-error", "Write the words to render.");
      words.focus();
      return;
    }
    const body = { text };
    const engine = el("render-engine").value;
    if (engine) body.engine = engine;
    const voice = el("render-voice").value.trim();
    if (voice) body.voice = voice;
    const submit = el("render-submit");
    submit.disabled = true;
    let clip;
    try {
      clip = await api("POST", "/api/audio/speech", body); // a first render takes seconds
    } catch (err) {
      showError("render-audio-error", `Could not render the words: ${errorText(err)}`);
      return;
    } finally {
      submit.disabled = false;
    }
    // The same words in the same voice are rendered once: the clip may be one listed already.
    const already = state.clips.has(clip.id);
    words.value = ""; // the engine and voice stay chosen for the next words
    el("render-audio-outcome").textContent = already
      ? `Rendered before: “${clip.name}” (${clipLength(clip.duration_ms)}).`
      : `Rendered “${clip.name}” (${clipLength(clip.duration_ms)}).`;
    await loadClips();
  }

  async function loadOrgVoice() {
    state.voiceLoads += 1;
    const load = state.voiceLoads;
    let voice;
    try {
      voice = await api("GET", "/api/org/voice");
    } catch (err) {
      if (load === state.voiceLoads && err.status !== 401) {
        showError("org-voice-error", `Could not load the prompt voice: ${errorText(err)}`);
      }
      return;
    }
    if (load !== state.voiceLoads || !state.me) return;
    showError("org-voice-error", "");
    renderOrgVoice(voice);
  }

  function voiceText(voice) {
    if (voice.engine === "say") return `Prompts are said by ${engineName("say")}.`;
    const which = voice.voice ? `voice ${voice.voice}` : "its default voice";
    return `Prompts are rendered by ${engineName(voice.engine)}, ${which}.`;
  }

  function engineOption(engine, label) {
    const option = node("option", "", label || engineName(engine));
    option.value = engine;
    return option;
  }

  // The voice as it is, the setting's choices (the engines this server has, and the org's own
  // even when the server lost it), and the engines words can be rendered with.
  function renderOrgVoice(voice) {
    el("org-voice-current").textContent = voiceText(voice);
    const engines = Array.isArray(voice.engines) ? voice.engines : ["say"];
    const choices = engines.includes(voice.engine) ? engines : [voice.engine, ...engines];
    const select = el("org-voice-engine");
    select.replaceChildren(...choices.map((engine) => engineOption(engine)));
    select.value = voice.engine;
    el("org-voice-name").value = voice.voice || "";

    // Rendering takes the org's voice first when it renders; a choice made stays while the
    // choices do.
    const render = el("render-engine");
    const chosen = render.value;
    const before = [...render.options].map((o) => o.textContent).join("\n");
    const options = engines.filter((e) => e !== "say").map((engine) => engineOption(engine));
    if (voice.engine !== "say" && engines.includes(voice.engine)) {
      options.unshift(engineOption("", `The organization's voice (${engineName(voice.engine)})`));
    }
    render.replaceChildren(...options);
    if (options.map((o) => o.textContent).join("\n") === before) render.value = chosen;
    el("render-none").hidden = options.length > 0;
    el("render-submit").disabled = options.length === 0;
  }

  async function onSaveVoice(event) {
    event.preventDefault();
    showError("org-voice-error", "");
    el("org-voice-outcome").textContent = "";
    const body = { engine: el("org-voice-engine").value };
    const name = el("org-voice-name").value.trim();
    if (name) body.voice = name;
    state.voiceLoads += 1; // a read still in flight would show the voice before this
    const submit = el("org-voice-submit");
    submit.disabled = true;
    let voice;
    try {
      voice = await api("PUT", "/api/org/voice", body);
    } catch (err) {
      showError("org-voice-error", `Could not set the prompt voice: ${errorText(err)}`);
      return;
    } finally {
      submit.disabled = false;
    }
    if (!state.me) return;
    renderOrgVoice(voice);
    el("org-voice-outcome").textContent = `Saved. ${voiceText(voice)}`;
  }

  // ---- Webhooks ----------------------------------------------------------------------------
  // An org's outbound webhook endpoints (control/api/outbound_webhooks.py). A new endpoint's
  // signing secret is answered once, by the POST: the page shows it until dismissed, and never
  // keeps it anywhere else. A removed endpoint stops (the server keeps it, inactive, with its
  // log), so it stays listed, marked removed.

  function openWebhooks() {
    loadWebhooks();
    if (state.webhookId) loadDeliveries();
  }

  // Signed out: the view forgets what it showed, the secret first.
  function clearWebhooks() {
    state.webhooks.clear();
    state.webhookItems.clear();
    state.webhookLoads += 1; // answers still in flight are dropped
    state.deliveryLoads += 1;
    state.webhookId = null;
    hideSecret();
    el("webhooks-view").hidden = true;
    el("webhooks-list").replaceChildren();
    el("deliveries-rows").replaceChildren();
    for (const id of ["webhooks-count", "webhooks-outcome", "new-webhook-outcome"]) {
      el(id).textContent = "";
    }
    el("deliveries-outcome").textContent = "";
    for (const id of ["webhooks-error", "new-webhook-error", "deliveries-error"]) {
      showError(id, "");
    }
    el("new-webhook-form").reset();
    el("webhook-url").removeAttribute("aria-invalid");
    el("webhooks-empty").hidden = true;
    showDeliveriesPanel();
  }

  async function loadWebhooks() {
    state.webhookLoads += 1;
    const load = state.webhookLoads;
    let page;
    try {
      page = await api("GET", "/api/webhooks");
    } catch (err) {
      if (load === state.webhookLoads && err.status !== 401) {
        showError("webhooks-error", `Could not load the webhooks: ${errorText(err)}`);
      }
      return;
    }
    if (load !== state.webhookLoads || !state.me) return; // a newer load, or signed out
    showError("webhooks-error", "");
    renderWebhooks(page.endpoints);
  }

  function renderWebhooks(endpoints) {
    const list = el("webhooks-list");
    const items = new Map();
    for (const endpoint of endpoints) {
      const li = state.webhookItems.get(endpoint.id) || webhookItem(endpoint.id);
      state.webhooks.set(endpoint.id, endpoint);
      fillWebhook(li, endpoint);
      items.set(endpoint.id, li);
    }
    // Kept items keep their open confirmations and their errors.
    [...items.values()].forEach((li, i) => {
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    while (list.children.length > items.size) list.lastElementChild.remove();
    for (const id of state.webhooks.keys()) if (!items.has(id)) state.webhooks.delete(id);
    state.webhookItems = items;
    const active = endpoints.filter((e) => e.active).length;
    el("webhooks-count").textContent = items.size ? `(${active} active)` : "";
    el("webhooks-empty").hidden = items.size > 0;
    markWebhookSelected();
    if (state.webhookId && state.webhooks.has(state.webhookId)) showDeliveriesPanel();
  }

  function webhookItem(id) {
    const li = node("li", "webhook");
    li.dataset.webhookId = id;
    const info = node("div", "webhook-info");
    const actions = node("div", "actions webhook-actions");
    const log = node("button", "secondary open-deliveries", "Deliveries");
    log.type = "button";
    log.addEventListener("click", () => selectWebhook(id));
    const remove = node("button", "secondary danger remove-webhook", "Remove…");
    remove.type = "button";
    actions.append(log, remove);

    const confirm = node("div", "confirm remove-confirm");
    confirm.hidden = true;
    const question = node("p", "remove-question");
    question.id = `remove-question-${id}`;
    const confirmButtons = node("div", "actions");
    const yes = node("button", "danger", "Remove endpoint");
    yes.type = "button";
    yes.setAttribute("aria-describedby", question.id);
    const no = node("button", "secondary", "Keep it");
    no.type = "button";
    confirmButtons.append(yes, no);
    confirm.append(question, confirmButtons);

    const error = node("p", "error webhook-error");
    error.setAttribute("role", "alert");
    error.hidden = true;

    remove.addEventListener("click", () => {
      confirm.hidden = false;
      remove.hidden = true;
      yes.focus();
    });
    no.addEventListener("click", () => {
      confirm.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    yes.addEventListener("click", () => removeWebhook(id));

    li.append(info, actions, confirm, error);
    return li;
  }

  function fillWebhook(li, endpoint) {
    li.dataset.active = String(endpoint.active);
    const head = node("p", "call-line");
    head.append(node("strong", "webhook-url", endpoint.url));
    if (!endpoint.active) head.append(node("span", "badge status webhook-removed", "removed"));
    const events = Array.isArray(endpoint.events) ? endpoint.events.join(", ") : "";
    const parts = [head, node("p", "webhook-events-text", events)];
    if (endpoint.created_at) {
      parts.push(node("p", "webhook-created", `added ${dateTime(endpoint.created_at)}`));
    }
    li.querySelector(".webhook-info").replaceChildren(...parts);
    const log = li.querySelector(".open-deliveries");
    log.setAttribute("aria-label", `Deliveries to ${endpoint.url}`);
    const confirm = li.querySelector(".remove-confirm");
    if (!endpoint.active) confirm.hidden = true;
    const remove = li.querySelector(".remove-webhook");
    remove.hidden = !endpoint.active || !confirm.hidden;
    remove.setAttribute("aria-label", `Remove the endpoint ${endpoint.url}`);
    li.querySelector(".remove-question").textContent =
      `Remove the endpoint ${endpoint.url}? It is sent no more events and its waiting ` +
      "deliveries are dropped; its delivery log stays.";
  }

  function webhookRowError(li, message) {
    const p = li.querySelector(".webhook-error");
    p.textContent = message || "";
    p.hidden = !message;
  }

  function markWebhookSelected() {
    for (const [id, li] of state.webhookItems) {
      const chosen = id === state.webhookId;
      li.classList.toggle("selected", chosen);
      li.querySelector(".open-deliveries").setAttribute("aria-pressed", String(chosen));
    }
  }

  async function removeWebhook(id) {
    const li = state.webhookItems.get(id);
    const endpoint = state.webhooks.get(id);
    if (!li || !endpoint) return;
    webhookRowError(li, "");
    el("webhooks-outcome").textContent = "";
    const buttons = [...li.querySelectorAll(".remove-confirm button")];
    for (const b of buttons) b.disabled = true;
    try {
      await api("DELETE", `/api/webhooks/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status === 404) await loadWebhooks(); // what it is now
      webhookRowError(li, `Could not remove the endpoint: ${fieldsText(err)}`);
      return;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    li.querySelector(".remove-confirm").hidden = true;
    const removed = { ...endpoint, active: false };
    state.webhooks.set(id, removed);
    fillWebhook(li, removed);
    el("webhooks-title").focus(); // its button is gone
    el("webhooks-outcome").textContent = `The endpoint ${endpoint.url} is removed.`;
    await loadWebhooks();
    if (state.webhookId === id) await loadDeliveries(); // its waiting deliveries dropped
  }

  function selectWebhook(id) {
    state.webhookId = id;
    state.deliveryLoads += 1;
    el("deliveries-rows").replaceChildren();
    el("deliveries-outcome").textContent = "";
    showError("deliveries-error", "");
    markWebhookSelected();
    showDeliveriesPanel();
    el("webhook-title").focus();
    loadDeliveries();
  }

  function showDeliveriesPanel() {
    const endpoint = state.webhookId ? state.webhooks.get(state.webhookId) : null;
    el("webhook-none").hidden = Boolean(endpoint);
    el("webhook-detail").hidden = !endpoint;
    el("deliveries-refresh").hidden = !endpoint;
    el("webhook-title").textContent = endpoint
      ? `Deliveries to ${endpoint.url}`
      : "Delivery log";
    if (!endpoint) {
      el("deliveries-table").hidden = true;
      el("deliveries-empty").hidden = true;
    }
  }

  async function loadDeliveries() {
    const id = state.webhookId;
    if (!id) return;
    state.deliveryLoads += 1;
    const load = state.deliveryLoads;
    const button = el("deliveries-refresh");
    button.disabled = true;
    let page;
    try {
      const query = new URLSearchParams({ limit: String(DELIVERIES_PAGE) });
      page = await api("GET", `/api/webhooks/${encodeURIComponent(id)}/deliveries?${query}`);
    } catch (err) {
      if (load === state.deliveryLoads && err.status !== 401) {
        showError("deliveries-error", `Could not load the deliveries: ${errorText(err)}`);
      }
      return;
    } finally {
      if (load === state.deliveryLoads) button.disabled = false;
    }
    if (load !== state.deliveryLoads || state.webhookId !== id || !state.me) return;
    showError("deliveries-error", "");
    const rows = page.deliveries.map((d) => deliveryRow(d));
    el("deliveries-rows").replaceChildren(...rows);
    el("deliveries-table").hidden = rows.length === 0;
    el("deliveries-empty").hidden = rows.length > 0;
  }

  function deliveryAnswer(delivery) {
    const parts = [];
    if (delivery.last_status !== null && delivery.last_status !== undefined) {
      parts.push(`HTTP ${delivery.last_status}`);
    }
    if (delivery.last_error) parts.push(delivery.last_error);
    return parts.join(" · ");
  }

  function deliveryRow(delivery) {
    const tr = node("tr", "delivery");
    tr.dataset.deliveryId = String(delivery.id);
    fillDelivery(tr, delivery);
    return tr;
  }

  function fillDelivery(tr, delivery) {
    tr.dataset.status = delivery.status;
    const event = node("td", "delivery-event", delivery.event);
    const status = node("td");
    status.append(
      node("span", `badge status delivery-status status-${delivery.status}`, delivery.status),
    );
    const attempts = node("td", "number delivery-attempts", String(delivery.attempts));
    const answer = node("td", "delivery-answer", deliveryAnswer(delivery));
    const queued = node("td", "when", dateTime(delivery.created_at));
    let later = "";
    if (delivery.status === "delivered") later = dateTime(delivery.delivered_at);
    else if (delivery.status === "pending") later = `next try ${dateTime(delivery.next_at)}`;
    const next = node("td", "when", later);
    const act = node("td", "delivery-actions");
    const endpoint = state.webhooks.get(state.webhookId);
    const mayReplay =
      (delivery.status === "delivered" || delivery.status === "failed") &&
      endpoint !== undefined &&
      endpoint.active;
    if (mayReplay) {
      const replay = node("button", "secondary replay", "Replay");
      replay.type = "button";
      replay.setAttribute("aria-label", `Replay the ${delivery.event} delivery ${delivery.id}`);
      replay.addEventListener("click", () => replayDelivery(tr, delivery));
      act.append(replay);
    }
    const error = node("p", "error delivery-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    act.append(error);
    tr.replaceChildren(event, status, attempts, answer, queued, next, act);
  }

  async function replayDelivery(tr, delivery) {
    const button = tr.querySelector(".replay");
    const error = tr.querySelector(".delivery-error");
    error.hidden = true;
    error.textContent = "";
    el("deliveries-outcome").textContent = "";
    if (button) button.disabled = true;
    let replayed;
    try {
      replayed = await api("POST", `/api/webhooks/deliveries/${delivery.id}/replay`);
    } catch (err) {
      if (button) button.disabled = false;
      error.textContent = `Could not replay the delivery: ${fieldsText(err)}`;
      error.hidden = false;
      return;
    }
    // Queued again: pending until the sender's next round (Refresh shows what it did).
    fillDelivery(tr, { ...delivery, status: replayed.status || "pending", last_error: null });
    el("deliveries-outcome").textContent =
      `The ${delivery.event} delivery is queued to be sent again.`;
  }

  async function onCreateWebhook(event) {
    event.preventDefault();
    showError("new-webhook-error", "");
    el("new-webhook-outcome").textContent = "";
    const url = el("webhook-url");
    url.removeAttribute("aria-invalid");
    const events = [...document.querySelectorAll("#webhook-events input:checked")].map(
      (box) => box.value,
    );
    if (events.length === 0) {
      showError("new-webhook-error", "Could not add the endpoint: events: choose at least one.");
      el("webhook-events").querySelector("input").focus();
      return;
    }
    const submit = el("webhook-submit");
    submit.disabled = true;
    let created;
    try {
      created = await api("POST", "/api/webhooks", { url: url.value.trim(), events });
    } catch (err) {
      showError("new-webhook-error", `Could not add the endpoint: ${fieldsText(err)}`);
      const named = bookingErrorFields(err).map((f) => f.field);
      if (named.includes("url")) {
        url.setAttribute("aria-invalid", "true");
        url.setAttribute("aria-errormessage", "new-webhook-error");
        url.focus();
      }
      return;
    } finally {
      submit.disabled = false;
    }
    el("new-webhook-form").reset();
    el("new-webhook-outcome").textContent = `Endpoint ${created.url} added.`;
    showSecret(created);
    await loadWebhooks();
  }

  // The secret, shown this once, in a read-only field its text can be selected in.
  function showSecret(created) {
    el("webhook-secret-url").textContent = created.url;
    const field = el("webhook-secret");
    field.value = created.secret || "";
    el("webhook-secret-copied").textContent = "";
    el("webhook-secret-panel").hidden = false;
    field.focus();
    field.select();
  }

  function hideSecret() {
    el("webhook-secret").value = "";
    el("webhook-secret-url").textContent = "";
    el("webhook-secret-copied").textContent = "";
    el("webhook-secret-panel").hidden = true;
  }

  async function copySecret() {
    const field = el("webhook-secret");
    field.focus();
    field.select();
    const said = el("webhook-secret-copied");
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(field.value);
      said.textContent = "Copied.";
    } catch (err) {
      // No clipboard here (a page not served over https, or permission refused): the text is
      // selected for the keyboard's copy.
      said.textContent = "The secret is selected: copy it with Ctrl+C (⌘C on a Mac).";
    }
  }

  // ---- Feed events -----------------------------------------------------------------------

  function applyEvent(event) {
    const d = event.data || {};
    switch (event.type) {
      case "call_started":
        refreshCallsSoon();
        break;
      case "call_status":
        if (TERMINAL.has(d.status)) {
          state.calls.delete(event.call_id);
          renderCalls();
          updateCall(event.call_id, { status: d.status });
          refreshCallsSoon(); // its end time and duration, in the recent calls
        } else if (state.calls.has(event.call_id)) {
          updateCall(event.call_id, { status: d.status });
        } else {
          refreshCallsSoon();
        }
        break;
      case "stream_started":
        if (!state.calls.has(event.call_id)) refreshCallsSoon();
        break;
      case "transcript":
        if (event.call_id === state.selected) {
          addSegment({
            id: d.event_id,
            track: d.track,
            start_ms: d.start_ms,
            end_ms: d.end_ms,
            text: d.text,
          });
        }
        break;
      case "transcript_partial":
        if (event.call_id === state.selected) {
          showPartial({ track: d.track, start_ms: d.start_ms, text: d.text });
        }
        break;
      case "consent":
        if (event.call_id === state.selected) addConsentEvent(consentFromEvent(event));
        if (d.applied && (d.verdict === "granted" || d.verdict === "refused")) {
          updateCall(event.call_id, {
            recording_consent: d.verdict === "granted",
            consent_verified_by: d.by_person ? d.actor : `detector:${d.detector}`,
          });
        }
        break;
      case "escalation": {
        if (!d.event_id) break;
        const esc = upsertAlert(alertFromEvent(event));
        if (event.call_id === state.selected) upsertCallEscalation(alertFromEvent(event));
        updateCall(event.call_id, { escalated: true });
        if (!state.beeped.has(esc.id) && esc.status === "open") {
          state.beeped.add(esc.id);
          beep(esc.severity);
        }
        if (!esc.from_number) completeAlert(esc.id);
        break;
      }
      case "escalation_updated":
        if (d.id) upsertAlert(d);
        if (d.id && state.callEscalations.has(d.id)) upsertCallEscalation(d);
        break;
      case "secure_mode":
        // The caller is giving details the recording must not hold (a card number, say).
        if (!d.on) state.secureRecording.delete(event.call_id);
        updateCall(event.call_id, { secure_mode: d.on === true });
        break;
      case "secure_recording":
        // What secure mode did to the call's recording, once SignalWire answered.
        state.secureRecording.set(event.call_id, d.recording);
        updateCall(event.call_id, {});
        break;
      default:
        break; // dtmf, stream_stopped and types this page does not show
    }
  }

  // ---- The feed connection ---------------------------------------------------------------

  const feed = {
    stopped: true,
    mode: "websocket",
    socket: null,
    source: null,
    wsFailures: 0,
    attempt: 0,
    timer: null,
    loading: false,
    queue: [],
  };

  function setFeedStatus(kind) {
    const labels = {
      connecting: "Connecting…",
      live: feed.mode === "sse" ? "Live (SSE)" : "Live",
      reconnecting: "Reconnecting…",
    };
    const status = el("feed-status");
    status.dataset.state = kind;
    status.textContent = labels[kind];
  }

  function startFeed() {
    stopFeed();
    feed.stopped = false;
    feed.mode = "websocket";
    feed.wsFailures = 0;
    feed.attempt = 0;
    state.lastEventId = null;
    connect();
  }

  function detach() {
    const { socket, source } = feed;
    feed.socket = null;
    feed.source = null;
    if (socket) socket.close();
    if (source) source.close();
  }

  function stopFeed() {
    feed.stopped = true;
    clearTimeout(feed.timer);
    feed.timer = null;
    detach();
    stats.transport = "none";
  }

  function feedPath(base) {
    return state.lastEventId === null ? base : `${base}?last_event_id=${state.lastEventId}`;
  }

  function connect() {
    if (feed.stopped) return;
    setFeedStatus(feed.attempt === 0 ? "connecting" : "reconnecting");
    if (feed.mode === "sse") {
      connectSse();
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}${feedPath("/api/feed")}`);
    } catch (err) {
      failedToConnect();
      return;
    }
    let opened = false;
    feed.socket = socket;
    // A handshake that neither opens nor fails (a proxy holding the upgrade) is a failure too.
    const giveUp = setTimeout(() => {
      if (feed.socket !== socket) return;
      feed.socket = null;
      socket.close();
      failedToConnect();
    }, CONNECT_TIMEOUT_MS);
    socket.addEventListener("open", () => {
      opened = true;
      clearTimeout(giveUp);
      feed.wsFailures = 0;
    });
    socket.addEventListener("message", (m) => {
      if (feed.socket === socket) onMessage(m.data);
    });
    socket.addEventListener("close", (ev) => {
      clearTimeout(giveUp);
      if (feed.socket !== socket) return; // closed on purpose
      feed.socket = null;
      if (ev.code === RESYNC_CLOSE_CODE) state.lastEventId = null;
      if (opened) reconnectLater();
      else failedToConnect();
    });
  }

  function failedToConnect() {
    feed.wsFailures += 1;
    if (feed.mode === "websocket" && feed.wsFailures >= 2) feed.mode = "sse"; // a proxy without WebSockets
    reconnectLater({ checkSession: true });
  }

  function connectSse() {
    const source = new EventSource(feedPath("/api/feed/sse"));
    feed.source = source;
    source.addEventListener("message", (m) => {
      if (feed.source === source) onMessage(m.data);
    });
    source.addEventListener("error", () => {
      if (feed.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        feed.source = null;
        reconnectLater({ checkSession: true });
      } else {
        setFeedStatus("reconnecting"); // EventSource retries by itself, with Last-Event-ID
      }
    });
  }

  function reconnectLater({ checkSession = false } = {}) {
    if (feed.stopped) return;
    stats.transport = "none";
    setFeedStatus("reconnecting");
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** feed.attempt);
    feed.attempt += 1;
    clearTimeout(feed.timer);
    feed.timer = setTimeout(async () => {
      feed.timer = null;
      if (checkSession) {
        // A refused handshake looks like any failure: a signed-out session shows the form.
        try {
          await api("GET", "/api/auth/me");
        } catch (err) {
          if (err.status === 401) return;
        }
      }
      connect();
    }, base * (0.5 + Math.random() / 2));
  }

  function onMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (message.type === "hello") {
      feed.attempt = 0;
      stats.transport = feed.mode;
      setFeedStatus("live");
      if (state.lastEventId === null) {
        // A fresh connection: the API's state now, then every event after this id.
        state.lastEventId = message.last_event_id;
        stats.lastEventId = state.lastEventId;
        reload();
      }
      return;
    }
    if (message.type === "resync") {
      detach();
      state.lastEventId = null;
      reconnectLater();
      return;
    }
    if (message.type === "transcript_partial") {
      // Words so far: no position in the feed, only ever live; not worth queueing behind a
      // reload (the final segment follows).
      if (!feed.loading) applyEvent(message);
      return;
    }
    if (typeof message.id !== "number") return;
    if (state.lastEventId !== null && message.id <= state.lastEventId) return; // seen
    state.lastEventId = message.id;
    stats.lastEventId = message.id;
    stats.eventsSeen += 1;
    if (feed.loading) {
      feed.queue.push(message); // applied on top of the state being loaded
      return;
    }
    applyEvent(message);
  }

  async function reload() {
    feed.loading = true;
    feed.queue = [];
    try {
      await Promise.all([loadCalls(), loadRecent(), loadAlerts()]);
      showPageError("");
    } catch (err) {
      if (err.status !== 401) showPageError(`Could not load the dashboard: ${err.message}`);
    } finally {
      feed.loading = false;
      const queued = feed.queue;
      feed.queue = [];
      for (const event of queued) applyEvent(event);
    }
    if (state.selected && state.me) openCall(state.selected);
  }

  // ---- Start -----------------------------------------------------------------------------

  async function start() {
    el("login-form").addEventListener("submit", onLogin);
    el("logout-button").addEventListener("click", onLogout);
    el("sound-button").addEventListener("click", unlockAudio);
    for (const button of document.querySelectorAll(".view-button")) {
      button.addEventListener("click", () => showView(button.dataset.view));
    }
    el("targets-filter").addEventListener("submit", onTargetsFilter);
    el("targets-clear").addEventListener("click", onTargetsClear);
    el("targets-more").addEventListener("click", () => loadTargets({ more: true }));
    el("dnc-more").addEventListener("click", () => loadDoNotCall({ more: true }));
    el("import-form").addEventListener("submit", onImport);
    el("dnc-form").addEventListener("submit", onAddDoNotCall);
    el("campaigns-more").addEventListener("click", () => loadCampaigns({ more: true }));
    el("new-campaign-form").addEventListener("submit", onCreateCampaign);
    for (const button of document.querySelectorAll("#campaign-detail [data-action]")) {
      button.addEventListener("click", () => moveCampaign(button.dataset.action));
    }
    el("campaign-cancel-button").addEventListener("click", askCancelCampaign);
    el("campaign-cancel-no").addEventListener("click", keepCampaign);
    el("bookings-refresh").addEventListener("click", () => loadBookings());
    el("new-booking-form").addEventListener("submit", onCreateBooking);
    el("booking-flow-connect").addEventListener("change", onBookingFlow);
    el("booking-flow-say").addEventListener("change", onBookingFlow);
    el("question-kind").addEventListener("change", onQuestionKind);
    el("question-add").addEventListener("click", onAddQuestion);
    el("new-survey-form").addEventListener("submit", onCreateSurvey);
    el("survey-attach-form").addEventListener("submit", onAttachSurvey);
    el("survey-refresh").addEventListener("click", () => refreshSurvey());
    el("new-script-form").addEventListener("submit", onCreateScript);
    el("score-form").addEventListener("submit", onScoreCall);
    el("new-webhook-form").addEventListener("submit", onCreateWebhook);
    el("webhook-secret-copy").addEventListener("click", copySecret);
    el("webhook-secret-done").addEventListener("click", hideSecret);
    el("audio-more").addEventListener("click", () => loadClips({ more: true }));
    el("upload-audio-form").addEventListener("submit", onUploadAudio);
    el("render-audio-form").addEventListener("submit", onRenderAudio);
    el("org-voice-form").addEventListener("submit", onSaveVoice);
    el("deliveries-refresh").addEventListener("click", () => {
      el("deliveries-outcome").textContent = ""; // what a replay said: the log now says more
      loadDeliveries();
    });
    // Any gesture may unlock sound; once it plays, stop listening.
    const gesture = () => {
      unlockAudio();
      if (audio && audio.state === "running") {
        document.removeEventListener("pointerdown", gesture, true);
        document.removeEventListener("keydown", gesture, true);
      }
    };
    document.addEventListener("pointerdown", gesture, true);
    document.addEventListener("keydown", gesture, true);
    try {
      const me = await api("GET", "/api/auth/me");
      if (me.csrf_token) signedIn(me);
      else showLogin(); // a session without a token to write with: sign in again
    } catch (err) {
      if (err.status === 401) showLogin();
      else {
        showPageError(`The server cannot be reached: ${err.message}`);
        showLogin();
      }
    }
  }

  start();
})();
