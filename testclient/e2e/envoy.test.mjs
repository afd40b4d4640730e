// The Envoy events API: token exchange (/events/connection_token,
// /events/subscription_token), channels joined with SubscribeChannel, and
// webhooks verified the way the README tells receivers to.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createHmac, timingSafeEqual } from "node:crypto";
import http from "node:http";
import {
  signalR, MessagePackHubProtocol, HUB_URL, HUB_PATH, INTERNAL_URL, jwt, newTenant, publishOK, resourceChanged, licenceActivated,
} from "./helpers.mjs";

// An identity provider's token for user of tenant.
const idpToken = (tenant, sub, scope = "notifications.subscribe") => jwt({ sub, tenant_id: tenant, scope });

// request sends method to the hub with an optional JSON body, as curl does
// in the document (a GET with a body, which fetch cannot send).
function request(method, url, token, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
    if (data !== undefined) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
    const req = http.request(url, { method, headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
    });
    req.on("error", reject);
    req.end(data);
  });
}

async function tokenFrom(path, token, body) {
  const res = await request("GET", HUB_URL + path, token, body);
  assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
  return res.body.token;
}

// connectAs connects the official client the way a browser app would: its
// accessTokenFactory exchanges the app's token for a hub connection token
// (and does so again on every reconnect).
async function connectAs(t, tenant, user, { msgpack = false } = {}) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(HUB_URL + HUB_PATH, {
      accessTokenFactory: async () => {
        const res = await fetch(`${HUB_URL}/events/connection_token`, {
          headers: { Accept: "application/json", Authorization: `Bearer ${idpToken(tenant, user)}` },
        });
        return (await res.json()).token;
      },
    })
    .configureLogging("none");
  if (msgpack) builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  const got = [];
  let wake = () => {};
  connection.on("OnEvent", (n) => { got.push(n); wake(); });
  t.after(() => connection.stop());
  await connection.start();
  // until returns the references received up to the sentinel "end".
  const until = async () => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const i = got.findIndex((n) => n.r === "end");
      if (i >= 0) return got.splice(0, i + 1).slice(0, -1).map((n) => n.r);
      if (Date.now() > deadline) throw new Error(`no sentinel; got ${JSON.stringify(got.map((n) => n.r))}`);
      await new Promise((r) => { const tm = setTimeout(r, 200); wake = () => (clearTimeout(tm), r()); });
    }
  };
  return { connection, until };
}

const shipment = (ref, route) => ({ ...resourceChanged("shipments", "updated"), r: ref, ...(route ? { route } : {}) });

test("Envoy: connection token, public and private channels with the official client", async (t) => {
  const tenant = `org_${newTenant()}`;
  const alice = await connectAs(t, tenant, "usr_alice");
  const bob = await connectAs(t, tenant, "usr_bob", { msgpack: true });
  const aliceChannel = `shipments:${tenant}#usr_alice`;

  // As the document's curl: GET with {"channel": ...} as the JSON body.
  const sub = await tokenFrom("/events/subscription_token", idpToken(tenant, "usr_alice"), { channel: aliceChannel });
  await alice.connection.invoke("SubscribeChannel", aliceChannel, sub);
  await bob.connection.invoke("SubscribeChannel", `shipments:${tenant}`);

  // Bob may neither get a token for Alice's channel nor join it without one, or with hers.
  const refused = await request("GET", `${HUB_URL}/events/subscription_token`, idpToken(tenant, "usr_bob"), { channel: aliceChannel });
  assert.equal(refused.status, 403);
  await assert.rejects(bob.connection.invoke("SubscribeChannel", aliceChannel), /private/);
  await assert.rejects(bob.connection.invoke("SubscribeChannel", aliceChannel, sub), /another channel or user/);

  await publishOK(tenant, [
    shipment("for-alice", { users: ["usr_alice"], private: true }),
    shipment("for-bob", { users: ["usr_bob"], private: true }),
    shipment("everyone"),
    shipment("end", { users: ["usr_alice"], private: true }),
  ]);
  await publishOK(tenant, [shipment("end")]);
  assert.deepEqual(await alice.until(), ["for-alice"], "Alice's private channel carries only her notifications");
  assert.deepEqual(await bob.until(), ["everyone"], "the public channel never carries private notifications");
});

test("Envoy: a channel of another tenant is 403, a hub token cannot be exchanged", async () => {
  const tenant = `org_${newTenant()}`;
  const res = await request("GET", `${HUB_URL}/events/subscription_token?channel=shipments:org_someone_else`, idpToken(tenant, "usr_a"));
  assert.equal(res.status, 403);
  assert.match(res.body.error, /another tenant/);
  const hubToken = await tokenFrom("/events/connection_token", idpToken(tenant, "usr_a"));
  assert.equal((await request("GET", `${HUB_URL}/events/connection_token`, hubToken)).status, 403);
});

test("Envoy: provision, then a webhook whose signature verifies as the README shows", async (t) => {
  const tenant = `org_${newTenant()}`;
  const admin = idpToken(tenant, "usr_admin", "events.admin notifications.subscribe");
  const provisioned = await request("GET", `${HUB_URL}/events/provision`, admin);
  assert.equal(provisioned.status, 200);
  assert.equal(provisioned.body.provisioned, true);

  const received = [];
  let wake = () => {};
  const receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { received.push({ headers: req.headers, body }); res.writeHead(204).end(); wake(); });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  t.after(() => receiver.close());

  const created = await request("POST", `${INTERNAL_URL}/internal/v1/tenants/${tenant}/webhooks`, admin,
    { url: `http://127.0.0.1:${receiver.address().port}/hooks`, events: ["portos.licence.activated"] });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { secret } = created.body;

  const n = licenceActivated();
  await publishOK(tenant, [n]);
  const deadline = Date.now() + 10_000;
  while (received.length === 0 && Date.now() < deadline) await new Promise((r) => { setTimeout(r, 200); wake = r; });
  assert.equal(received.length, 1);

  // The README's receiver snippet.
  const { headers, body } = received[0];
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = `${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`;
  const expected = createHmac("sha256", key).update(signed).digest("base64");
  const ok = headers["webhook-signature"].split(" ").some((s) => {
    const [version, sig] = s.split(",");
    return version === "v1" && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
  });
  assert.ok(ok, "the signature verifies");
  assert.ok(Math.abs(Date.now() / 1000 - Number(headers["webhook-timestamp"])) < 300);

  const event = JSON.parse(body);
  assert.equal(event.id, headers["webhook-id"]);
  assert.equal(event.type, "portos.licence.activated");
  assert.equal(event.tenantId, tenant);
  assert.deepEqual(event.data.p, n.p);
  assert.equal(event.data.r, n.r);

  const gone = await request("GET", `${HUB_URL}/events/deprovision`, admin);
  assert.equal(gone.status, 200);
  assert.equal(gone.body.webhooksDeleted, 1);
});
