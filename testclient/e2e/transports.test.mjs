// Every transport the hub offers carries the Portos flow: the client is pinned
// to one transport at a time, with each hub protocol that transport can carry.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clientToken, HUB_PATH, HUB_URL, HttpTransportType, newTenant, publishOK, RESOURCES_CHANGED, resourceChanged,
  sameInstant, subscribed, withoutTimes,
} from "./helpers.mjs";

// offered returns negotiate's availableTransports: {name: transferFormats}.
async function offered() {
  const res = await fetch(`${HUB_URL}${HUB_PATH}/negotiate?negotiateVersion=1`, {
    method: "POST",
    headers: { authorization: `Bearer ${clientToken(newTenant())}` },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  return Object.fromEntries(body.availableTransports.map((t) => [t.transport, t.transferFormats]));
}

const transports = await offered();

for (const name of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
  for (const protocol of ["json", "msgpack"]) {
    const format = protocol === "json" ? "Text" : "Binary";
    const why = !transports[name] ? `the hub does not offer ${name}`
      : !transports[name].includes(format) ? `${name} does not carry ${format}` : undefined;
    test(`${name} + ${protocol}: subscribe, receive, unsubscribe`, { skip: why }, async (t) => {
      const tenant = newTenant();
      const req = { e: RESOURCES_CHANGED, r: [{ n: "devices" }] };
      const { connection, inbox } = await subscribed(t, { tenant, protocol, transport: HttpTransportType[name] }, req);
      const batch = [resourceChanged("devices", "created"), resourceChanged("tickets", "created"), resourceChanged("devices", "deleted")];
      await publishOK(tenant, batch);
      const got = await inbox.take(2);
      assert.deepEqual(got.map(withoutTimes), [batch[0], batch[2]].map(withoutTimes));
      sameInstant(got[0].ca, batch[0].ca);

      await connection.invoke("Unsubscribe", req);
      await connection.invoke("Subscribe", { e: RESOURCES_CHANGED, r: [{ n: "tickets" }] });
      const sentinel = resourceChanged("tickets", "updated");
      await publishOK(tenant, [resourceChanged("devices", "created"), sentinel]);
      assert.equal((await inbox.next()).r, sentinel.r);
      assert.equal(inbox.pending, 0);
    });
  }
}
