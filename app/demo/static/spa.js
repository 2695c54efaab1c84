// The demo SPA: signs in at the demo issuer (token in the URL fragment, kept in sessionStorage),
// lists providers and connections through the connector's API, starts a connect with a top-level
// form POST (the only way a navigation can carry the token without a URL), disconnects after asking,
// and calls the provider's API through the connector's proxy. No third-party token reaches this page.
//
// Integrators copy this file: it reads the connector's return redirect
// (?connector_status=connected|error&provider=<name>&error=<code>), shows providers by their display
// names, turns the stable error codes into sentences a person can act on, and never shows a raw
// query-string value as HTML (textContent only).
'use strict';

const TOKEN_KEY = 'demo_access_token';
const STATE_KEY = 'demo_sign_in_state';
const NAMES_KEY = 'demo_provider_names';  // provider name -> display name, from GET /api/providers
const RETURN_TO = window.location.origin + '/demo/spa';
const $ = (id) => document.getElementById(id);

// What a person sees for each connection status (the API's values are for programs).
const STATUS_LABELS = {
  active: 'Connected',
  needs_reauth: 'Reconnect needed',
  revoked: 'Disconnected',
  none: 'Not connected',
};

// The connector's documented error codes (README, "The SPA"), as sentences: what happened, what to do.
const ERROR_SENTENCES = {
  access_denied: (p) => `${p} was not connected: access was not allowed on ${p}'s page. You can connect again at any time.`,
  expired: (p) => `Connecting ${p} took too long and the attempt expired. Please press Connect again.`,
  already_used: (p) => `That ${p} approval was already used (perhaps after pressing Back). ` +
    'Check the list below; press Connect again if it is not connected.',
  provider_unavailable: (p) => `${p} could not be reached just now, so nothing was connected. Please try again in a few minutes.`,
  login_required: (p) => `Your sign-in here expired before ${p} was connected. Please sign in again, then press Connect.`,
  invalid_request: (p) => `The request to connect ${p} was not valid, so nothing was connected. Please start again from this page.`,
};
const GENERIC_ERROR = (p) => `Connecting ${p} did not work. Please try again; if it keeps failing, contact support.`;

let pendingOutcome = null;  // the return redirect's outcome, shown once display names are known

function randomState() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function displayName(provider) {
  const names = JSON.parse(sessionStorage.getItem(NAMES_KEY) || '{}');
  return Object.prototype.hasOwnProperty.call(names, provider) ? names[provider] : provider;
}

function takeTokenFromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (!params.has('access_token')) return;
  const expected = sessionStorage.getItem(STATE_KEY);
  sessionStorage.removeItem(STATE_KEY);
  if (expected && params.get('state') === expected) {
    sessionStorage.setItem(TOKEN_KEY, params.get('access_token'));
  } else {
    showOutcome('Sign-in response ignored: its state does not match this browser\'s request.', true);
  }
  history.replaceState(null, '', window.location.pathname + window.location.search);
}

function showOutcome(text, isError, detail) {
  const box = $('outcome');
  box.replaceChildren(text);
  if (detail) box.append(' ', Object.assign(document.createElement('small'), { textContent: detail }));
  box.classList.toggle('error', Boolean(isError));
  box.hidden = false;
}

function hideOutcome() {
  $('outcome').hidden = true;
}

function readConnectOutcome() {
  const params = new URLSearchParams(window.location.search);
  const status = params.get('connector_status');
  if (!status) return;
  pendingOutcome = { status, provider: params.get('provider') || '', error: params.get('error') || '' };
  $('outcome').dataset.status = status;
  $('outcome').dataset.error = pendingOutcome.error;
  history.replaceState(null, '', window.location.pathname);  // a reload must not show it again
  showConnectOutcome();
}

// Shown at once with the display names known so far, and again (then forgotten) once the list is loaded.
function showConnectOutcome({ final } = { final: false }) {
  if (!pendingOutcome) return;
  const { status, provider, error } = pendingOutcome;
  if (final) pendingOutcome = null;
  const name = provider ? displayName(provider) : 'the provider';
  if (status === 'connected') {
    showOutcome(`Connected to ${name}.`, false);
    return;
  }
  const code = /^[a-z0-9_]{1,64}$/.test(error) ? error : '';
  const sentence = (Object.prototype.hasOwnProperty.call(ERROR_SENTENCES, code) ? ERROR_SENTENCES[code] : GENERIC_ERROR)(name);
  showOutcome(sentence, true, code ? `(error code: ${code})` : '');
}

async function api(method, path) {
  const response = await fetch(path, {
    method, headers: { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY), Accept: 'application/json' },
  });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    render();
    throw new Error('You were signed out: your sign-in expired. Please sign in again.');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `The request failed (HTTP ${response.status}).`);
  return body;
}

function signIn() {
  const state = randomState();
  sessionStorage.setItem(STATE_KEY, state);
  const query = new URLSearchParams({ client_id: 'demo-spa', response_type: 'token', redirect_uri: RETURN_TO, state });
  window.location.assign('/demo/issuer/authorize?' + query);
}

function connect(provider) {
  const form = Object.assign(document.createElement('form'), { method: 'POST', action: '/connect/start' });
  const fields = { access_token: sessionStorage.getItem(TOKEN_KEY), provider, return_to: RETURN_TO };
  for (const [name, value] of Object.entries(fields)) {
    form.append(Object.assign(document.createElement('input'), { type: 'hidden', name, value }));
  }
  document.body.append(form);
  form.submit();
}

function cell(label, content, className) {
  const td = document.createElement('td');
  td.dataset.label = label;
  td.append(content);
  if (className) td.className = className;
  return td;
}

function button(id, text, className, onClick) {
  const b = Object.assign(document.createElement('button'), { type: 'button', id, textContent: text });
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function clearApiResult() {
  $('api-result').textContent = '';
  $('api-result').hidden = true;
}

// Ask first: disconnecting deletes the stored tokens and revokes the grant at the provider.
function confirmDisconnect(provider) {
  const dialog = $('confirm-disconnect');
  $('confirm-provider').textContent = provider.display_name;
  $('confirm-provider-again').textContent = provider.display_name;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('confirm-no').focus();  // the safe choice has the focus
  });
}

async function disconnect(provider) {
  if (!await confirmDisconnect(provider)) return;
  try {
    await api('DELETE', '/api/connections/' + encodeURIComponent(provider.name));
    clearApiResult();  // it showed data of the account that is no longer connected
    showOutcome(`Disconnected from ${provider.display_name}.`, false);
  } catch (e) {
    showOutcome(e.message, true);
  }
  await renderConnections().catch((e) => showOutcome(e.message, true));
  $('connect-' + provider.name)?.focus();
}

async function renderConnections() {
  const [{ providers }, { connections }] = await Promise.all([api('GET', '/api/providers'), api('GET', '/api/connections')]);
  sessionStorage.setItem(NAMES_KEY, JSON.stringify(Object.fromEntries(providers.map((p) => [p.name, p.display_name]))));
  showConnectOutcome({ final: true });
  const byProvider = Object.fromEntries(connections.map((c) => [c.provider, c]));
  const rows = providers.map((p) => {
    const c = byProvider[p.name];
    const status = c ? c.status : 'none';
    const tr = document.createElement('tr');
    const badge = Object.assign(document.createElement('span'), {
      id: 'status-' + p.name, className: 'status status-' + status, textContent: STATUS_LABELS[status] || status,
    });
    const live = c && c.status !== 'revoked';
    tr.append(cell('Provider', p.display_name, 'provider'), cell('Status', badge),
              cell('Account', live && c.external_account_id ? c.external_account_id : '—'),
              cell('Connected', live && c.connected_at ? new Date(c.connected_at).toLocaleString() : '—'));
    tr.lastChild.id = 'connected-' + p.name;
    const actions = document.createElement('div');
    actions.className = 'actions';
    actions.append(button('connect-' + p.name, c && c.status === 'active' ? 'Reconnect' : 'Connect', '', () => connect(p.name)));
    if (live) actions.append(button('disconnect-' + p.name, 'Disconnect', 'danger', () => disconnect(p)));
    tr.append(cell('Actions', actions, 'actions-cell'));
    return tr;
  });
  $('providers').replaceChildren(...rows);
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return {};
  }
}

function render() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  $('signed-out').hidden = Boolean(token);
  $('signed-in').hidden = !token;
  if (!token) {
    clearApiResult();
    return;
  }
  const who = claims(token);
  $('user').textContent = `${who.name || ''} (${who.sub || '?'})`;
  renderConnections().catch((e) => showOutcome(e.message, true));
}

document.addEventListener('DOMContentLoaded', () => {
  takeTokenFromFragment();
  readConnectOutcome();
  $('sign-in').addEventListener('click', signIn);
  $('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    hideOutcome();
    render();
  });
  $('confirm-yes').addEventListener('click', () => $('confirm-disconnect').close('yes'));
  $('confirm-no').addEventListener('click', () => $('confirm-disconnect').close('no'));
  $('call-api').addEventListener('click', async () => {
    const result = $('api-result');
    result.hidden = false;
    result.textContent = '…';
    try {
      result.textContent = JSON.stringify(await api('GET', '/api/proxy/sandbox/me'), null, 2);
    } catch (e) {
      result.textContent = e.message;
    }
  });
  render();
});
