// Two hub nodes sharing one Redis backplane, driven by the official client.
// Node A is NOTIFYHUB_URL / NOTIFYHUB_INTERNAL_URL (as for the rest of the
// suite), node B is NOTIFYHUB_CLUSTER_B_URL / NOTIFYHUB_CLUSTER_B_INTERNAL_URL.
//
// `go test ./testclient/e2e -run Cluster` starts a redis-server and both nodes
// and runs this file. It is named *.e2e.mjs, not *.test.mjs, so that the
// single-node suite (and `npm test`) leave it out instead of skipping it; to
// run it against two nodes started by hand, set the variables above and run
// `node --test cluster.e2e.mjs`.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { test } from "node:test";
import {
  clientToken, HUB_PATH, HttpTransportType, Inbox, LICENCE_ACTIVATED, licenceActivated, MessagePackHubProtocol,
  newTenant, publish, publisherToken, RESOURCES_CHANGED, resourceChanged, sameInstant, signalR, withoutTimes,
} from "./helpers.mjs";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run the cluster suite through 'go test ./testclient/e2e -run Cluster'`);
  return v.replace(/\/+$/, "");
}

const A_URL = env("NOTIFYHUB_URL");
const B_URL = env("NOTIFYHUB_CLUSTER_B_URL");
const B_INTERNAL_URL = env("NOTIFYHUB_CLUSTER_B_INTERNAL_URL");

const all = { e: RESOURCES_CHANGED };
const licences = { e: LICENCE_ACTIVATED };

// connectTo connects the official client to the node at baseUrl, subscribes
// to each request and stops the connection when test t ends.
async function connectTo(t, baseUrl, { tenant, protocol = "json", transport, skipNegotiation }, ...requests) {
  const options = { accessTokenFactory: () => clientToken(tenant) };
  if (transport !== undefined) options.transport = transport;
  if (skipNegotiation) options.skipNegotiation = true;
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(baseUrl + HUB_PATH, options)
    .configureLogging(process.env.NOTIFYHUB_E2E_SIGNALR_LOG || "none");
  if (protocol === "msgpack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  const inbox = new Inbox(connection);
  t.after(() => connection.stop());
  await connection.start();
  for (const req of requests) await connection.invoke("Subscribe", req);
  return { connection, inbox };
}

// publishTo publishes on the node whose internal listener is internalUrl and
// requires a 202.
async function publishTo(internalUrl, tenant, body) {
  const res = await fetch(`${internalUrl}/internal/v1/tenants/${encodeURIComponent(tenant)}/notifications`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${publisherToken()}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `publish on ${internalUrl}: ${text}`);
}

const publishOnA = async (tenant, body) => {
  const res = await publish(tenant, body);
  assert.equal(res.status, 202, `publish on node A: ${JSON.stringify(res.body)}`);
};
const publishOnB = (tenant, body) => publishTo(B_INTERNAL_URL, tenant, body);

const clients = [
  { name: "WebSockets with skipNegotiation, JSON", transport: HttpTransportType.WebSockets, skipNegotiation: true },
  { name: "WebSockets, MessagePack", transport: HttpTransportType.WebSockets, protocol: "msgpack" },
  { name: "Server-Sent Events, JSON", transport: HttpTransportType.ServerSentEvents },
  { name: "Long Polling, MessagePack", transport: HttpTransportType.LongPolling, protocol: "msgpack" },
];

for (const c of clients) {
  test(`a notification published on node A reaches a client on node B (${c.name})`, async (t) => {
    const tenant = newTenant();
    const { inbox } = await connectTo(t, B_URL, { tenant, ...c }, all);
    const sent = resourceChanged("devices", "updated");
    await publishOnA(tenant, sent);
    const got = await inbox.next();
    assert.deepEqual(withoutTimes(got), withoutTimes(sent));
    sameInstant(got.ca, sent.ca);
    assert.equal(got.ea, null);
  });
}

test("a publisher spreading its requests over both nodes: every client gets each notification once, in order", async (t) => {
  const tenant = newTenant();
  const onA = await connectTo(t, A_URL, { tenant }, licences);
  const onB = await connectTo(t, B_URL, { tenant, protocol: "msgpack" }, licences);
  const sent = [];
  for (let i = 0; i < 20; i++) {
    const n = licenceActivated({ licence: `seq-${i}` });
    sent.push(n.r);
    // Each request is accepted before the next is made, so their order is
    // the publisher's, whichever node takes them.
    await (i % 2 ? publishOnB : publishOnA)(tenant, n);
  }
  const sentinel = licenceActivated({ licence: "sentinel" });
  await publishOnB(tenant, sentinel);
  sent.push(sentinel.r);
  for (const { inbox } of [onA, onB]) {
    assert.deepEqual((await inbox.take(sent.length)).map((n) => n.r), sent);
    assert.equal(inbox.pending, 0, "a duplicate would be pending after the sentinel");
  }
});

test("tenant isolation holds across nodes", async (t) => {
  const [x, y] = [newTenant(), newTenant()];
  const xOnB = await connectTo(t, B_URL, { tenant: x }, all);
  const yOnB = await connectTo(t, B_URL, { tenant: y }, all);
  await publishOnA(x, resourceChanged("devices", "created", { r: "for-x" }));
  await publishOnA(y, resourceChanged("devices", "created", { r: "for-y" }));
  assert.equal((await xOnB.inbox.next()).r, "for-x");
  assert.equal((await yOnB.inbox.next()).r, "for-y");
  assert.equal(xOnB.inbox.pending + yOnB.inbox.pending, 0);
});

// wsUpgradeStatus attempts a WebSocket upgrade of url and returns the HTTP
// status: 101 when accepted.
function wsUpgradeStatus(url, token) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      headers: {
        Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"), Authorization: `Bearer ${token}`,
      },
    });
    req.on("upgrade", (res, socket) => (socket.destroy(), resolve(res.statusCode)));
    req.on("response", (res) => (res.resume(), resolve(res.statusCode)));
    req.on("error", reject);
  });
}

// Why negotiated connections need sticky sessions: a negotiated connection
// lives on the node that negotiated it; the other node does not know its id,
// whatever the transport. WebSockets with skipNegotiation make a single
// request, so any node serves them.
test("a connection negotiated on node A is unknown to node B", async () => {
  const tenant = newTenant();
  const auth = { authorization: `Bearer ${clientToken(tenant)}` };
  const neg = await fetch(`${A_URL}${HUB_PATH}/negotiate?negotiateVersion=1`, { method: "POST", headers: auth });
  assert.equal(neg.status, 200);
  const { connectionToken } = await neg.json();
  const sse = await fetch(`${B_URL}${HUB_PATH}?id=${encodeURIComponent(connectionToken)}`, {
    headers: { ...auth, accept: "text/event-stream" },
  });
  await sse.body?.cancel();
  assert.equal(sse.status, 404, "Server-Sent Events on the other node");
  const poll = await fetch(`${B_URL}${HUB_PATH}?id=${encodeURIComponent(connectionToken)}`, { headers: auth });
  await poll.body?.cancel();
  assert.equal(poll.status, 404, "Long Polling on the other node");
  const ws = await wsUpgradeStatus(`${B_URL}${HUB_PATH}?id=${encodeURIComponent(connectionToken)}`, clientToken(tenant));
  assert.equal(ws, 404, "WebSockets on the other node");
});
