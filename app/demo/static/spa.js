// The demo SPA: signs in at the demo issuer (token in the URL fragment, kept in sessionStorage),
// lists providers and connections through the connector's API, starts a connect with a top-level
// form POST (the only way a navigation can carry the token without a URL), disconnects, and
// calls the provider's API through the connector's proxy. No third-party token reaches this page.
'use strict';

const TOKEN_KEY = 'demo_access_token';
const STATE_KEY = 'demo_sign_in_state';
const RETURN_TO = window.location.origin + '/demo/spa';
const $ = (id) => document.getElementById(id);

function randomState() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
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

function showOutcome(text, isError) {
  const box = $('outcome');
  box.textContent = text;
  box.classList.toggle('error', Boolean(isError));
  box.hidden = false;
}

function readConnectOutcome() {
  const params = new URLSearchParams(window.location.search);
  const status = params.get('connector_status');
  if (!status) return;
  const provider = params.get('provider') || 'the provider';
  if (status === 'connected') showOutcome(`Connected to ${provider}.`, false);
  else showOutcome(`Connecting ${provider} failed: ${params.get('error') || status}` +
                   (params.get('error_description') ? ` (${params.get('error_description')})` : ''), true);
  $('outcome').dataset.status = status;
  history.replaceState(null, '', window.location.pathname);
}

async function api(method, path) {
  const response = await fetch(path, {
    method, headers: { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY), Accept: 'application/json' },
  });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    render();
    throw new Error('signed out: the sign-in token expired');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
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

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(id, text, className, onClick) {
  const b = Object.assign(document.createElement('button'), { type: 'button', id, textContent: text });
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

async function renderConnections() {
  const [{ providers }, { connections }] = await Promise.all([api('GET', '/api/providers'), api('GET', '/api/connections')]);
  const byProvider = Object.fromEntries(connections.map((c) => [c.provider, c]));
  const rows = providers.map((p) => {
    const c = byProvider[p.name];
    const status = c ? c.status : 'not connected';
    const tr = document.createElement('tr');
    tr.append(cell(p.display_name), cell(status, 'status-' + (c ? c.status : 'none')),
              cell(c && c.external_account_id ? c.external_account_id : '—'),
              cell(c && c.connected_at ? new Date(c.connected_at).toLocaleString() : '—'));
    tr.lastChild.id = 'connected-' + p.name;
    tr.children[1].id = 'status-' + p.name;
    const actions = document.createElement('td');
    actions.append(button('connect-' + p.name, c && c.status === 'active' ? 'Reconnect' : 'Connect', '', () => connect(p.name)));
    if (c && c.status !== 'revoked') {
      actions.append(' ', button('disconnect-' + p.name, 'Disconnect', 'danger', async () => {
        await api('DELETE', '/api/connections/' + encodeURIComponent(p.name)).then(
          () => showOutcome(`Disconnected ${p.display_name}.`, false), (e) => showOutcome(e.message, true));
        renderConnections();
      }));
    }
    tr.append(actions);
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
  if (!token) return;
  const who = claims(token);
  $('user').textContent = `${who.name || ''} (${who.sub || '?'})`;
  renderConnections().catch((e) => showOutcome(e.message, true));
}

document.addEventListener('DOMContentLoaded', () => {
  takeTokenFromFragment();
  readConnectOutcome();
  $('sign-in').addEventListener('click', signIn);
  $('sign-out').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); render(); });
  $('call-api').addEventListener('click', async () => {
    $('api-result').textContent = '…';
    try {
      $('api-result').textContent = JSON.stringify(await api('GET', '/api/proxy/sandbox/me'), null, 2);
    } catch (e) {
      $('api-result').textContent = e.message;
    }
  });
  render();
});
