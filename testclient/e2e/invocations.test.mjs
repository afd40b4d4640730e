// Bad hub invocations are answered with an error the caller can act on, and
// never cost the connection.
import assert from "node:assert/strict";
import { test } from "node:test";
import { connect, newTenant, publishOK, RESOURCES_CHANGED, resourceChanged } from "./helpers.mjs";

const devices = { e: RESOURCES_CHANGED, r: [{ n: "devices" }] };

// [name, method, args, message pattern]
const bad = [
  ["unknown method", "Publish", [devices], /does not exist/],
  ["Subscribe without arguments", "Subscribe", [], /argument/],
  ["Subscribe with two arguments", "Subscribe", [devices, devices], /argument/],
  ["Unsubscribe without arguments", "Unsubscribe", [], /argument/],
  ["a string instead of a request", "Subscribe", ["portos.resources.changed"], /Subscribe/],
  ["null request", "Subscribe", [null], /Subscribe/],
  ["e of the wrong type", "Subscribe", [{ e: 5 }], /Subscribe/],
  ["missing e", "Subscribe", [{ r: [{ n: "devices" }] }], /Subscribe/],
  ["r of the wrong type", "Subscribe", [{ e: RESOURCES_CHANGED, r: "devices" }], /Subscribe/],
  ["unknown event", "Subscribe", [{ e: "portos.nope" }], /unknown event/],
  ["unknown event on Unsubscribe", "Unsubscribe", [{ e: "portos.nope" }], /unknown event/],
  ["unknown action", "Subscribe", [{ e: RESOURCES_CHANGED, r: [{ n: "devices", a: ["created", "renamed"] }] }], /unknown action/],
  ["action as a number", "Subscribe", [{ e: RESOURCES_CHANGED, r: [{ n: "devices", a: [1] }] }], /Subscribe/],
];

for (const [name, method, args, message] of bad) {
  test(`${name}: invoke rejects and the connection stays usable`, async (t) => {
    const tenant = newTenant();
    const { connection, inbox } = await connect(t, { tenant });
    const err = await connection.invoke(method, ...args).then(
      (v) => assert.fail(`invoke resolved with ${JSON.stringify(v)}`),
      (e) => e,
    );
    assert.ok(err instanceof Error);
    assert.match(err.message, message);
    assert.equal(connection.state, "Connected");

    await connection.invoke("Subscribe", devices);
    const sent = resourceChanged("devices", "deleted");
    await publishOK(tenant, sent);
    assert.equal((await inbox.next()).r, sent.r);
  });
}

test("a rejected Subscribe leaves earlier subscriptions intact and adds nothing", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { tenant });
  await connection.invoke("Subscribe", devices);
  // The valid first resource must not be half-applied when the second is bad.
  await assert.rejects(connection.invoke("Subscribe", {
    e: RESOURCES_CHANGED, r: [{ n: "tickets" }, { n: "users", a: ["nope"] }],
  }), /unknown action/);
  const sentinel = resourceChanged("devices", "created");
  await publishOK(tenant, [resourceChanged("tickets", "created"), sentinel]);
  assert.equal((await inbox.next()).r, sentinel.r);
  assert.equal(inbox.pending, 0);
});
