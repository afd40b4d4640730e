// Delivery guarantees: publish order, exactly once, expiry, tenant isolation and
// fan-out to every matching connection.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  expectOnlySentinel, newTenant, publishOK, RESOURCES_CHANGED, resourceChanged, subscribed,
} from "./helpers.mjs";

const all = { e: RESOURCES_CHANGED };
const inAnHour = () => new Date(Date.now() + 3600_000).toISOString();

test("50 notifications published as one array arrive once each, in order", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, all);
  const batch = Array.from({ length: 50 }, (_, i) =>
    resourceChanged(i % 2 ? "tickets" : "devices", ["created", "updated", "deleted"][i % 3], { r: `order-${i}` }));
  await publishOK(tenant, batch);
  assert.deepEqual((await inbox.take(50)).map((n) => n.r), batch.map((n) => n.r));
  // A duplicate of any of them would arrive before this one.
  const sentinel = resourceChanged("devices", "created");
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
});

test("separate publishes keep their order", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, all);
  const sent = [];
  for (let i = 0; i < 10; i++) {
    const n = resourceChanged("devices", "updated", { r: `seq-${i}` });
    sent.push(n.r);
    await publishOK(tenant, n);
  }
  assert.deepEqual((await inbox.take(10)).map((n) => n.r), sent);
});

test("an expired notification is accepted but never delivered", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, all);
  const expired = resourceChanged("devices", "created", { ea: new Date(Date.now() - 60_000).toISOString() });
  await publishOK(tenant, expired);
  const live = resourceChanged("devices", "created", { ea: inAnHour() });
  await publishOK(tenant, [resourceChanged("devices", "updated", { ea: "2000-01-01T00:00:00Z" }), live]);
  const got = await inbox.next();
  assert.equal(got.r, live.r, "only the unexpired notification arrives");
  assert.equal(Date.parse(got.ea), Date.parse(live.ea));
  assert.equal(inbox.pending, 0);
});

test("tenant isolation: a notification for tenant A never reaches tenant B", async (t) => {
  const [a, b] = [newTenant(), newTenant()];
  const { inbox: inboxA } = await subscribed(t, { tenant: a }, all);
  const { inbox: inboxB } = await subscribed(t, { tenant: b }, all);
  const forA = resourceChanged("devices", "created");
  await publishOK(a, forA);
  assert.equal((await inboxA.next()).r, forA.r);
  // B's delivery path works, and had B got forA it would have come first.
  const forB = resourceChanged("devices", "created");
  await publishOK(b, forB);
  await expectOnlySentinel(inboxB, forB);
  assert.equal(inboxA.pending, 0);
});

test("every matching connection of the tenant receives the notification", async (t) => {
  const tenant = newTenant();
  const clients = await Promise.all([
    subscribed(t, { tenant }, all),
    subscribed(t, { tenant }, { e: RESOURCES_CHANGED, r: [{ n: "devices" }] }),
    subscribed(t, { tenant }, { e: RESOURCES_CHANGED, r: [{ n: "devices", a: ["updated"] }] }),
  ]);
  const sent = resourceChanged("devices", "updated");
  await publishOK(tenant, sent);
  for (const { inbox } of clients) assert.equal((await inbox.next()).r, sent.r);
});

// The hub must drop a closed connection from its index without disturbing
// delivery to the rest of the tenant.
test("publishing after a connection stopped still reaches the others", async (t) => {
  const tenant = newTenant();
  const gone = await subscribed(t, { tenant }, all);
  const stays = await subscribed(t, { tenant }, all);
  await gone.connection.stop();
  const sent = resourceChanged("devices", "created");
  await publishOK(tenant, sent);
  assert.equal((await stays.inbox.next()).r, sent.r);
});
