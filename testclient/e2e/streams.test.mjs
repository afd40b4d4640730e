// The Salto KS Connect and Clay stream endpoints, driven exactly as the
// samples in their documents connect: skipNegotiation, WebSockets, and a
// ReceiveMessage handler taking one string (the notification as JSON).
import assert from "node:assert/strict";
import { test } from "node:test";
import { randomUUID } from "node:crypto";
import {
  signalR, MessagePackHubProtocol, HUB_URL, HUB_PATH, jwt, clientToken, newTenant, publishOK, upgradeStatus,
} from "./helpers.mjs";

const ENTRY = "access.entry";
const INCIDENT = "access.incident";

// saltoToken is a token as the Salto identity server would issue it: the
// user_api.full_access scope and the user's role at each site.
const saltoToken = (tenant, sub, siteRoles) =>
  jwt({ sub, tenant_id: tenant, scope: "user_api.full_access", site_roles: siteRoles });

// clayToken is a hub client token with the user's role at each collection
// (site); "*" holds at every one.
const clayToken = (tenant, siteRoles) => clientToken(tenant, { site_roles: siteRoles });

// connectStream connects like the samples and collects ReceiveMessage strings.
async function connectStream(t, path, token, { msgpack = false } = {}) {
  const url = HUB_URL + path;
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, {
      accessTokenFactory: () => token,
      skipNegotiation: true,
      transport: signalR.HttpTransportType.WebSockets,
    })
    .configureLogging("none");
  if (msgpack) builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  const messages = [];
  let wake = () => {};
  connection.on("ReceiveMessage", (message) => {
    // incident or entry message
    assert.equal(typeof message, "string", "ReceiveMessage takes one string");
    messages.push(JSON.parse(message));
    wake();
  });
  t.after(() => connection.stop());
  await connection.start();
  // refs returns the references received up to (not including) the sentinel "end".
  const refs = async () => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const i = messages.findIndex((m) => m.r === "end");
      if (i >= 0) return messages.splice(0, i + 1).slice(0, -1).map((m) => m.r);
      if (Date.now() > deadline) throw new Error(`no end sentinel; got ${JSON.stringify(messages.map((m) => m.r))}`);
      await new Promise((r) => { const tm = setTimeout(r, 200); wake = () => (clearTimeout(tm), r()); });
    }
  };
  return { connection, refs, messages };
}

const note = (e, r, site, users) => ({ e, r, p: { door: "front", r }, route: { site, ...(users ? { users } : {}) } });
// sentinels end every stream's expected sequence: delivery is in publish order.
const sentinels = (sites) => sites.flatMap((s) => [note(ENTRY, "end", s, ["*"]), note(INCIDENT, "end", s)]);

test("Salto: site, site-user and incident streams receive exactly their events", async (t) => {
  const tenant = newTenant();
  const admin = saltoToken(tenant, "admin-1", { "site-a": "site_admin" });
  const alice = saltoToken(tenant, "alice", { "site-a": "site_user" });
  const site = await connectStream(t, "/v1/hub/entries?site_id=site-a", admin);
  const mine = await connectStream(t, "/v1/hub/entries?site_id=site-a&user_id=alice", alice);
  const incidents = await connectStream(t, "/v1/hub/incidents?site_id=site-a", admin, { msgpack: true });
  await publishOK(tenant, [
    note(ENTRY, "a-alice", "site-a", ["alice"]),
    note(ENTRY, "a-bob", "site-a", ["bob"]),
    note(ENTRY, "b-alice", "site-b", ["alice"]),
    note(INCIDENT, "a-incident", "site-a"),
    note(ENTRY, "end", "site-a", ["alice"]),
    note(INCIDENT, "end", "site-a"),
  ]);
  assert.deepEqual(await site.refs(), ["a-alice", "a-bob"]);
  assert.deepEqual(await mine.refs(), ["a-alice"], "a Site User never receives another user's entries");
  assert.deepEqual(await incidents.refs(), ["a-incident"]);
  assert.deepEqual(site.messages, [], "nothing after the sentinel");
});

test("Salto: roles decide who may connect (403), site_id is required (400), tokens are checked (401)", async () => {
  const tenant = newTenant();
  const alice = saltoToken(tenant, "alice", { "site-a": "site_user" });
  const admin = saltoToken(tenant, "admin-1", { "site-a": "site_admin" });
  const cases = [
    ["/v1/hub/entries", "?site_id=site-a", alice, 403, "a Site User is refused the site stream"],
    ["/v1/hub/entries", "?site_id=site-a&user_id=bob", alice, 403, "a Site User is refused another user's stream"],
    ["/v1/hub/incidents", "?site_id=site-b", admin, 403, "an admin of site A is refused site B"],
    ["/v1/hub/entries", "", admin, 400, "site_id is required"],
    ["/v1/hub/entries", "?site_id=site-a", clientToken(tenant), 403, "the user_api.full_access scope is required"],
    ["/v1/hub/entries", "?site_id=site-a", undefined, 401, "a token is required"],
    ["/v1/hub/entries", "?site_id=site-a", jwt({ sub: "x", tenant_id: tenant, scope: "user_api.full_access", exp: 1 }), 401, "expired token"],
    ["/v1/hub/entries", "?site_id=site-a&user_id=alice", alice, 101, "a Site User is served their own stream"],
    ["/v1/hub/entries", "?site_id=site-a", admin, 101, "a Site Admin is served the site stream"],
    ["/hub/entry", "", clayToken(tenant, { "site-a": "site_admin" }), 403, "Clay: all collections need a role at every site"],
    ["/hub/entry", "?collectionId=site-a", clayToken(tenant, { "site-a": "site_user" }), 403, "Clay: a Site User is refused the collection"],
    ["/hub/incident", "?collectionId=site-a", clayToken(tenant, { "site-a": "site_admin" }), 101, "Clay: a Site Admin is served the collection"],
  ];
  for (const [path, query, token, want, why] of cases) {
    assert.equal(await upgradeStatus({ path, query, token }), want, why);
  }
});

test("Salto: the official client's start() fails for a refused stream", async (t) => {
  const tenant = newTenant();
  const alice = saltoToken(tenant, "alice", { "site-a": "site_user" });
  await assert.rejects(connectStream(t, "/v1/hub/entries?site_id=site-a", alice));
});

test("Clay: all entries, and one collection's entries", async (t) => {
  const tenant = newTenant();
  const all = await connectStream(t, "/hub/entry", clayToken(tenant, { "*": "site_super_user" }));
  const token = clayToken(tenant, { "site-b": "site_admin" });
  const coll = await connectStream(t, "/hub/entry?collectionId=site-b", token);
  const incidents = await connectStream(t, `/hub/incident?collectionId=site-b&access_token=${token}`, token);
  await publishOK(tenant, [
    note(ENTRY, "a-1", "site-a"),
    note(ENTRY, "b-1", "site-b", ["alice"]),
    note(INCIDENT, "b-incident", "site-b"),
    ...sentinels(["site-b"]),
  ]);
  assert.deepEqual(await all.refs(), ["a-1", "b-1"]);
  assert.deepEqual(await coll.refs(), ["b-1"]);
  assert.deepEqual(await incidents.refs(), ["b-incident"]);
});

test("streams: a tenant never receives another tenant's entries", async (t) => {
  const a = newTenant();
  const b = newTenant();
  const adminA = saltoToken(a, "admin", { "site-1": "site_admin" });
  const salto = await connectStream(t, "/v1/hub/entries?site_id=site-1", adminA);
  const clay = await connectStream(t, "/hub/entry", clayToken(a, { "*": "site_admin" }));
  await publishOK(b, [note(ENTRY, `b-${randomUUID()}`, "site-1")]);
  await publishOK(a, [note(ENTRY, "end", "site-1")]);
  assert.deepEqual(await salto.refs(), []);
  assert.deepEqual(await clay.refs(), []);
});

test("the main hub refuses the events the stream endpoints serve by site role", async (t) => {
  const tenant = newTenant();
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(HUB_URL + HUB_PATH, { accessTokenFactory: () => clientToken(tenant) })
    .configureLogging("none")
    .build();
  t.after(() => connection.stop());
  await connection.start();
  await assert.rejects(connection.invoke("Subscribe", { e: ENTRY }), /site roles/);
  await assert.rejects(connection.invoke("SubscribeChannel", `${INCIDENT}:${tenant}`), /site roles/);
  await connection.invoke("Subscribe", { e: "portos.licence.activated" }); // still served
});
