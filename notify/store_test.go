package notify_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"notifyhub/notify"
	"notifyhub/notify/redistest"
)

// storeCases runs test against every Store implementation.
func storeCases(t *testing.T, test func(t *testing.T, open func() notify.Store)) {
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "store.db")
		test(t, func() notify.Store {
			s, err := notify.NewBoltStore(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		test(t, func() notify.Store {
			s, err := notify.NewRedisStore(notify.RedisStoreOptions{URL: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func delivery(hook, id string) notify.Delivery {
	return notify.Delivery{ID: id, Webhook: hook, Event: "e", Body: []byte(fmt.Sprintf(`{"id":%q}`, id)), Status: notify.DeliveryPending, CreatedAt: time.Now().UTC()}
}

func TestStore(t *testing.T) {
	storeCases(t, func(t *testing.T, open func() notify.Store) {
		ctx := context.Background()
		s := open()
		defer func() { s.Close() }()

		// Reads of an empty store find nothing (the bolt file does not exist yet).
		if _, ok, err := s.Tenant(ctx, "t1"); ok || err != nil {
			t.Fatalf("tenant of an empty store: %v %v", ok, err)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		if _, created, err := s.ProvisionTenant(ctx, "t1", now); !created || err != nil {
			t.Fatalf("provision: %v %v", created, err)
		}
		if tn, created, err := s.ProvisionTenant(ctx, "t1", now.Add(time.Hour)); created || err != nil || !tn.ProvisionedAt.Equal(now) {
			t.Fatalf("provision again: %+v %v %v (want the first record)", tn, created, err)
		}

		w1 := notify.Webhook{ID: "wh_1", Tenant: "t1", URL: "https://a.example", Secret: notify.NewWebhookSecret(), CreatedAt: now}
		w2 := notify.Webhook{ID: "wh_2", Tenant: "t1", URL: "https://b.example", Secret: notify.NewWebhookSecret(), CreatedAt: now.Add(time.Second)}
		for _, w := range []notify.Webhook{w1, w2} {
			if err := s.CreateWebhook(ctx, w, 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateWebhook(ctx, notify.Webhook{ID: "wh_3", Tenant: "t1"}, 2); !errors.Is(err, notify.ErrLimit) {
			t.Fatalf("third webhook with a limit of 2: %v", err)
		}
		if ws, err := s.Webhooks(ctx, "t1"); err != nil || len(ws) != 2 || ws[0].ID != "wh_1" {
			t.Fatalf("webhooks: %+v %v", ws, err)
		}
		if _, err := s.UpdateWebhook(ctx, "wh_none", func(*notify.Webhook) error { return nil }); !errors.Is(err, notify.ErrNotFound) {
			t.Fatalf("update of a missing webhook: %v", err)
		}
		mine := errors.New("refused")
		if _, err := s.UpdateWebhook(ctx, "wh_1", func(*notify.Webhook) error { return mine }); !errors.Is(err, mine) {
			t.Fatalf("update whose change fails: %v", err)
		}

		// Queues keep order, bound their length and log what finished.
		full, err := s.Enqueue(ctx, []notify.Delivery{delivery("wh_1", "m1"), delivery("wh_1", "m2"), delivery("wh_1", "m3"), delivery("wh_2", "m1"), delivery("wh_gone", "m1")}, 2)
		if err != nil || len(full) != 1 || full[0] != "wh_1" {
			t.Fatalf("enqueue: full %v, %v; want wh_1 full", full, err)
		}
		if ids, err := s.PendingWebhooks(ctx); err != nil || len(ids) != 2 {
			t.Fatalf("pending webhooks: %v %v", ids, err)
		}
		head, ok, err := s.Head(ctx, "wh_1")
		if !ok || err != nil || head.ID != "m1" || string(head.Body) != `{"id":"m1"}` {
			t.Fatalf("head: %+v %v %v", head, ok, err)
		}
		head.Attempts, head.Error = 1, "HTTP 500"
		if err := s.SaveAttempt(ctx, head); err != nil {
			t.Fatal(err)
		}
		if h, _, _ := s.Head(ctx, "wh_1"); h.Attempts != 1 || h.Error != "HTTP 500" {
			t.Fatalf("head after an attempt: %+v", h)
		}
		head.Status = notify.DeliveryDelivered
		if err := s.Finish(ctx, head, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, head, 10); err != nil { // not the head any more: nothing happens
			t.Fatal(err)
		}
		if h, _, _ := s.Head(ctx, "wh_1"); h.ID != "m2" {
			t.Fatalf("head after finishing m1: %+v", h)
		}
		ds, err := s.Deliveries(ctx, "wh_1", 10)
		if err != nil || len(ds) != 2 || ds[0].ID != "m2" || ds[0].Status != notify.DeliveryPending || ds[1].ID != "m1" || ds[1].Status != notify.DeliveryDelivered {
			t.Fatalf("deliveries: %+v %v", ds, err)
		}
		if n, err := s.FailPending(ctx, "wh_1", "disabled", now, 10); n != 1 || err != nil {
			t.Fatalf("fail pending: %d %v", n, err)
		}
		if _, ok, _ := s.Head(ctx, "wh_1"); ok {
			t.Fatal("a queue still has deliveries after FailPending")
		}
		if ds, _ := s.Deliveries(ctx, "wh_1", 1); len(ds) != 1 || ds[0].ID != "m2" || ds[0].Status != notify.DeliveryFailed || ds[0].Error != "disabled" {
			t.Fatalf("log after FailPending: %+v", ds)
		}

		// State survives reopening.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		if h, ok, err := s.Head(ctx, "wh_2"); !ok || err != nil || h.ID != "m1" {
			t.Fatalf("after reopening: head %+v %v %v", h, ok, err)
		}

		// Deprovisioning removes the tenant, its webhooks, queues and logs.
		existed, deleted, err := s.DeprovisionTenant(ctx, "t1")
		if !existed || err != nil || len(deleted) != 2 {
			t.Fatalf("deprovision: %v %+v %v", existed, deleted, err)
		}
		if ws, _ := s.Webhooks(ctx, "t1"); len(ws) != 0 {
			t.Fatalf("webhooks after deprovisioning: %+v", ws)
		}
		if _, ok, _ := s.Head(ctx, "wh_2"); ok {
			t.Fatal("a queue survived deprovisioning")
		}
		if ids, _ := s.PendingWebhooks(ctx); len(ids) != 0 {
			t.Fatalf("pending after deprovisioning: %v", ids)
		}
		if _, ok, _ := s.Tenant(ctx, "t1"); ok {
			t.Fatal("tenant survived deprovisioning")
		}
	})
}

func TestRedisStoreLeasesAndDeprovisionAnnouncements(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := notify.NewRedisStore(notify.RedisStoreOptions{URL: srv.URL()})
	b, _ := notify.NewRedisStore(notify.RedisStoreOptions{URL: srv.URL()})
	defer a.Close()
	defer b.Close()

	if ok, err := a.Lease(ctx, "wh", "node-a", time.Minute); !ok || err != nil {
		t.Fatalf("lease: %v %v", ok, err)
	}
	if ok, _ := b.Lease(ctx, "wh", "node-b", time.Minute); ok {
		t.Fatal("two nodes hold one lease")
	}
	if ok, _ := a.Lease(ctx, "wh", "node-a", time.Minute); !ok {
		t.Fatal("the holder cannot renew")
	}
	if err := b.Release(ctx, "wh", "node-b"); err != nil { // not the holder: no effect
		t.Fatal(err)
	}
	if ok, _ := b.Lease(ctx, "wh", "node-b", time.Minute); ok {
		t.Fatal("a non-holder released the lease")
	}
	_ = a.Release(ctx, "wh", "node-a")
	if ok, _ := b.Lease(ctx, "wh", "node-b", time.Minute); !ok {
		t.Fatal("the lease was not released")
	}

	got := make(chan string, 1)
	go func() { _ = b.WatchDeprovisioned(ctx, func(tenant string) { got <- tenant }) }()
	// The subscription is asynchronous: announce until it is heard.
	deadline := time.After(10 * time.Second)
	for {
		if _, _, err := a.DeprovisionTenant(ctx, "t-gone"); err != nil {
			t.Fatal(err)
		}
		select {
		case tenant := <-got:
			if tenant != "t-gone" {
				t.Fatalf("announced %q", tenant)
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("the deprovisioning was not announced")
		}
	}
}
