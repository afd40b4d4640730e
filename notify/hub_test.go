package notify_test

import (
	"context"
	"errors"
	"testing"

	"notifyhub/notify"
	"notifyhub/payloads"
	"notifyhub/server/signalr"
)

// TestHubLifetime: a hub takes publishes from the moment Start returns (the
// server opens its listeners right after), and refuses them before and after.
func TestHubLifetime(t *testing.T) {
	h := notify.New(notify.Options{})
	ns := []payloads.Notification{benchNotification()}
	if err := h.Publish(context.Background(), "t", ns); !errors.Is(err, notify.ErrNotRunning) {
		t.Fatalf("publish before Start: %v, want ErrNotRunning", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped, err := h.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &benchSubscriber{tenant: "t", enc: jsonEnc, frames: make([][]byte, 0, 4)}
	if _, err := h.Subscribe(s, payloads.Filter{Event: payloads.EventResourcesChanged}); err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(ctx, "t", ns); err != nil {
		t.Fatalf("publish right after Start: %v", err)
	}
	if s.n != 1 {
		t.Fatalf("%d deliveries, want 1", s.n)
	}
	if _, err := h.Start(ctx); err == nil {
		t.Fatal("a second Start was accepted")
	}
	cancel()
	<-stopped
	if err := h.Publish(context.Background(), "t", ns); !errors.Is(err, notify.ErrNotRunning) {
		t.Fatalf("publish after stop: %v, want ErrNotRunning", err)
	}
}

// countingEncoder encodes like onEvent and counts its calls; fail makes it
// return an error instead.
type countingEncoder struct {
	onEvent
	calls int
	fail  bool
}

func (e *countingEncoder) EncodeNotification(n *payloads.Notification) ([]byte, error) {
	e.calls++
	if e.fail {
		return nil, errors.New("cannot encode")
	}
	return e.onEvent.EncodeNotification(n)
}

// countingMetrics counts what the hub reports.
type countingMetrics struct{ delivered, dropped, encodeFailed int }

func (m *countingMetrics) Published(int)   {}
func (m *countingMetrics) Delivered(n int) { m.delivered += n }
func (m *countingMetrics) Expired()        {}
func (m *countingMetrics) Dropped(n int)   { m.dropped += n }
func (m *countingMetrics) EncodeFailed()   { m.encodeFailed++ }

// TestDeliverEncodesOncePerEncoder: however many distinct encoders the
// recipients use (stream endpoints add client methods and argument shapes to
// the two protocols), each notification is encoded once per encoder, every
// recipient of one encoder gets the same frame, and a failed encoding is
// counted once and not retried for each recipient.
func TestDeliverEncodesOncePerEncoder(t *testing.T) {
	const nEncoders, nSubs, nNotes = 10, 1000, 3
	m := &countingMetrics{}
	h := notify.New(notify.Options{Metrics: m})
	encs := make([]*countingEncoder, nEncoders)
	for i := range encs {
		proto := signalr.Protocol(signalr.JSONProtocol{})
		if i%2 == 1 {
			proto = signalr.MessagePackProtocol{}
		}
		encs[i] = &countingEncoder{onEvent: onEvent{proto}}
	}
	encs[7].fail = true
	subs := make([]*benchSubscriber, nSubs)
	for i := range subs {
		subs[i] = &benchSubscriber{tenant: "t", enc: encs[i%nEncoders], frames: make([][]byte, 0, nNotes)}
		if _, err := h.Subscribe(subs[i], payloads.Filter{Event: payloads.EventResourcesChanged}); err != nil {
			t.Fatal(err)
		}
	}
	ns := make([]payloads.Notification, nNotes)
	for i := range ns {
		ns[i] = benchNotification()
	}
	h.Deliver("t", ns)

	for i, e := range encs {
		if e.calls != nNotes {
			t.Errorf("encoder %d called %d times for %d notifications, want once each", i, e.calls, nNotes)
		}
	}
	perEncoder := nSubs / nEncoders
	if want := nNotes * (nSubs - perEncoder); m.delivered != want {
		t.Errorf("delivered %d, want %d", m.delivered, want)
	}
	if want := nNotes * perEncoder; m.dropped != want {
		t.Errorf("dropped %d, want %d (the failing encoder's recipients)", m.dropped, want)
	}
	if m.encodeFailed != nNotes {
		t.Errorf("EncodeFailed counted %d times, want %d (once per notification)", m.encodeFailed, nNotes)
	}
	for i, s := range subs {
		want := nNotes
		if s.enc == notify.Encoder(encs[7]) {
			want = 0
		}
		if len(s.frames) != want {
			t.Fatalf("subscriber %d got %d frames, want %d", i, len(s.frames), want)
		}
		if want > 0 && &s.frames[0][0] != &subs[i%nEncoders].frames[0][0] {
			t.Fatalf("subscriber %d got its own copy of the frame, not the shared one", i)
		}
	}
}

// TestDeliverManyEncodersAllocationsDoNotGrowWithRecipients: with more
// encoders than the default configuration uses, the fan-out still allocates
// per notification and encoder, never per recipient.
func TestDeliverManyEncodersAllocationsDoNotGrowWithRecipients(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector (sync.Pool drops items at random)")
	}
	const nEncoders = 12
	allocs := map[int]float64{}
	for _, n := range []int{100, 5000} {
		h := notify.New(notify.Options{})
		encs := make([]notify.Encoder, nEncoders)
		for i := range encs {
			encs[i] = &onEvent{signalr.JSONProtocol{}}
		}
		for i := range n {
			s := &benchSubscriber{tenant: "t", enc: encs[i%nEncoders], frames: make([][]byte, 0, 8)}
			if _, err := h.Subscribe(s, payloads.Filter{Event: payloads.EventResourcesChanged}); err != nil {
				t.Fatal(err)
			}
		}
		ns := []payloads.Notification{benchNotification()}
		h.Deliver("t", ns)
		allocs[n] = testing.AllocsPerRun(50, func() { h.Deliver("t", ns) })
	}
	t.Logf("allocations per notification with %d encoders: 100 recipients → %v, 5000 → %v", nEncoders, allocs[100], allocs[5000])
	if allocs[5000] > allocs[100]+1 {
		t.Fatalf("Deliver allocates %v times for 5,000 recipients but %v for 100: something allocates per recipient", allocs[5000], allocs[100])
	}
}
