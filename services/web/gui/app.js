// xtask GUI: the page's event stream, and the truth about it.
//
// The server renders everything (Datastar fragments and signals over SSE, events.c). This module
// only keeps the stream open and says honestly whether it is: Datastar 1.0.0-beta.11's @get stops
// for good when a stream ends cleanly (a restart of xtask-web) and cannot tell a 401 from a network
// error. So the page opens /events itself with fetch, parses the SSE, and hands each Datastar event
// to Datastar exactly as its own SSE plugin does (a `datastar-sse` DOM event, which its
// merge-fragments / merge-signals watchers apply).
//
// Badge (#conn, data-state): connecting -> live; the stream ends or stalls -> reconnecting (backoff
// 0.5 s doubling to 8 s, with jitter; every reconnect takes a fresh snapshot); still down after
// 10 s, or the browser is offline -> offline (it keeps trying). A 401 (session expired, logged out,
// auth restarted without the session) -> signed out, with a link to sign in again; no more retries.
// The server ends each stream after events.session_check with `xtask-reauth`: the page reopens it
// at once, through forward-auth, which is how an ended session is noticed within that interval.
const badge = document.getElementById('conn');
const signedOutBanner = document.getElementById('signedout');
const projectInput = document.getElementById('project');
const deniedBanner = document.getElementById('denied');

const OFFLINE_AFTER_MS = 10000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8000;

const st = { state: 'connecting', liveSince: 0, connects: 0, downSince: 0, hbMs: 15000 };
window.xtaskStream = st; // read by the browser test (states and timings)

let ctrl = null;       // AbortController of the current stream
let retryMs = RETRY_FIRST_MS;
let retryTimer = 0;
let watchdog = 0;
let stopped = false;   // signed out: nothing more to do
let reauth = false;    // the server ended this stream to have the session checked again

const LABELS = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', offline: 'offline',
                 signedout: 'signed out' };

function setState(s) {
  if (st.state === s) return;
  st.state = s;
  badge.dataset.state = s;
  badge.textContent = LABELS[s];
  if (s === 'live') { st.liveSince = Date.now(); st.downSince = 0; }
  else if (!st.downSince) st.downSince = Date.now();
}

function signedOut() {
  if (stopped) return;
  stopped = true;
  clearTimeout(retryTimer);
  clearTimeout(watchdog);
  if (ctrl) ctrl.abort();
  setState('signedout');
  signedOutBanner.hidden = false;
}

function dispatch(type, argsRaw) {
  document.dispatchEvent(new CustomEvent('datastar-sse', { detail: { type, elId: 'events', argsRaw } }));
}

function armWatchdog() {
  clearTimeout(watchdog);
  // the server writes at least a heartbeat comment every heartbeat_ms: silence means a dead path
  watchdog = setTimeout(() => { if (ctrl) ctrl.abort('stalled'); lost(); }, 2 * st.hbMs + 5000);
}

function lost() {
  if (stopped) return;
  clearTimeout(watchdog);
  const down = st.downSince ? Date.now() - st.downSince : 0;
  setState(!navigator.onLine || down >= OFFLINE_AFTER_MS ? 'offline' : 'reconnecting');
  clearTimeout(retryTimer);
  const wait = retryMs * (0.8 + Math.random() * 0.4);
  retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  retryTimer = setTimeout(connect, wait);
}

// One SSE event: Datastar's go to Datastar; ours steer the stream.
function onEvent(name, data) {
  if (name.startsWith('datastar-')) {
    const argsRaw = {};
    for (const line of data.split('\n')) {
      const sp = line.indexOf(' ');
      const key = line.slice(0, sp), value = line.slice(sp + 1);
      argsRaw[key] = key in argsRaw ? `${argsRaw[key]}\n${value}` : value;
    }
    dispatch(name, argsRaw);
  } else if (name === 'xtask-hello') {
    try { st.hbMs = JSON.parse(data).heartbeat_ms || st.hbMs; } catch { /* keep the default */ }
  } else if (name === 'xtask-reauth') {
    reauth = true;
  }
}

async function connect() {
  if (stopped) return;
  clearTimeout(retryTimer);
  if (ctrl) ctrl.abort();
  const my = new AbortController();
  ctrl = my;
  reauth = false;
  const project = (projectInput && projectInput.value) || 'default';
  let resp;
  try {
    resp = await fetch(`/events?project=${encodeURIComponent(project)}`, {
      headers: { accept: 'text/event-stream' }, signal: my.signal, cache: 'no-store', credentials: 'same-origin' });
  } catch {
    if (ctrl === my) lost();
    return;
  }
  if (resp.status === 401) { signedOut(); return; }
  if (resp.status === 403) { // a project this user may not see (api.projects): say so, wait for another
    let msg = `You may not see project '${project}'.`;
    try { msg = `${(await resp.json()).error.message}.`; } catch { /* keep the default */ }
    deniedBanner.textContent = `${msg} Choose another project.`;
    deniedBanner.hidden = false;
    setState('offline');
    return;
  }
  deniedBanner.hidden = true;
  if (!resp.ok || !(resp.headers.get('content-type') || '').startsWith('text/event-stream')) {
    if (ctrl === my) lost();
    return;
  }
  st.connects++;
  armWatchdog();
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '', name = '', data = [], first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      armWatchdog();
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length || name) onEvent(name || 'message', data.join('\n'));
          name = ''; data = [];
        } else if (line.startsWith(':')) {
          // heartbeat comment
        } else {
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (field === 'event') name = val;
          else if (field === 'data') data.push(val);
        }
      }
      if (first) { // the first write is the whole snapshot: the page is current
        first = false;
        retryMs = RETRY_FIRST_MS;
        signedOutBanner.hidden = true;
        setState('live');
      }
    }
  } catch {
    // aborted or the connection broke: handled below
  }
  if (ctrl !== my || stopped) return; // replaced by a newer stream
  clearTimeout(watchdog);
  if (reauth) { connect(); return; } // the server asked us to come back through forward-auth
  lost();
}

// A Datastar request of the page (run, open a result) answered 401: the session is gone. A run's
// answer cut off (xtask-web restarted while the task ran; requests are never retried, a POST must
// not run twice): say so; the task's result still arrives with the results.
document.addEventListener('datastar-sse', (e) => {
  const d = e.detail || {};
  if (d.type === 'error' && String((d.argsRaw || {}).status) === '401') signedOut();
  if (d.type === 'retries-failed' && d.elId === 'run') {
    dispatch('datastar-merge-signals', { signals: JSON.stringify({ taskNote: '',
      taskError: 'the connection to xtask-web was lost while the task ran: see Recent results for how it ended' }) });
  }
});
// Datastar then rejects the action's promise (SseFetchFailed): handled above, not a page error.
window.addEventListener('unhandledrejection', (e) => {
  if (String(e.reason && (e.reason.message || e.reason)).includes('SseFetchFailed')) e.preventDefault();
});

window.addEventListener('offline', () => { if (!stopped && st.state !== 'live') setState('offline'); });
window.addEventListener('online', () => { if (!stopped && st.state !== 'live') { retryMs = RETRY_FIRST_MS; connect(); } });
if (projectInput) {
  projectInput.addEventListener('change', () => {
    if (projectInput.checkValidity()) { retryMs = RETRY_FIRST_MS; connect(); }
  });
}

connect();
