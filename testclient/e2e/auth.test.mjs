// Authentication and authorisation on the hub (negotiate and WebSocket upgrade)
// and on the internal publish API.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clientToken, connect, HttpTransportType, jwt, newTenant, publish, publisherToken, publishOK,
  RESOURCES_CHANGED, resourceChanged, subscribed, upgradeStatus,
} from "./helpers.mjs";

const now = () => Math.floor(Date.now() / 1000);
const tenant = newTenant();

// Tokens the hub must refuse with 401, and those it must refuse with 403.
const unauthenticated = {
  "no token": () => "",
  "garbage token": () => "not-a-jwt",
  "wrong signature": () => jwt({ sub: "u", tenant_id: tenant, scope: "notifications.subscribe" }, { secret: "some-other-secret" }),
  "alg none": () => jwt({ sub: "u", tenant_id: tenant, scope: "notifications.subscribe" }, { alg: "none" }),
  "expired": () => clientToken(tenant, { exp: now() - 120 }),
  "not yet valid (nbf)": () => clientToken(tenant, { nbf: now() + 600 }),
};
const forbidden = {
  "no scope claim": () => clientToken(tenant, { scope: undefined }),
  "scope without notifications.subscribe": () => clientToken(tenant, { scope: "openid profile" }),
  "publisher-only scope": () => clientToken(tenant, { scope: "notifications.publish" }),
};

const negotiated = { name: "negotiate", opts: {} };
const skipped = { name: "skipNegotiation", opts: { skipNegotiation: true, transport: HttpTransportType.WebSockets } };

for (const [want, cases] of [[401, unauthenticated], [403, forbidden]]) {
  for (const [name, token] of Object.entries(cases)) {
    test(`hub: ${name} → ${want} on negotiate`, async (t) => {
      const { connection } = await connect(t, { ...negotiated.opts, token: token(), start: false });
      await assert.rejects(connection.start(), { message: new RegExp(`Status code '${want}'`) });
    });

    test(`hub: ${name} → ${want} on a WebSocket upgrade without negotiate`, async (t) => {
      const { connection } = await connect(t, { ...skipped.opts, token: token(), start: false });
      await assert.rejects(connection.start());
      assert.equal(await upgradeStatus({ token: token() }), want);
    });
  }
}

test("hub: a token without tenant_id is refused", async (t) => {
  const token = clientToken(undefined);
  const { connection } = await connect(t, { token, start: false });
  await assert.rejects(connection.start(), { message: /Status code '40[13]'/ });
  assert.match(String(await upgradeStatus({ token })), /^40[13]$/);
});

for (const [name, scope] of [
  ["space-delimited scope list", "openid notifications.subscribe profile"],
  ["scope as a JSON array", ["openid", "notifications.subscribe"]],
]) {
  for (const { name: how, opts } of [negotiated, skipped]) {
    test(`hub: ${name} is accepted (${how})`, async (t) => {
      const tenant = newTenant();
      const { inbox } = await subscribed(t, { ...opts, tenant, token: clientToken(tenant, { scope }) }, { e: RESOURCES_CHANGED });
      const sent = resourceChanged();
      await publishOK(tenant, sent);
      assert.equal((await inbox.next()).r, sent.r);
    });
  }
}

test("hub: the token is also accepted in the access_token query parameter, as browsers send it", async () => {
  assert.equal(await upgradeStatus({ query: `?access_token=${encodeURIComponent(clientToken(tenant))}` }), 101);
  assert.equal(await upgradeStatus({ query: `?access_token=${encodeURIComponent(clientToken(tenant, { exp: now() - 120 }))}` }), 401);
});

// ---- publish API ---------------------------------------------------------------

const publishCases = [
  ["no token", null, 401],
  ["garbage token", "not-a-jwt", 401],
  ["wrong signature", jwt({ sub: "p", scope: "notifications.publish" }, { secret: "some-other-secret" }), 401],
  ["alg none", jwt({ sub: "p", scope: "notifications.publish" }, { alg: "none" }), 401],
  ["expired publisher token", publisherToken({ exp: now() - 120 }), 401],
  ["client token (subscribe scope only)", clientToken(tenant), 403],
  ["publisher token bound to another tenant", publisherToken({ tenant_id: newTenant() }), 403],
];

for (const [name, token, want] of publishCases) {
  test(`publish: ${name} → ${want}`, async () => {
    const res = await publish(tenant, resourceChanged(), token);
    assert.equal(res.status, want, JSON.stringify(res.body));
  });
}

test("publish: refused publishes deliver nothing", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  for (const [, token, want] of publishCases) assert.equal((await publish(tenant, resourceChanged(), token)).status, want);
  const sentinel = resourceChanged();
  await publishOK(tenant, sentinel);
  assert.equal((await inbox.next()).r, sentinel.r);
  assert.equal(inbox.pending, 0);
});

test("publish: a publisher token bound to the tenant may publish to it", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { tenant }, { e: RESOURCES_CHANGED });
  const sent = resourceChanged();
  const res = await publish(tenant, sent, publisherToken({ tenant_id: tenant, scope: ["notifications.publish"] }));
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.equal(res.body.accepted, 1);
  assert.equal((await inbox.next()).r, sent.r);
});
