package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/server/signalr"
)

const testSecret = "bench-test-secret-0123456789"

// onEventFrame encodes n as the hub does: an OnEvent invocation.
func onEventFrame(t *testing.T, p signalr.Protocol, n *payloads.Notification) []byte {
	t.Helper()
	frame, err := p.AppendMessage(nil, &signalr.Message{Type: signalr.TypeInvocation, Target: "OnEvent", Arguments: []any{n}})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// TestFastPathReadsTheHubsEncoding checks the loader's shortcut against the
// real encoders: the OnEvent record is cut out whole, and "r" and "ca" come
// out exactly, for both protocols and every timestamp size.
func TestFastPathReadsTheHubsEncoding(t *testing.T) {
	for _, ca := range []time.Time{
		time.Date(2026, 11, 23, 5, 27, 44, 123456789, time.UTC), // 8-byte timestamp
		time.Date(2026, 11, 23, 5, 27, 44, 0, time.UTC),         // 4-byte
		time.Date(2200, 1, 2, 3, 4, 5, 600, time.UTC),           // 12-byte
	} {
		ref := "4711"
		n := payloads.Notification{Event: payloads.EventLicenceActivated, Reference: &ref, CreatedAt: ca, Payload: payloads.RawJSON(`{"pad":"xx"}`)}
		for _, c := range []struct {
			proto signalr.Protocol
			scan  func([]byte) (int64, int64, bool)
		}{{signalr.JSONProtocol{}, scanJSON}, {signalr.MessagePackProtocol{}, scanMsgpack}} {
			frame := onEventFrame(t, c.proto, &n)
			ping, _ := c.proto.AppendMessage(nil, &signalr.Message{Type: signalr.TypePing})
			stream := append(append(append([]byte{}, frame...), ping...), frame...)
			fp := newFastProtocol(c.proto)
			var m signalr.Message
			k, err := fp.ReadMessage(stream, 0, &m)
			if err != nil || k != len(frame) || m.Target != "OnEvent" || len(m.Arguments) != 1 {
				t.Fatalf("%s: ReadMessage = %d, %v, %+v; want the whole first record (%d bytes)", c.proto.Name(), k, err, m, len(frame))
			}
			seq, sent, ok := c.scan(m.Arguments[0].(signalr.RawValue))
			if !ok || seq != 4711 || sent != ca.UnixNano() {
				t.Fatalf("%s %v: scan = %d, %v, %v; want 4711, %v", c.proto.Name(), ca, seq, time.Unix(0, sent).UTC(), ok, ca)
			}
			// The client's scanner cuts out the same record, for OnEvent only.
			if arg, n := fp.ScanEvent(stream, "OnEvent"); n != k || !bytes.Equal(arg, m.Arguments[0].(signalr.RawValue)) {
				t.Fatalf("%s: ScanEvent = %d bytes, %q; want %d, the ReadMessage argument", c.proto.Name(), n, arg, k)
			}
			if _, n := fp.ScanEvent(stream, "ReceiveMessage"); n != 0 {
				t.Fatalf("%s: ScanEvent took a record for another method", c.proto.Name())
			}
			if _, n := fp.ScanEvent(stream[k:], "OnEvent"); n != 0 {
				t.Fatalf("%s: ScanEvent took the ping", c.proto.Name())
			}
			// The ping is not an OnEvent: the real protocol reads it.
			k2, err := fp.ReadMessage(stream[k:], 0, &m)
			if err != nil || k2 != len(ping) || m.Type != signalr.TypePing {
				t.Fatalf("%s: ping read as %d, %v, %+v", c.proto.Name(), k2, err, m)
			}
			// An incomplete record is left for the next read.
			if k, err := fp.ReadMessage(frame[:len(frame)-1], 0, &m); k != 0 || err != nil {
				t.Fatalf("%s: incomplete record: %d, %v", c.proto.Name(), k, err)
			}
		}
	}
}

func TestParseRFC3339UTC(t *testing.T) {
	for _, s := range []string{"2026-11-23T05:27:44Z", "2026-11-23T05:27:44.1Z", "2026-02-28T23:59:59.999999999Z", "1999-12-31T00:00:00.000001Z", "2024-02-29T12:00:00.5Z"} {
		want, _ := time.Parse(time.RFC3339Nano, s)
		got, ok := parseRFC3339UTC([]byte(s))
		if !ok || got != want.UnixNano() {
			t.Errorf("%s: got %v, %v; want %v", s, time.Unix(0, got).UTC(), ok, want)
		}
	}
	for _, s := range []string{"2026-11-23T05:27:44+01:00", "2026-11-23 05:27:44Z", "2026-13-01T00:00:00Z", "x"} {
		if _, ok := parseRFC3339UTC([]byte(s)); ok {
			t.Errorf("%s: accepted", s)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * 10 * time.Microsecond) // 10 µs … 10 ms
	}
	check := func(q float64, want time.Duration) {
		got := h.Quantile(q)
		if d := float64(got-want) / float64(want); d < -0.02 || d > 0.02 {
			t.Errorf("q%.2f = %v, want %v ±2%%", q, got, want)
		}
	}
	check(0.5, 5*time.Millisecond)
	check(0.9, 9*time.Millisecond)
	check(0.99, 9900*time.Microsecond)
	if h.Max() != 10*time.Millisecond || h.Quantile(1) != 10*time.Millisecond || h.Count() != 1000 {
		t.Errorf("max %v, q1 %v, count %d", h.Max(), h.Quantile(1), h.Count())
	}
	for us := uint64(0); us < 1<<20; us = us*9/8 + 1 {
		if i := histIndex(us); histUpper(i) < us || (i > 0 && histUpper(i-1) >= us) {
			t.Fatalf("%d µs in bucket %d [.., %d], previous ends at %d", us, i, histUpper(i), histUpper(i-1))
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader("# HELP x\n# TYPE go_goroutines gauge\ngo_goroutines 12\n" +
		`notifyhub_notifications_total{outcome="dropped"} 3` + "\nprocess_cpu_seconds_total 1.5e+00 1700000000\n"))
	if err != nil || m["go_goroutines"] != 12 || m[`notifyhub_notifications_total{outcome="dropped"}`] != 3 || m["process_cpu_seconds_total"] != 1.5 {
		t.Fatalf("%v %v", m, err)
	}
}

func TestProcReadings(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("VmRSS %d, %v", rss, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &out); err == nil {
		t.Fatal("-h: no ErrHelp")
	}
	for _, name := range []string{"-hub", "-internal", "-secret", "-token", "-publisher-token", "-tenant", "-users", "-n", "-concurrency", "-sources",
		"-protocol", "-negotiate", "-subscribe", "-rate", "-duration", "-burst", "-batch", "-repeat", "-drain", "-pid", "-metrics", "-json", "-hold", "-timeout"} {
		if !strings.Contains(out.String(), "\n  "+name+" ") && !strings.Contains(out.String(), "\n  "+name+"\n") {
			t.Errorf("usage does not document %s", name)
		}
	}
	cfg, err := parseFlags([]string{"-secret", "x", "-hub", "http://127.0.0.1:1", "-n", "25000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.hubURL != "http://127.0.0.1:1"+server.HubPath {
		t.Errorf("hub URL %s", cfg.hubURL)
	}
	src, err := cfg.sourceAddrs()
	if err != nil || len(src) != 4 || src[3].String() != "127.0.0.4" {
		t.Errorf("auto sources for a loopback hub: %v %v", src, err)
	}
	cfg.sources = "127.0.0.10-127.0.0.12"
	if src, err := cfg.sourceAddrs(); err != nil || len(src) != 3 || src[2].String() != "127.0.0.12" {
		t.Errorf("range: %v %v", src, err)
	}
	if _, err := parseFlags([]string{"-secret", "x", "-protocol", "xml"}, io.Discard); err == nil {
		t.Error("-protocol xml accepted")
	}
	if _, err := parseFlags([]string{"-burst", "5"}, io.Discard); err == nil {
		t.Error("publishing without a secret or tokens accepted")
	}
}

// TestRunAgainstHub runs the tool end to end against a hub on loopback, in
// every publish mode and with both protocols.
func TestRunAgainstHub(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.HubAddr, cfg.InternalAddr, cfg.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	base := []string{"-hub", srv.HubURL(), "-internal", srv.InternalURL(), "-secret", testSecret, "-progress", "0", "-settle", "0s", "-drain", "10s", "-timeout", "1m"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"burst json", []string{"-n", "40", "-burst", "30", "-batch", "7", "-repeat", "2", "-pid", "0"}},
		{"burst messagepack filter", []string{"-n", "30", "-burst", "20", "-protocol", "messagepack", "-subscribe", "filter", "-sources", "127.0.0.1,127.0.0.2"}},
		{"rate json negotiate", []string{"-n", "20", "-rate", "40", "-duration", "500ms", "-negotiate", "-token-in-query", "-users", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(append(append([]string{}, base...), tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			c.pid = os.Getpid() // the hub runs in this process
			res, err := run(context.Background(), c, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.Connect.Connected != c.conns || res.Connect.Errors != 0 {
				t.Fatalf("connected %d of %d: %v", res.Connect.Connected, c.conns, res.Connect.TopErrors)
			}
			if len(res.Phases) != c.repeat || res.Median == nil {
				t.Fatalf("%d phases, want %d", len(res.Phases), c.repeat)
			}
			for _, p := range res.Phases {
				want := int64(c.burst)
				if c.burst == 0 {
					want = int64(c.rate * c.duration.Seconds())
				}
				if p.Published != want || p.Lost != 0 || p.Duplicates != 0 || p.Unreadable != 0 || p.Delivered != want*int64(c.conns) {
					t.Fatalf("phase %d: %+v", p.Phase, p)
				}
				if p.Latency.Samples != p.Delivered || p.Latency.P99Ms <= 0 || p.Latency.MaxMs < p.Latency.P99Ms || p.DeliveriesPerSec <= 0 || p.HubCPUSeconds < 0 {
					t.Fatalf("phase %d figures: %+v", p.Phase, p)
				}
			}
			if res.Memory.RSSPerConn == nil || res.Memory.HeapInusePerConn == nil || res.Memory.GoroutinesPerConn == nil {
				t.Fatalf("memory figures missing: %+v", res.Memory)
			}
			var table, js bytes.Buffer
			res.writeTable(&table)
			if err := res.writeJSON(&js); err != nil || !strings.Contains(table.String(), "deliveries/hub CPU-s") || !strings.Contains(js.String(), `"lost": 0`) {
				t.Fatalf("report:\n%s\n%s %v", table.String(), js.String(), err)
			}
		})
	}
}
