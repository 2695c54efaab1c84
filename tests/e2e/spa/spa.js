// A minimal SPA for the e2e suite, written the way a real one uses the connector:
// Auth0 sign-in with authorization code + PKCE (public client, `audience` = the connector's
// API, so the access token is an RS256 JWT for it), a top-level form POST to /connect/start,
// and bearer-token fetches (CORS) to the JSON API. Settings come from /config.js.
'use strict';

const cfg = window.SPA_CONFIG;
const $ = (id) => document.getElementById(id);
const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
const accessToken = () => sessionStorage.getItem('access_token');

async function signIn() {
  const verifier = randomString();
  const state = randomString();
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem('pkce', JSON.stringify({ verifier, state }));
  const url = new URL(cfg.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: cfg.redirectUri,
    scope: 'openid profile email',
    audience: cfg.audience,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  window.location.assign(url.toString());
}

async function finishSignIn(params) {
  const saved = JSON.parse(sessionStorage.getItem('pkce') || 'null');
  sessionStorage.removeItem('pkce');
  if (params.get('error')) throw new Error(`authorization failed: ${params.get('error')}`);
  if (!saved || params.get('state') !== saved.state) throw new Error('state mismatch');
  if (params.get('iss') !== cfg.issuer) throw new Error('issuer mismatch');
  const res = await fetch(cfg.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      client_id: cfg.clientId,
      redirect_uri: cfg.redirectUri,
      code_verifier: saved.verifier,
    }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`token request failed: ${body.error}`);
  sessionStorage.setItem('access_token', body.access_token);
  window.history.replaceState(null, '', cfg.returnUrl);
}

// A browser navigation cannot carry an Authorization header: submit a top-level form POST.
// `params`: the provider's per-connection parameters (GET /api/providers lists them), e.g. { subdomain };
// `fields`: more form fields, e.g. { scopes: 'email' }.
function connect({
  provider = cfg.provider, returnTo = cfg.returnUrl, token = accessToken(), params = {}, fields = {},
} = {}) {
  const form = Object.assign(document.createElement('form'), {
    method: 'POST', action: `${cfg.serviceUrl}/connect/start`,
  });
  for (const [name, value] of Object.entries({ ...params, ...fields, access_token: token, provider, return_to: returnTo })) {
    form.append(Object.assign(document.createElement('input'), { type: 'hidden', name, value }));
  }
  document.body.append(form);
  form.submit();
}

async function api(method, path) {
  const res = await fetch(`${cfg.serviceUrl}${path}`, {
    method, headers: { Authorization: `Bearer ${accessToken()}` },
  });
  return `${res.status} ${await res.text()}`;
}

async function disconnect() {
  $('disconnect-result').textContent = await api('DELETE', `/api/connections/${encodeURIComponent(cfg.provider)}`);
}

async function callApi(path = 'me') {
  $('api-result').textContent = await api('GET', `/api/proxy/${encodeURIComponent(cfg.provider)}/${path}`);
}

function render() {
  const token = accessToken();
  $('signed-out').hidden = Boolean(token);
  $('signed-in').hidden = !token;
  if (token) $('user').textContent = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
  const params = new URLSearchParams(window.location.search);
  $('status').textContent = params.get('connector_status') ?? '';
  $('provider').textContent = params.get('provider') ?? '';
  $('error').textContent = params.get('error') ?? '';
}

async function main() {
  $('sign-in').addEventListener('click', () => signIn());
  $('connect').addEventListener('click', () => connect());
  $('disconnect').addEventListener('click', () => disconnect());
  $('call-api').addEventListener('click', () => callApi());
  if (window.location.pathname === new URL(cfg.redirectUri).pathname) {
    try {
      await finishSignIn(new URLSearchParams(window.location.search));
    } catch (err) {
      $('sign-in-error').textContent = String(err.message || err);
    }
  }
  render();
  document.body.dataset.ready = '1';
}

window.spa = { connect, disconnect, callApi };
main();
