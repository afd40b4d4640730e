// Input validation of the internal publish API: 400 names the bad field, 413
// guards the size limit, and a bad batch delivers nothing.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  expectOnlySentinel, licenceActivated, newTenant, publish, publishOK, RESOURCES_CHANGED, resourceChanged, subscribed,
} from "./helpers.mjs";

// The hub's default body limit (server config: 1 MiB).
const BODY_LIMIT = 1 << 20;

const good = () => resourceChanged("devices", "created");
const withPayload = (p) => ({ ...good(), p: { ...good().p, ...p } });
const without = (obj, key) => Object.fromEntries(Object.entries(obj).filter(([k]) => k !== key));

// [name, body, field]: each must be refused with 400 and {error, field}.
const invalid = [
  ["unknown event", { ...good(), e: "portos.nope" }, "e"],
  ["missing e", without(good(), "e"), "e"],
  ["e of the wrong type", { ...good(), e: 5 }, "e"],
  ["action 7", withPayload({ a: 7 }), "p.a"],
  ["action 0", withPayload({ a: 0 }), "p.a"],
  ["action as a string", withPayload({ a: "created" }), "p.a"],
  ["missing p.a", { ...good(), p: without(good().p, "a") }, "p.a"],
  ["missing p.n", { ...good(), p: without(good().p, "n") }, "p.n"],
  ["p.n of the wrong type", withPayload({ n: ["devices"] }), "p.n"],
  ["missing payload of a resource event", without(good(), "p"), "p"],
  ["ea that is not a date", { ...good(), ea: "tomorrow" }, "ea"],
  ["ca of the wrong type", { ...good(), ca: 1719838312 }, "ca"],
  ["array with one bad element", [good(), withPayload({ a: 7 }), good()], "[1].p.a"],
  ["array with a bad event", [good(), good(), { ...licenceActivated(), e: "nope" }], "[2].e"],
];

for (const [name, body, field] of invalid) {
  test(`400 for ${name}, naming field ${field}`, async () => {
    const res = await publish(newTenant(), body);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.field, field, JSON.stringify(res.body));
    assert.equal(typeof res.body.error, "string");
    assert.ok(res.body.error.length > 0);
  });
}

for (const [name, raw] of [
  ["malformed JSON", '{"e": "portos.resources.changed", '],
  ["a number instead of a notification", "42"],
  ["a string instead of a notification", '"portos.resources.changed"'],
  ["an array of strings", '["a", "b"]'],
  ["an empty body", ""],
]) {
  test(`400 for ${name}`, async () => {
    const res = await publish(newTenant(), raw);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(typeof res.body.error, "string", JSON.stringify(res.body));
  });
}

test("a batch with one bad element delivers none of it", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  const res = await publish(tenant, [good(), good(), withPayload({ a: 7 }), good()]);
  assert.equal(res.status, 400);
  assert.equal(res.body.field, "[2].p.a");
  const sentinel = good();
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
});

test("413 for a body over the size limit, and the hub still serves afterwards", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  const big = withPayload({ r: [{ blob: "x".repeat(BODY_LIMIT) }] });
  const res = await publish(tenant, big);
  assert.equal(res.status, 413);
  const sentinel = good();
  await publishOK(tenant, sentinel);
  await expectOnlySentinel(inbox, sentinel);
});

test("a body just under the size limit is accepted and delivered", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  const sent = withPayload({ r: [{ blob: "" }] });
  const room = BODY_LIMIT - JSON.stringify(sent).length - 1024;
  sent.p.r[0].blob = "y".repeat(room);
  await publishOK(tenant, sent);
  assert.equal((await inbox.next(10_000)).p.r[0].blob.length, room);
});

test("202 counts every accepted notification of a batch", async () => {
  const res = await publish(newTenant(), [good(), licenceActivated(), good()]);
  assert.deepEqual(res, { status: 202, body: { accepted: 3 } });
});
