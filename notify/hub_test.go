package notify_test

import (
	"context"
	"errors"
	"testing"

	"notifyhub/notify"
	"notifyhub/payloads"
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
