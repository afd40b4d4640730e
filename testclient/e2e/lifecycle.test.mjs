// The life of a connection on each transport, as the official client lives
// it: the hub counts it while it is up, stop() ends it cleanly on both sides,
// a Close from the hub reaches the client, and a MessagePack client that may
// not use WebSockets falls back past Server-Sent Events to long polling.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clientToken, connect, HttpTransportType, INTERNAL_URL, newTenant, publishOK, RESOURCES_CHANGED, resourceChanged,
} from "./helpers.mjs";

const hubProtocol = { json: "json", msgpack: "messagepack" };

// openConnections reads the hub's notifyhub_connections gauge for one
// transport and protocol.
async function openConnections(transport, protocol) {
  const text = await (await fetch(`${INTERNAL_URL}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith("notifyhub_connections{") && l.includes(`transport="${transport}"`) && l.includes(`protocol="${hubProtocol[protocol]}"`));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function eventually(what, cond, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// closed resolves with the error onclose reports (undefined for a clean stop).
const closed = (connection) => new Promise((resolve) => connection.onclose(resolve));

for (const [name, protocol] of [["ServerSentEvents", "json"], ["LongPolling", "json"], ["LongPolling", "msgpack"], ["WebSockets", "json"]]) {
  test(`${name} + ${protocol}: the hub holds the connection while it is up, and stop() ends it cleanly`, async (t) => {
    const before = await openConnections(name, protocol);
    const tenant = newTenant();
    const { connection, inbox } = await connect(t, { tenant, protocol, transport: HttpTransportType[name] });
    await connection.invoke("Subscribe", { e: RESOURCES_CHANGED });
    await eventually("the hub counts the connection", async () => (await openConnections(name, protocol)) === before + 1);
    const sent = resourceChanged("devices", "created");
    await publishOK(tenant, sent);
    assert.equal((await inbox.next()).r, sent.r);

    const onclose = closed(connection);
    await connection.stop();
    assert.equal(await onclose, undefined, "stop() must close without an error");
    await eventually("the hub lets the connection go", async () => (await openConnections(name, protocol)) === before);
  });
}

for (const [name, protocol] of [["ServerSentEvents", "json"], ["LongPolling", "json"], ["LongPolling", "msgpack"]]) {
  test(`${name} + ${protocol}: a Close from the hub reaches the client (token expiry)`, async (t) => {
    const tenant = newTenant();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const { connection } = await connect(t, { tenant, protocol, transport: HttpTransportType[name], start: false, token: clientToken(tenant, { exp }) });
    const onclose = closed(connection);
    await connection.start();
    const err = await onclose;
    assert.match(String(err), /Server returned an error on close: .*access token has expired/);
  });
}

test("MessagePack without WebSockets skips Server-Sent Events (text only) and runs on long polling", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, {
    tenant, protocol: "msgpack", transport: HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling,
  });
  assert.equal(connection.connection.transport?.constructor?.name, "LongPollingTransport");
  await connection.invoke("Subscribe", { e: RESOURCES_CHANGED });
  const sent = resourceChanged("tickets", "updated");
  await publishOK(tenant, sent);
  assert.equal((await inbox.next()).r, sent.r);
});
