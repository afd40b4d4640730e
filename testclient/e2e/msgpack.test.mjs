// The MessagePack hub protocol (@microsoft/signalr-protocol-msgpack): the same
// flows as with JSON, timestamps as the MessagePack timestamp extension (the JS
// client yields Date), and payload values carried over value for value.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  connect, expectOnlySentinel, HttpTransportType, LICENCE_ACTIVATED, licenceActivated, MessagePackHubProtocol,
  newTenant, publishOK, RESOURCES_CHANGED, resourceChanged, sameInstant, subscribed, withoutTimes,
} from "./helpers.mjs";

const msgpack = { protocol: "msgpack" };
const devices = { e: RESOURCES_CHANGED, r: [{ n: "devices", a: ["created", "updated", "deleted"] }] };

for (const [how, opts] of [
  ["negotiate", {}],
  ["skipNegotiation", { skipNegotiation: true, transport: HttpTransportType.WebSockets }],
]) {
  test(`Portos flow over MessagePack (${how})`, async (t) => {
    const tenant = newTenant();
    const { inbox } = await subscribed(t, { ...msgpack, ...opts, tenant }, devices);
    const sent = resourceChanged("devices", "deleted");
    await publishOK(tenant, sent);
    const got = await inbox.next();
    assert.deepEqual(withoutTimes(got), withoutTimes(sent));
    assert.ok(got.ca instanceof Date, `ca should be a Date, got ${typeof got.ca} ${got.ca}`);
    sameInstant(got.ca, sent.ca);
    assert.equal(got.ea, null);
  });
}

test("MessagePack: filters and Unsubscribe behave as with JSON", async (t) => {
  const tenant = newTenant();
  const tickets = { e: RESOURCES_CHANGED, r: [{ n: "tickets", a: ["created"] }] };
  const { connection, inbox } = await subscribed(t, { ...msgpack, tenant }, tickets, { e: LICENCE_ACTIVATED });
  const wanted = resourceChanged("tickets", "created");
  await publishOK(tenant, [resourceChanged("tickets", "updated"), resourceChanged("devices", "created"), wanted]);
  await expectOnlySentinel(inbox, wanted);

  await connection.invoke("Unsubscribe", tickets);
  const sentinel = licenceActivated();
  await publishOK(tenant, [resourceChanged("tickets", "created"), sentinel]);
  await expectOnlySentinel(inbox, sentinel);
});

test("MessagePack: bad invocations reject with a message, the connection stays usable", async (t) => {
  const tenant = newTenant();
  const { connection, inbox } = await connect(t, { ...msgpack, tenant });
  await assert.rejects(connection.invoke("Subscribe", { e: "portos.nope" }), /unknown event/);
  await assert.rejects(connection.invoke("Subscribe", { e: RESOURCES_CHANGED, r: [{ n: "x", a: ["renamed"] }] }), /unknown action/);
  await assert.rejects(connection.invoke("Nope", devices), /does not exist/);
  await assert.rejects(connection.invoke("Subscribe"));
  await connection.invoke("Subscribe", devices);
  const sent = resourceChanged("devices", "created");
  await publishOK(tenant, sent);
  assert.equal((await inbox.next()).r, sent.r);
});

test("MessagePack: ca and ea arrive as Dates of the published instants", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { ...msgpack, tenant }, devices);
  const ea = new Date(Date.now() + 3600_000 + 123).toISOString();
  const sent = [
    resourceChanged("devices", "created", { ca: "2024-07-01T12:51:52.558Z", ea }),
    resourceChanged("devices", "created", { ca: "1999-12-31T23:59:59Z" }),
    resourceChanged("devices", "created", { ca: "2024-07-01T14:51:52.001+02:00" }),
  ];
  const { ca, ...noCa } = resourceChanged("devices", "updated");
  const before = Date.now();
  await publishOK(tenant, [...sent, noCa]);
  const got = await inbox.take(4);
  for (const [i, n] of sent.entries()) {
    assert.ok(got[i].ca instanceof Date, `ca of #${i} is ${typeof got[i].ca}`);
    sameInstant(got[i].ca, n.ca);
  }
  assert.ok(got[0].ea instanceof Date);
  sameInstant(got[0].ea, ea);
  assert.equal(got[1].ea, null);
  assert.ok(got[3].ca instanceof Date);
  assert.ok(Math.abs(got[3].ca.getTime() - before) < 5000, `server-filled ca ${got[3].ca.toISOString()} is not about now`);
});

// A payload with every kind of JSON value, to be carried over value for value.
const kinds = {
  ints: { zero: 0, one: 1, neg: -1, i127: 127, i128: 128, i255: 255, i256: 256, i65536: 65536, neg129: -129, i2p31: 2 ** 31, i2p40: 2 ** 40, negBig: -(2 ** 40), maxSafe: Number.MAX_SAFE_INTEGER },
  floats: { half: 1.5, negQuarter: -0.25, pi: 3.14159, tiny: 1e-7, huge: 1e300, money: 12.99 },
  strings: { empty: "", unicode: "žluťoučký kůň 🐎 日本", long: "L".repeat(300), quote: 'say "hi"\n\ttab' },
  nothing: null,
  yes: true,
  no: false,
  emptyObject: {},
  emptyArray: [],
  mixed: [1, 1.5, "two", null, true, { deep: [[[]], { deeper: { deepest: -7 } }] }],
};

test("MessagePack: nested objects, arrays, strings, null, booleans and numbers equal the JSON publish", async (t) => {
  const tenant = newTenant();
  const { inbox } = await subscribed(t, { ...msgpack, tenant }, { e: LICENCE_ACTIVATED });
  const sent = licenceActivated(kinds);
  await publishOK(tenant, sent);
  const got = await inbox.next();
  assert.deepEqual(got.p, kinds);
  for (const [k, v] of Object.entries(got.p.ints)) assert.ok(Number.isInteger(v), `${k} = ${v}`);
});

// The JS client decodes 7 and 7.0 to the same number, so whether integers stay
// integers is checked on the wire; typed clients (.NET, Java) bind the action
// and the version to integer fields and fail on floats.
test("MessagePack: integers travel as MessagePack integers, fractions as floats, times as timestamps", async (t) => {
  const tenant = newTenant();
  const proto = new RecordingMessagePackHubProtocol();
  const { inbox } = await subscribed(t, { protocol: proto, tenant }, devices, { e: LICENCE_ACTIVATED });
  await publishOK(tenant, [resourceChanged("devices", "updated"), licenceActivated(kinds)]);
  await inbox.take(2);
  const [changed, licence] = proto.frames.flatMap(messageShapes).filter((m) => m[3] === "OnEvent").map((m) => m[4][0]);
  assert.equal(changed.ca, "<timestamp>");
  assert.equal(changed.p.a, "<int>");
  assert.equal(changed.p.i.v, "<int>");
  assert.equal(changed.p.r[0].count, "<int>");
  assert.equal(changed.p.r[0].total, "<float>");
  for (const [k, v] of Object.entries(licence.p.ints)) assert.equal(v, "<int>", `p.ints.${k}`);
  for (const [k, v] of Object.entries(licence.p.floats)) assert.equal(v, "<float>", `p.floats.${k}`);
  assert.equal(licence.p.nothing, "<nil>");
  assert.equal(licence.p.yes, "<bool>");
  assert.equal(licence.p.strings.unicode, kinds.strings.unicode);
});

test("a JSON and a MessagePack subscriber receive equal notifications", async (t) => {
  const tenant = newTenant();
  const json = await subscribed(t, { tenant }, devices);
  const mp = await subscribed(t, { ...msgpack, tenant }, devices);
  const sent = resourceChanged("devices", "created", { ea: new Date(Date.now() + 60_000).toISOString() });
  sent.p.r.push(kinds);
  await publishOK(tenant, sent);
  const [a, b] = [await json.inbox.next(), await mp.inbox.next()];
  const asDates = (n) => ({ ...n, ca: new Date(n.ca), ea: n.ea && new Date(n.ea) });
  assert.deepEqual(asDates(b), asDates(a));
  assert.deepEqual(withoutTimes(b), withoutTimes(sent));
});

// ---- wire inspection ------------------------------------------------------------

// RecordingMessagePackHubProtocol keeps every binary frame the client receives.
class RecordingMessagePackHubProtocol extends MessagePackHubProtocol {
  frames = [];
  parseMessages(input, logger) {
    this.frames.push(Buffer.from(new Uint8Array(input)));
    return super.parseMessages(input, logger);
  }
}

// messageShapes splits a frame into its length-prefixed (VarInt) messages and
// returns the shape of each: strings as themselves, maps and arrays as such,
// every other value as its MessagePack type ("<int>", "<float>", "<timestamp>", ...).
function messageShapes(buf) {
  const out = [];
  for (let pos = 0; pos < buf.length;) {
    let len = 0;
    for (let shift = 0; ; shift += 7) {
      const b = buf[pos++];
      len |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    out.push(shape(buf.subarray(pos, pos + len)));
    pos += len;
  }
  return out;
}

function shape(buf) {
  let i = 0;
  const uint = (n) => { const v = buf.readUIntBE(i, n); i += n; return v; };
  const str = (n) => { const s = buf.toString("utf8", i, i + n); i += n; return s; };
  const arr = (n) => Array.from({ length: n }, value);
  const map = (n) => Object.fromEntries(Array.from({ length: n }, () => [value(), value()]));
  const skip = (n, tag) => { i += n; return tag; };
  const ext = (n) => { const type = buf.readInt8(i++); i += n; return type === -1 ? "<timestamp>" : `<ext ${type}>`; };
  function value() {
    const b = buf[i++];
    if (b <= 0x7f || b >= 0xe0) return "<int>";
    if (b <= 0x8f) return map(b & 0x0f);
    if (b <= 0x9f) return arr(b & 0x0f);
    if (b <= 0xbf) return str(b & 0x1f);
    switch (b) {
      case 0xc0: return "<nil>";
      case 0xc2: case 0xc3: return "<bool>";
      case 0xc4: case 0xc5: case 0xc6: return skip(uint(1 << (b - 0xc4)), "<bin>");
      case 0xc7: case 0xc8: case 0xc9: return ext(uint(1 << (b - 0xc7)));
      case 0xca: return skip(4, "<float>");
      case 0xcb: return skip(8, "<float>");
      case 0xcc: case 0xcd: case 0xce: case 0xcf: return skip(1 << (b - 0xcc), "<int>");
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: return skip(1 << (b - 0xd0), "<int>");
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return ext(1 << (b - 0xd4));
      case 0xd9: case 0xda: case 0xdb: return str(uint(1 << (b - 0xd9)));
      case 0xdc: case 0xdd: return arr(uint(2 << (b - 0xdc)));
      case 0xde: case 0xdf: return map(uint(2 << (b - 0xde)));
    }
    throw new Error(`invalid MessagePack byte 0x${b.toString(16)} at ${i - 1}`);
  }
  return value();
}
