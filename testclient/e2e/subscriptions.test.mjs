// Subscribe/Unsubscribe semantics: filters by resource and action, whole-event
// subscriptions, exact and idempotent removal. Each "nothing arrives" check
// publishes a sentinel afterwards: delivery keeps publish order, so a leak
// would show up ahead of the sentinel.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  expectOnlySentinel, LICENCE_ACTIVATED, licenceActivated, newTenant, publishOK, RESOURCES_CHANGED,
  resourceChanged, subscribed,
} from "./helpers.mjs";

const refs = (ns) => ns.map((n) => n.r);

test("resource and action filter: only tickets/created gets through", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED, r: [{ n: "tickets", a: ["created"] }] });
  const wanted = resourceChanged("tickets", "created");
  await publishOK(tenant, resourceChanged("tickets", "updated"));
  await publishOK(tenant, resourceChanged("devices", "created"));
  await publishOK(tenant, wanted);
  await expectOnlySentinel(inbox, wanted);
});

test("a resource without actions gets every action of that resource only", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED, r: [{ n: "tickets" }] });
  const batch = [
    resourceChanged("tickets", "created"),
    resourceChanged("devices", "created"),
    resourceChanged("tickets", "updated"),
    resourceChanged("tickets", "deleted"),
  ];
  await publishOK(tenant, batch);
  const sentinel = resourceChanged("tickets", "created");
  await publishOK(tenant, sentinel);
  assert.deepEqual(refs(await inbox.take(4)), refs([batch[0], batch[2], batch[3], sentinel]));
});

test("several resources in one request, each with its own actions", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, {
    e: RESOURCES_CHANGED,
    r: [{ n: "tickets", a: ["deleted"] }, { n: "devices", a: ["created", "updated"] }],
  });
  const batch = [
    resourceChanged("tickets", "created"), // no
    resourceChanged("tickets", "deleted"), // yes
    resourceChanged("devices", "deleted"), // no
    resourceChanged("devices", "updated"), // yes
    resourceChanged("users", "created"), // no
    resourceChanged("devices", "created"), // yes
  ];
  await publishOK(tenant, batch);
  assert.deepEqual(refs(await inbox.take(3)), refs([batch[1], batch[3], batch[5]]));
  const sentinel = resourceChanged("devices", "created");
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
});

test("a whole-event subscription (no r) gets every resource and action", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  const batch = [resourceChanged("devices", "created"), resourceChanged("tickets", "deleted"), resourceChanged("anything-else", "updated")];
  await publishOK(tenant, batch);
  assert.deepEqual(refs(await inbox.take(3)), refs(batch));
});

test("a subscription to one event does not receive another event", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: LICENCE_ACTIVATED });
  const sentinel = licenceActivated();
  await publishOK(tenant, [resourceChanged("devices", "created"), sentinel]);
  await expectOnlySentinel(inbox, sentinel);
});

test("overlapping subscriptions deliver a matching notification once", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant },
    { e: RESOURCES_CHANGED },
    { e: RESOURCES_CHANGED, r: [{ n: "devices" }] },
    { e: RESOURCES_CHANGED, r: [{ n: "devices", a: ["created"] }] });
  const once = resourceChanged("devices", "created");
  const sentinel = resourceChanged("tickets", "created");
  await publishOK(tenant, [once, sentinel]);
  assert.deepEqual(refs(await inbox.take(2)), refs([once, sentinel]));
  assert.equal(inbox.pending, 0);
});

test("Unsubscribe with the same parameters stops that delivery, others continue", async (t) => {
  const tenant = newTenant();
  const req = { e: RESOURCES_CHANGED, r: [{ n: "tickets", a: ["created"] }] };
  const { connection, inbox } = await subscribed(t, { tenant }, req, { e: LICENCE_ACTIVATED });
  const before = resourceChanged("tickets", "created");
  await publishOK(tenant, before);
  assert.equal((await inbox.next()).r, before.r);

  await connection.invoke("Unsubscribe", req);
  const sentinel = licenceActivated();
  await publishOK(tenant, resourceChanged("tickets", "created"));
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
});

test("Unsubscribe of a whole event stops it", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await subscribed(t, { tenant }, { e: LICENCE_ACTIVATED }, { e: RESOURCES_CHANGED });
  await connection.invoke("Unsubscribe", { e: LICENCE_ACTIVATED });
  const sentinel = resourceChanged("devices", "created");
  await publishOK(tenant, [licenceActivated(), sentinel]);
  await expectOnlySentinel(inbox, sentinel);
});

test("Subscribe twice then Unsubscribe once removes the subscription (idempotent)", async (t) => {
  const tenant = newTenant();
  const req = { e: RESOURCES_CHANGED, r: [{ n: "tickets", a: ["created", "updated"] }] };
  const { connection, inbox } = await subscribed(t, { tenant }, req, req, { e: LICENCE_ACTIVATED });
  const once = resourceChanged("tickets", "updated");
  await publishOK(tenant, once);
  assert.equal((await inbox.next()).r, once.r, "a doubled subscription still delivers once");

  await connection.invoke("Unsubscribe", req);
  const sentinel = licenceActivated();
  await publishOK(tenant, [resourceChanged("tickets", "created"), resourceChanged("tickets", "updated"), sentinel]);
  await expectOnlySentinel(inbox, sentinel);
});

test("Unsubscribe removes exactly what it names and nothing else", async (t) => {
  const tenant = newTenant();
  const tickets = { e: RESOURCES_CHANGED, r: [{ n: "tickets", a: ["created"] }] };
  const { connection, inbox } = await subscribed(t, { tenant }, tickets, { e: RESOURCES_CHANGED, r: [{ n: "devices" }] });
  await connection.invoke("Unsubscribe", tickets);
  await connection.invoke("Unsubscribe", tickets); // idempotent: a second removal is not an error
  await connection.invoke("Unsubscribe", { e: RESOURCES_CHANGED, r: [{ n: "never-subscribed" }] });
  const devices = resourceChanged("devices", "deleted");
  await publishOK(tenant, [resourceChanged("tickets", "created"), devices]);
  await expectOnlySentinel(inbox, devices);
});
