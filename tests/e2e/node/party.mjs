// A real OAuth 2.0 / OpenID Connect "third party" for the connector's e2e tests,
// built on oidc-provider. One process = one instance in one role, listening on
// 127.0.0.1 only. Usage: node party.mjs /path/to/config.json
// Prints exactly one line "READY <issuer>" on stdout once it accepts requests.
//
// Config JSON (keys not listed are ignored):
// {
//   "role": "provider" | "auth0",  // required
//   "port": 0,                     // optional, 0 (default) = ephemeral port; the issuer says which
//   "access_token_ttl": 60,        // optional, seconds, for access tokens (user and M2M)
//   "refresh_token_ttl": 86400,    // optional, seconds
//   "auto_consent": false,         // optional, skip the consent page; default false (provider), true (auth0)
//   "scopes": "openid profile email offline_access api:read",  // optional, static scopes
//   "clients": [                   // oidc-provider client metadata, passed through with defaults:
//     {                            //   grant_types ["authorization_code","refresh_token"], response_types ["code"]
//       "client_id": "basic-client", "client_secret": "s3cret",
//       "redirect_uris": ["http://127.0.0.1:5000/callback"],
//       "token_endpoint_auth_method": "client_secret_basic",   // or client_secret_post, none
//       "api_scopes": "read:connections"   // auth0 only, optional: which audience scopes this client may get
//     }                                    // (not oidc-provider metadata; stripped before registration)
//   ],
//   // auth0 role only:
//   "audience": "https://connector.test/api",   // the one API (resource indicator) access tokens are for
//   "api_scopes": "read:connections read:tokens delete:connections"   // scopes that API knows
// }
//
// Role "provider": a strict third-party OAuth provider. PKCE S256 required for every
// client, refresh tokens always issued and rotated on every use (reuse of a rotated one
// revokes the grant: oidc-provider's own behaviour), revocation + introspection on,
// opaque access tokens, a protected resource GET /api/me, counters at GET /test/stats:
//   {"token": {"authorization_code": n, "refresh_token": n, ...},   // token calls per grant type
//    "token_error": {...same keys, failed calls only...},
//    "revocation": n, "grant_revoked": n, "api_me": n}
// and the token values it issued per account at GET /test/tokens?sub=<account>:
//   {"access_token": [...], "refresh_token": [...]}   // oldest first
// Clients must authenticate with their registered method (oidc-provider itself would
// accept client_secret_basic and client_secret_post interchangeably).
//
// Role "auth0": an Auth0 stand-in. Issuer has a trailing slash like Auth0's
// ("http://127.0.0.1:<port>/"), Auth0's endpoint paths (/authorize, /oauth/token,
// /.well-known/jwks.json, ...), RS256 JWT access tokens for "audience" (the
// `audience` parameter is accepted like Auth0's, as is RFC 8707 `resource`, and
// it defaults to the configured audience), client_credentials tokens carry
// gty "client-credentials" and sub "<client_id>@clients", user subs are "auth0|<username>".
//
// Both roles: login page (any username, password "pass") and consent page, plain HTML
// forms with stable ids #username #password #login #allow #deny.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { role } = cfg;
if (role !== 'provider' && role !== 'auth0') throw new Error(`unknown role ${role}`);
const isAuth0 = role === 'auth0';
const accessTokenTTL = cfg.access_token_ttl ?? 60;
const autoConsent = cfg.auto_consent ?? isAuth0;

// Listen first (port 0 = ephemeral), so the issuer can carry the real port and
// there is no free-port race; the handler is attached once the Provider exists.
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(cfg.port ?? 0, '127.0.0.1', resolve);
});
const { port } = server.address();
const base = `http://127.0.0.1:${port}`;
// Real Auth0 issuers are "https://{domain}/" (trailing slash) and clients compare iss verbatim.
const issuer = isAuth0 ? `${base}/` : base;

// A fresh RS256 signing key per run: tests must fetch keys from jwks_uri, never hardcode them.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = {
  ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig',
};

// Per-client allowed audience scopes (auth0), kept out of oidc-provider's client metadata.
const clientApiScopes = new Map();
const clients = (cfg.clients ?? []).map(({ api_scopes: apiScopes, ...meta }) => {
  if (apiScopes !== undefined) clientApiScopes.set(meta.client_id, apiScopes);
  const grantTypes = meta.grant_types ?? ['authorization_code', 'refresh_token'];
  const machineOnly = grantTypes.every((g) => g === 'client_credentials');
  return {
    grant_types: grantTypes,
    response_types: machineOnly ? [] : ['code'],
    redirect_uris: machineOnly ? [] : undefined,
    ...meta,
  };
});

// Counters for GET /test/stats (a test-only window into what the client really did).
const stats = {
  token: {}, token_error: {}, revocation: 0, grant_revoked: 0, api_me: 0,
};
const bump = (obj, key) => { obj[key] = (obj[key] ?? 0) + 1; };
const apiHits = new Map();

const apiScopes = cfg.api_scopes ?? 'read:connections read:tokens delete:connections';
const username = (accountId) => (isAuth0 ? accountId.replace(/^auth0\|/, '') : accountId);

const configuration = {
  clients,
  jwks: { keys: [jwk] },
  // Distinct cookie names per instance: browsers share cookies across ports of one host.
  cookies: {
    names: {
      session: `${role}${port}_session`,
      interaction: `${role}${port}_interaction`,
      resume: `${role}${port}_interaction_resume`,
    },
    keys: [crypto.randomBytes(32).toString('base64url')],
  },
  scopes: (cfg.scopes ?? (isAuth0
    ? 'openid profile email offline_access'
    : 'openid profile email offline_access api:read')).split(' '),
  claims: {
    openid: ['sub'], profile: ['name', 'nickname'], email: ['email', 'email_verified'],
  },
  // ID tokens carry the requested profile/email claims (as Auth0's do), not only userinfo.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        const name = username(sub);
        return {
          sub, name, nickname: name, email: `${name}@example.test`, email_verified: true,
        };
      },
    };
  },
  pkce: { required: () => true }, // oidc-provider 9 only knows S256
  // Tokens must not die with the browser session at the party: the connector uses them later.
  expiresWithSession: () => false,
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: cfg.refresh_token_ttl ?? 86400,
    Grant: 14 * 86400,
    Interaction: 600,
    Session: 3600,
  },
  features: {
    devInteractions: { enabled: false }, // our own pages below, so tests control them
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: isAuth0 },
    resourceIndicators: isAuth0 ? {
      enabled: true,
      // Auth0 clients send `audience` instead of RFC 8707 `resource`; no value at all
      // means the configured audience, so user access tokens are always API JWTs.
      defaultResource: (ctx, client, oneOf) => oneOf
        ?? ctx.oidc.params?.audience ?? ctx.oidc.body?.audience ?? cfg.audience,
      // Also when `openid` is requested (else oidc-provider issues an opaque userinfo token).
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator, client) {
        if (indicator !== cfg.audience) throw new errors.InvalidTarget();
        let scope = apiScopes;
        if (clientApiScopes.has(client.clientId)) {
          const allowed = new Set(clientApiScopes.get(client.clientId).split(' '));
          scope = apiScopes.split(' ').filter((s) => allowed.has(s)).join(' ');
        }
        return {
          scope, audience: cfg.audience, accessTokenTTL, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
        };
      },
    } : { enabled: false },
  },
  extraParams: isAuth0 ? ['audience'] : [],
  ...(isAuth0 ? {
    routes: {
      authorization: '/authorize',
      token: '/oauth/token',
      revocation: '/oauth/revoke',
      userinfo: '/userinfo',
      jwks: '/.well-known/jwks.json',
      end_session: '/oidc/logout',
    },
    extraTokenClaims: (ctx, token) => (token.kind === 'ClientCredentials'
      ? { gty: 'client-credentials', azp: token.clientId }
      : { azp: token.clientId }),
    formats: {
      customizers: {
        // extraTokenClaims cannot override sub (oidc-provider writes it last), so do it here.
        jwt(ctx, token, jwt) {
          jwt.header = { typ: 'JWT' }; // Auth0's header typ, not RFC 9068's at+jwt
          if (token.kind === 'ClientCredentials') jwt.payload.sub = `${token.clientId}@clients`;
        },
      },
    },
  } : {
    // Strict provider: a refresh token on every code exchange, rotated on every use.
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
  }),
  // SPAs (public clients) may call the token endpoint cross-origin from their redirect origin.
  clientBasedCORS: (ctx, origin, client) => client.clientAuthMethod === 'none'
    && client.redirectUris.some((uri) => new URL(uri).origin === origin),
};

const provider = new Provider(issuer, configuration);

provider.on('grant.success', (ctx) => bump(stats.token, ctx.oidc.params.grant_type));
provider.on('grant.error', (ctx) => {
  const gt = ctx.oidc?.params?.grant_type ?? ctx.oidc?.body?.grant_type ?? 'unknown';
  bump(stats.token, gt);
  bump(stats.token_error, gt);
});
provider.on('grant.revoked', () => { stats.grant_revoked += 1; });

// Token values the provider issued, per account, oldest first (opaque tokens: the value is
// the jti). A test-only window so e2e tests can prove the connector never stores them in
// plaintext and that a revoked refresh token is really dead: GET /test/tokens?sub=<account>.
const issued = new Map();
const remember = (kind) => (token) => {
  if (!token?.accountId || !token.jti) return;
  if (!issued.has(token.accountId)) issued.set(token.accountId, { access_token: [], refresh_token: [] });
  const list = issued.get(token.accountId)[kind];
  if (!list.includes(token.jti)) list.push(token.jti);
};
provider.on('access_token.saved', remember('access_token'));
provider.on('refresh_token.saved', remember('refresh_token'));
provider.on('server_error', (ctx, err) => console.error('server_error', err));

// ---- our pages and endpoints (a middleware that runs before oidc-provider's routes) ----

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
const readForm = async (req) => new URLSearchParams(await readBody(req));

function loginPage(uid, details, error) {
  return page(`Sign in to ${role}`, `
<p>Client <code id="client">${esc(details.params.client_id)}</code> asks for <code id="scope">${esc(details.params.scope)}</code>.</p>
${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
  <label>Username <input id="username" name="username" autofocus required></label>
  <label>Password <input id="password" name="password" type="password" required></label>
  <button id="login" type="submit">Sign in</button>
</form>`);
}

function consentPage(uid, details) {
  return page(`Authorize ${details.params.client_id}`, `
<p>Signed in as <code id="account">${esc(details.session?.accountId)}</code>.
Client <code id="client">${esc(details.params.client_id)}</code> asks for <code id="scope">${esc(details.params.scope)}</code>.</p>
<form method="post" action="/interaction/${esc(uid)}/consent">
  <button id="allow" name="decision" value="allow" type="submit">Allow</button>
  <button id="deny" name="decision" value="deny" type="submit">Deny</button>
</form>`);
}

// Grants what the consent prompt says is missing (the pattern from oidc-provider's example).
async function grantConsent(details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return { consent: details.grantId ? {} : { grantId } };
}

async function finish(ctx, result) {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

async function interactions(ctx, uid, action) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const prompt = details.prompt.name;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');

  if (ctx.method === 'GET' && !action) {
    if (prompt === 'consent' && autoConsent) return finish(ctx, await grantConsent(details));
    ctx.body = prompt === 'login' ? loginPage(uid, details) : consentPage(uid, details);
    return undefined;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  const form = await readForm(ctx.req);

  if (action === 'login' && prompt === 'login') {
    const user = form.get('username')?.trim();
    if (!user || !/^[\w.@+-]+$/.test(user) || form.get('password') !== 'pass') {
      ctx.status = 401;
      ctx.body = loginPage(uid, details, 'Wrong username or password.');
      return undefined;
    }
    return finish(ctx, { login: { accountId: isAuth0 ? `auth0|${user}` : user } });
  }
  if (action === 'consent' && prompt === 'consent') {
    if (form.get('decision') === 'allow') return finish(ctx, await grantConsent(details));
    return finish(ctx, { error: 'access_denied', error_description: 'End-User denied the request' });
  }
  return ctx.throw(400, `unexpected ${action} during ${prompt} prompt`);
}

async function apiMe(ctx) {
  stats.api_me += 1;
  const [scheme, value] = (ctx.get('authorization') || '').split(' ');
  const token = scheme?.toLowerCase() === 'bearer' && value
    ? await provider.AccessToken.find(value) // undefined when unknown, revoked or expired
    : undefined;
  if (!token || token.isExpired) {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', value
      ? 'Bearer error="invalid_token", error_description="token is unknown, revoked or expired"'
      : 'Bearer error="invalid_token"');
    ctx.body = { error: 'invalid_token' };
    return;
  }
  const hits = (apiHits.get(token.accountId) ?? 0) + 1;
  apiHits.set(token.accountId, hits);
  ctx.body = {
    sub: token.accountId, scope: token.scope, client_id: token.clientId, hits,
  };
}

// Endpoints where clients authenticate (token, revocation, introspection).
const clientAuthPaths = new Set(['token', 'revocation', 'introspection']
  .map((route) => new URL(provider.urlFor(route)).pathname));
const tokenPath = new URL(provider.urlFor('token')).pathname;
const revocationPath = new URL(provider.urlFor('revocation')).pathname;
const authMethods = new Map(clients.map((c) => [c.client_id, c.token_endpoint_auth_method ?? 'client_secret_basic']));

function basicClientId(header) {
  const m = /^basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const user = Buffer.from(m[1], 'base64').toString('utf8').split(':')[0];
  return decodeURIComponent(user.replace(/\+/g, ' ')); // RFC 6749 2.3.1: form-encoded
}

// Runs before oidc-provider's own routes (Provider#use inserts ahead of them).
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && clientAuthPaths.has(ctx.path) && ctx.is('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(await readBody(ctx.req));
    if (ctx.path === revocationPath) stats.revocation += 1;

    // oidc-provider accepts client_secret_basic and client_secret_post interchangeably;
    // a strict provider only accepts the registered one, so connector bugs show up.
    const basicId = basicClientId(ctx.get('authorization'));
    const clientId = basicId ?? form.get('client_id');
    const used = basicId !== undefined ? 'client_secret_basic' : form.has('client_secret') ? 'client_secret_post' : 'none';
    const registered = authMethods.get(clientId);
    if (!isAuth0 && registered?.startsWith('client_secret_') && used !== registered) {
      ctx.status = 401;
      if (basicId !== undefined) ctx.set('WWW-Authenticate', 'Basic realm="token"');
      ctx.body = {
        error: 'invalid_client',
        error_description: `client authentication must use ${registered}, not ${used}`,
      };
      bump(stats.token, form.get('grant_type') ?? ctx.path);
      bump(stats.token_error, form.get('grant_type') ?? ctx.path);
      return undefined;
    }
    // Auth0: a client_credentials request without scope gets all scopes granted to the client.
    if (isAuth0 && ctx.path === tokenPath && form.get('grant_type') === 'client_credentials' && !form.get('scope')) {
      form.set('scope', clientApiScopes.get(clientId) ?? apiScopes);
    }
    // oidc-provider parses an already-consumed body from req.body (it logs a warning once).
    ctx.req.body = form.toString();
    return next();
  }

  const m = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|consent))?$/);
  if (m) return interactions(ctx, m[1], m[2]);
  if (ctx.path === '/api/me' && ctx.method === 'GET' && !isAuth0) return apiMe(ctx);
  if (ctx.path === '/test/tokens' && ctx.method === 'GET' && !isAuth0) {
    ctx.body = issued.get(ctx.query.sub) ?? { access_token: [], refresh_token: [] };
    return undefined;
  }
  if (ctx.path === '/test/stats' && ctx.method === 'GET') {
    ctx.body = stats;
    return undefined;
  }
  return next();
});

const koa = provider.callback();
handler = (req, res) => koa(req, res);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close(); server.closeAllConnections(); process.exit(0); });
}
process.stdout.write(`READY ${issuer}\n`);
