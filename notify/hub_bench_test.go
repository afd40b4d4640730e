package notify_test

import (
	"fmt"
	"testing"
	"time"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/subscriptions"
)

// The fan-out path: Hub.Deliver matches a notification against the index,
// encodes it once per protocol and hands the shared frame to every
// recipient. These benchmarks show its cost per notification and that its
// allocations do not grow with the number of recipients:
//
//	go test -run '^$' -bench 'Deliver|Encode' -benchmem ./notify

// benchSubscriber is a subscriber whose Deliver keeps the frame in a small
// reused slice, so that the harness itself never allocates per delivery.
type benchSubscriber struct {
	tenant string
	subs   subscriptions.Set
	enc    notify.Encoder
	frames [][]byte
	n      int
}

func (s *benchSubscriber) Tenant() string                    { return s.tenant }
func (s *benchSubscriber) Subscriptions() *subscriptions.Set { return &s.subs }
func (s *benchSubscriber) Encoder() notify.Encoder           { return s.enc }
func (s *benchSubscriber) Deliver(frame []byte) bool {
	if len(s.frames) == cap(s.frames) {
		s.frames = s.frames[:0]
	}
	s.frames = append(s.frames, frame)
	s.n++
	return true
}

// onEvent encodes a notification as an OnEvent invocation of proto, as the
// hub does for its connections.
type onEvent struct{ proto signalr.Protocol }

func (e *onEvent) EncodeNotification(n *payloads.Notification) ([]byte, error) {
	m := signalr.Message{Type: signalr.TypeInvocation, Target: "OnEvent", Arguments: []any{n}}
	return e.proto.AppendMessage(nil, &m)
}

var (
	jsonEnc    = &onEvent{signalr.JSONProtocol{}}
	msgpackEnc = &onEvent{signalr.MessagePackProtocol{}}
)

// benchNotification is a typical portos.resources.changed notification.
func benchNotification() payloads.Notification {
	str := func(s string) *string { return &s }
	ref := "8c0d6c2e-5b0f-4a57-a0d3-0d7b1f6f4f10"
	return payloads.Notification{
		Event:     payloads.EventResourcesChanged,
		Sender:    &payloads.Sender{ConnectionID: str("conn-1"), User: &payloads.UserIdentity{User: str("SYSTEM"), Device: str("SYSTEM")}},
		Reference: &ref,
		CreatedAt: time.Date(2026, 11, 23, 5, 27, 44, 123456789, time.UTC),
		Payload: payloads.RawJSON(`{"u":{"u":"999","d":"BackOffice","f":null},"n":"sales.order","a":2,` +
			`"i":{"i":"42","n":"sales.order","v":7},"r":[{"id":"42","total":12.5,"lines":3}]}`),
		Routing: payloads.Routing{Resource: "sales.order", Action: payloads.ActionUpdated},
	}
}

// newBenchHub returns a hub with n subscribers of tenant "t" to the whole
// resources.changed event; every msgpackEvery-th uses MessagePack (0: none).
func newBenchHub(tb testing.TB, n, msgpackEvery int) (*notify.Hub, []*benchSubscriber) {
	tb.Helper()
	h := notify.New(notify.Options{})
	subs := make([]*benchSubscriber, n)
	for i := range subs {
		enc := notify.Encoder(jsonEnc)
		if msgpackEvery > 0 && i%msgpackEvery == 0 {
			enc = msgpackEnc
		}
		s := &benchSubscriber{tenant: "t", enc: enc, frames: make([][]byte, 0, 8)}
		if _, err := h.Subscribe(s, payloads.Filter{Event: payloads.EventResourcesChanged}); err != nil {
			tb.Fatal(err)
		}
		subs[i] = s
	}
	// Some subscribers of other resources and tenants that must not be touched.
	for i := 0; i < n/10; i++ {
		s := &benchSubscriber{tenant: "t", enc: jsonEnc}
		f := payloads.Filter{Event: payloads.EventResourcesChanged, Resources: []payloads.ResourceFilter{{Name: fmt.Sprintf("other.%d", i)}}}
		if _, err := h.Subscribe(s, f); err != nil {
			tb.Fatal(err)
		}
		o := &benchSubscriber{tenant: "other", enc: jsonEnc}
		if _, err := h.Subscribe(o, payloads.Filter{Event: payloads.EventResourcesChanged}); err != nil {
			tb.Fatal(err)
		}
	}
	return h, subs
}

var recipientCounts = []int{100, 1000, 10000}

// BenchmarkDeliver fans one notification out per op. allocs/op must be the
// same for every recipient count: the path allocates per notification (the
// encoding), never per recipient.
func BenchmarkDeliver(b *testing.B) {
	for _, mix := range []struct {
		name  string
		every int
	}{{"json", 0}, {"json+msgpack", 2}} {
		for _, n := range recipientCounts {
			b.Run(fmt.Sprintf("%s/recipients=%d", mix.name, n), func(b *testing.B) {
				h, subs := newBenchHub(b, n, mix.every)
				ns := []payloads.Notification{benchNotification()}
				h.Deliver("t", ns) // warm the pools
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					h.Deliver("t", ns)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
				if subs[0].n != b.N+1 || subs[n-1].n != b.N+1 {
					b.Fatalf("delivered %d and %d times, want %d", subs[0].n, subs[n-1].n, b.N+1)
				}
			})
		}
	}
}

// BenchmarkDeliverBatch fans out a publish of 20 notifications per op, as the
// load tool's burst does.
func BenchmarkDeliverBatch(b *testing.B) {
	for _, n := range recipientCounts {
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			h, _ := newBenchHub(b, n, 0)
			ns := make([]payloads.Notification, 20)
			for i := range ns {
				ns[i] = benchNotification()
			}
			h.Deliver("t", ns)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.Deliver("t", ns)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*len(ns)), "ns/delivery")
		})
	}
}

// BenchmarkEncode is the once-per-notification step of the fan-out: the
// OnEvent invocation frame in each hub protocol.
func BenchmarkEncode(b *testing.B) {
	n := benchNotification()
	for _, c := range []struct {
		name string
		enc  notify.Encoder
	}{{"json", jsonEnc}, {"msgpack", msgpackEnc}} {
		b.Run(c.name, func(b *testing.B) {
			frame, err := c.enc.EncodeNotification(&n)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := c.enc.EncodeNotification(&n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDeliverAllocationsDoNotGrowWithRecipients guards the fan-out path: one
// notification to 10,000 recipients allocates no more than to 100.
func TestDeliverAllocationsDoNotGrowWithRecipients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 10,000 subscribers")
	}
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector (sync.Pool drops items at random)")
	}
	allocs := map[int]float64{}
	for _, n := range []int{100, 10000} {
		h, _ := newBenchHub(t, n, 2)
		ns := []payloads.Notification{benchNotification()}
		h.Deliver("t", ns)
		allocs[n] = testing.AllocsPerRun(50, func() { h.Deliver("t", ns) })
	}
	t.Logf("allocations per notification: %v recipients → %v, %v → %v", 100, allocs[100], 10000, allocs[10000])
	if allocs[10000] > allocs[100]+1 {
		t.Fatalf("Deliver allocates %v times for 10,000 recipients but %v for 100: something allocates per recipient", allocs[10000], allocs[100])
	}
}
