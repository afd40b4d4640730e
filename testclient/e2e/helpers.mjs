// Shared helpers for the end-to-end suite. The hub under test is given by
// NOTIFYHUB_URL (public listener), NOTIFYHUB_INTERNAL_URL (internal listener) and
// NOTIFYHUB_JWT_SECRET (its HS256 secret); `go test ./testclient/e2e` sets them.
import assert from "node:assert/strict";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

export { signalR, MessagePackHubProtocol };
export const { HttpTransportType } = signalR;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run the suite through 'go test ./testclient/e2e'`);
  return v.replace(/\/+$/, "");
}

export const HUB_URL = env("NOTIFYHUB_URL");
export const INTERNAL_URL = env("NOTIFYHUB_INTERNAL_URL");
const SECRET = env("NOTIFYHUB_JWT_SECRET");
export const HUB_PATH = "/signalr/v1/mainHub";

export const RESOURCES_CHANGED = "portos.resources.changed";
export const LICENCE_ACTIVATED = "portos.licence.activated";

// Every test gets its own tenant so that tests cannot see each other's traffic.
export const newTenant = () => `tenant-${randomUUID()}`;

// ---- tokens ----------------------------------------------------------------

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

// jwt signs claims with HS256. Claims set to undefined are dropped, which is how
// tests remove a default claim. exp defaults to five minutes from now.
export function jwt(claims, { secret = SECRET, alg = "HS256" } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const signingInput = `${b64url({ alg, typ: "JWT" })}.${b64url({ iat: now, exp: now + 300, ...claims })}`;
  const sig = alg === "none" ? "" : createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `${signingInput}.${sig}`;
}

export const clientToken = (tenant, claims = {}) =>
  jwt({ sub: "user-999", tenant_id: tenant, scope: "notifications.subscribe", ...claims });

export const publisherToken = (claims = {}) => jwt({ sub: "portos-api", scope: "notifications.publish", ...claims });

// ---- connections -----------------------------------------------------------

// connect builds a HubConnection the way the Portos document does, registers the
// OnEvent handler before start() (as the document prescribes) and starts it.
// The connection is stopped when test t ends. Returns {connection, inbox}.
export async function connect(t, { tenant, protocol = "json", transport, skipNegotiation, token, start = true } = {}) {
  const options = { accessTokenFactory: () => token ?? clientToken(tenant) };
  if (transport !== undefined) options.transport = transport;
  if (skipNegotiation) options.skipNegotiation = true;
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(HUB_URL + HUB_PATH, options)
    // Silent by default: expected failures (401s, rejected invocations) would
    // otherwise clutter the report. Set NOTIFYHUB_E2E_SIGNALR_LOG=debug to see the wire.
    .configureLogging(process.env.NOTIFYHUB_E2E_SIGNALR_LOG || "none");
  if (protocol === "msgpack") builder.withHubProtocol(new MessagePackHubProtocol());
  else if (protocol !== "json") builder.withHubProtocol(protocol); // a custom protocol instance
  const connection = builder.build();
  const inbox = new Inbox(connection);
  t.after(() => connection.stop());
  if (start) await connection.start();
  return { connection, inbox };
}

// subscribed connects and subscribes to each request in turn.
export async function subscribed(t, opts, ...requests) {
  const c = await connect(t, opts);
  for (const req of requests) await c.connection.invoke("Subscribe", req);
  return c;
}

// Inbox collects OnEvent notifications and hands them out in arrival order.
export class Inbox {
  #items = [];
  #read = 0;
  #wake = () => {};

  constructor(connection) {
    connection.on("OnEvent", (n) => {
      this.#items.push(n);
      this.#wake();
    });
  }

  // take waits for the next count notifications and returns them.
  async take(count = 1, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (this.#items.length - this.#read < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const got = this.#items.slice(this.#read).map((n) => n?.r);
        throw new Error(`timed out waiting for ${count} notification(s); got ${got.length}: ${JSON.stringify(got)}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => (clearTimeout(timer), resolve());
      });
    }
    const out = this.#items.slice(this.#read, this.#read + count);
    this.#read += count;
    return out;
  }

  async next(timeoutMs) {
    return (await this.take(1, timeoutMs))[0];
  }

  // Unread notifications.
  get pending() {
    return this.#items.length - this.#read;
  }
}

// expectOnlySentinel proves that nothing published before the sentinel reached
// this inbox: delivery is in publish order, so anything that leaked would arrive
// ahead of the sentinel. This replaces "wait and see that nothing comes".
export async function expectOnlySentinel(inbox, sentinel) {
  const got = await inbox.next();
  assert.equal(got.r, sentinel.r, `expected only the sentinel, first got ${JSON.stringify(got)}`);
  assert.equal(inbox.pending, 0);
}

// ---- publishing ------------------------------------------------------------

// publish POSTs to the internal API and returns {status, body}; body is parsed
// JSON when possible. A string body is sent verbatim (for malformed input);
// token null sends no Authorization header.
export async function publish(tenant, body, token = publisherToken()) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${INTERNAL_URL}/internal/v1/tenants/${encodeURIComponent(tenant)}/notifications`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

// publishOK publishes and asserts that everything was accepted.
export async function publishOK(tenant, notifications) {
  const res = await publish(tenant, notifications);
  const n = Array.isArray(notifications) ? notifications.length : 1;
  assert.equal(res.status, 202, `publish to ${tenant}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.accepted, n);
  return res;
}

// ---- notifications ---------------------------------------------------------

const ACTIONS = { created: 1, updated: 2, deleted: 3 };

// resourceChanged returns a complete portos.resources.changed notification shaped
// like the example in the Portos document, with a unique reference id `r` that
// tests use to tell notifications apart.
export function resourceChanged(n = "devices", action = "created", overrides = {}) {
  const id = randomBytes(12).toString("hex");
  return {
    e: RESOURCES_CHANGED,
    s: { c: "publisher-connection", u: { u: "SYSTEM", d: "SYSTEM", f: null } },
    r: `ref-${randomUUID()}`,
    ca: "2024-07-01T12:51:52.558Z",
    ea: null,
    p: {
      u: { u: "999", d: "BackOffice", f: "tickets.edit" },
      n,
      a: ACTIONS[action],
      i: { i: id, n, v: 7 },
      r: [{ id, name: `${n} #1`, total: 12.5, count: 3, tags: ["a", "b"], paid: false, note: null, nested: { x: [1, { y: "z" }] } }],
    },
    ...overrides,
  };
}

export function licenceActivated(p = { licence: "PRO", seats: 5, modules: ["pos", "stock"], trial: false }) {
  return { e: LICENCE_ACTIVATED, s: null, r: `ref-${randomUUID()}`, ca: new Date().toISOString(), ea: null, p };
}

// sameInstant asserts that got (an ISO string or a Date) is the instant of want.
export function sameInstant(got, want, message) {
  const ms = got instanceof Date ? got.getTime() : Date.parse(got);
  assert.equal(ms, Date.parse(want), message ?? `${got} is not ${want}`);
}

// withoutTimes returns n without ca and ea, for comparing the rest exactly.
export const withoutTimes = ({ ca, ea, ...rest }) => rest;

// ---- raw HTTP ----------------------------------------------------------------

// upgradeStatus attempts a bare WebSocket upgrade of the hub URL (as a
// skipNegotiation client does) and returns the HTTP status: 101 when the hub
// accepts it, otherwise what it answered instead. path defaults to the main hub.
export function upgradeStatus({ token, query = "", path = HUB_PATH } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
    };
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = http.get(HUB_URL + path + query, { headers });
    req.on("upgrade", (res, socket) => (socket.destroy(), resolve(res.statusCode)));
    req.on("response", (res) => (res.resume(), resolve(res.statusCode)));
    req.on("error", reject);
  });
}
