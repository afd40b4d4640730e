// Stateful reconnect (withStatefulReconnect): when the WebSocket drops without
// a close frame, the client opens a new one for the same connection, and the
// hub replays what the client has not acknowledged. Every notification must
// arrive exactly once and in publish order, with the same connection id and
// without the client noticing anything but a short pause.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clientToken, expectOnlySentinel, HUB_PATH, HUB_URL, HttpTransportType, Inbox, licenceActivated, newTenant,
  publishOK, RESOURCES_CHANGED, resourceChanged, signalR,
} from "./helpers.mjs";

const devices = { e: RESOURCES_CHANGED, r: [{ n: "devices" }] };

// statefulConnection starts a subscribed client with stateful reconnect over
// WebSockets and records every state change it reports.
async function statefulConnection(t, tenant) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(HUB_URL + HUB_PATH, { accessTokenFactory: () => clientToken(tenant), transport: HttpTransportType.WebSockets })
    .withStatefulReconnect()
    .configureLogging(process.env.NOTIFYHUB_E2E_SIGNALR_LOG || "none")
    .build();
  const inbox = new Inbox(connection);
  const events = [];
  connection.onclose((err) => events.push(`close: ${err}`));
  connection.onreconnecting((err) => events.push(`reconnecting: ${err}`));
  t.after(() => connection.stop());
  await connection.start();
  await connection.invoke("Subscribe", devices);
  return { connection, inbox, events };
}

// The client's transport (HttpConnection → WebSocketTransport → ws.WebSocket).
// These are internals of @microsoft/signalr 10.0.x, pinned in package.json.
function transportOf(connection) {
  const transport = connection.connection?.transport;
  assert.ok(transport?._webSocket, "the client's WebSocket is reachable (signalr internals changed?)");
  return transport;
}

// cut drops the client's socket the way a network failure does: the TCP
// connection is destroyed, no close frame is sent.
function cut(connection) {
  transportOf(connection)._webSocket.terminate();
}

// waitReattached waits until the client runs on a new socket again.
async function waitReattached(connection, old) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ws = connection.connection?.transport?._webSocket;
    if (ws && ws !== old && ws.readyState === ws.OPEN) return;
    assert.ok(Date.now() < deadline, "the client did not reattach within 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const batchOf = (n) => Array.from({ length: n }, () => resourceChanged("devices", "updated"));

test("stateful reconnect: negotiate agrees and the connection survives cut sockets, nothing lost or doubled", async (t) => {
  const tenant = newTenant();
  const { connection, inbox, events } = await statefulConnection(t, tenant);
  assert.equal(connection.connection.features.reconnect, true, "the client did not enable stateful reconnect");
  const id = connection.connectionId;

  // Publish in batches and cut the socket three times while notifications
  // are on their way.
  const sent = [];
  for (let b = 0; b < 12; b++) {
    const batch = batchOf(8);
    sent.push(...batch);
    const published = publishOK(tenant, batch);
    if (b % 4 === 1) cut(connection);
    await published;
  }
  const got = await inbox.take(sent.length, 30_000);
  assert.deepEqual(got.map((n) => n.r), sent.map((n) => n.r));

  // Nothing arrives twice: the next notification is the sentinel.
  const sentinel = resourceChanged("devices", "deleted");
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);

  assert.equal(connection.state, signalR.HubConnectionState.Connected);
  assert.equal(connection.connectionId, id, "the connection id changed: it was a new connection, not a reattach");
  assert.deepEqual(events, [], "stateful reconnect must be invisible to the app");
  // Invocations keep working on the reattached connection.
  await connection.invoke("Unsubscribe", devices);
  const licence = licenceActivated();
  await connection.invoke("Subscribe", { e: licence.e });
  await publishOK(tenant, [resourceChanged("devices", "created"), licence]);
  await expectOnlySentinel(inbox, licence);
});

test("stateful reconnect: notifications published while the socket is down are replayed in order", async (t) => {
  const tenant = newTenant();
  const { connection, inbox, events } = await statefulConnection(t, tenant);
  const before = batchOf(5);
  await publishOK(tenant, before);
  await inbox.take(before.length);

  // Hold the client's reconnect back so that the hub has to buffer what is
  // published meanwhile (the server notices the drop and waits for the reattach).
  const transport = transportOf(connection);
  const connect = transport.connect.bind(transport);
  let release;
  const held = new Promise((resolve) => (release = resolve));
  transport.connect = async (...args) => (await held, connect(...args));
  const old = transport._webSocket;
  cut(connection);

  const during = [];
  for (let b = 0; b < 5; b++) {
    const batch = batchOf(10);
    during.push(...batch);
    await publishOK(tenant, batch);
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(inbox.pending, 0, "nothing can arrive while the socket is down");
  release();
  await waitReattached(connection, old);

  const got = await inbox.take(during.length, 20_000);
  assert.deepEqual(got.map((n) => n.r), during.map((n) => n.r));
  const sentinel = resourceChanged("devices", "deleted");
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
  assert.deepEqual(events, []);
});

test("stateful reconnect: invocations sent while the socket is down are delivered once", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await statefulConnection(t, tenant);
  const transport = transportOf(connection);
  const connect = transport.connect.bind(transport);
  let release;
  const held = new Promise((resolve) => (release = resolve));
  transport.connect = async (...args) => (await held, connect(...args));
  const old = transport._webSocket;
  cut(connection);

  // The client buffers these and resends them after its Sequence message.
  const licence = licenceActivated();
  const subscribing = connection.invoke("Subscribe", { e: licence.e });
  const unsubscribing = connection.invoke("Unsubscribe", devices);
  await new Promise((r) => setTimeout(r, 100));
  release();
  await waitReattached(connection, old);
  await Promise.all([subscribing, unsubscribing]);

  await publishOK(tenant, [resourceChanged("devices", "created"), licence]);
  await expectOnlySentinel(inbox, licence);
});
