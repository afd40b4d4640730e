// The Portos client document, step by step, with the official JavaScript client.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  connect, HttpTransportType, LICENCE_ACTIVATED, licenceActivated, newTenant, publishOK,
  RESOURCES_CHANGED, resourceChanged, sameInstant, withoutTimes,
} from "./helpers.mjs";

const allDeviceChanges = { e: RESOURCES_CHANGED, r: [{ n: "devices", a: ["created", "updated", "deleted"] }] };

// The transport the client settled on. HttpConnection.transport is not public
// API, but it is the only way to tell which transport negotiation picked.
const transportName = (connection) => connection.connection.transport?.constructor.name;

async function assertRoundTrip(tenant, connection, inbox) {
  await connection.invoke("Subscribe", allDeviceChanges);
  const sent = resourceChanged("devices", "updated");
  await publishOK(tenant, sent);
  const got = await inbox.next();
  assert.deepEqual(withoutTimes(got), withoutTimes(sent));
  assert.equal(typeof got.ca, "string", "JSON carries ca as an ISO string");
  sameInstant(got.ca, sent.ca);
  assert.equal(got.ea, null);
}

test("default options negotiate, pick WebSockets and deliver a subscribed notification intact", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { tenant });
  assert.equal(connection.state, "Connected");
  assert.match(connection.connectionId ?? "", /^[A-Za-z0-9_-]+$/, "negotiate issues a URL-safe connection id");
  assert.equal(transportName(connection), "WebSocketTransport");
  await assertRoundTrip(tenant, connection, inbox);
});

test("skipNegotiation with the WebSockets transport delivers a subscribed notification", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { tenant, skipNegotiation: true, transport: HttpTransportType.WebSockets });
  assert.equal(connection.state, "Connected");
  assert.equal(connection.connectionId, null, "no negotiate, so no connection id");
  await assertRoundTrip(tenant, connection, inbox);
});

test("the hub fills in ca when the publisher leaves it out", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { tenant });
  await connection.invoke("Subscribe", allDeviceChanges);
  const { ca, ...sent } = resourceChanged("devices", "created");
  const before = Date.now();
  await publishOK(tenant, sent);
  const got = await inbox.next();
  const at = Date.parse(got.ca);
  assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `ca ${got.ca} is not about now`);
});

test("licence activation: subscribe to the whole event and receive an arbitrary payload", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { tenant });
  await connection.invoke("Subscribe", { e: LICENCE_ACTIVATED });
  const sent = licenceActivated({ licence: "PRO", seats: 5, price: 99.9, modules: ["pos", { name: "stock", on: true }], expires: null });
  await publishOK(tenant, sent);
  const got = await inbox.next();
  assert.equal(got.e, LICENCE_ACTIVATED);
  assert.deepEqual(got.p, sent.p);
  assert.deepEqual(withoutTimes(got), withoutTimes(sent));
});
