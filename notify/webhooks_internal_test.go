package notify

import (
	"testing"
	"time"

	"notifyhub/payloads"
)

func TestBackoffDoublesWithJitterUpToTheMaximum(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{Store: &BoltStore{}, RetryBase: time.Second, RetryMax: 10 * time.Second})
	for n, full := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 40: 10 * time.Second} {
		for range 100 {
			if got := d.backoff(n); got < full/2 || got > full {
				t.Fatalf("backoff after attempt %d: %v, want between %v and %v", n, got, full/2, full)
			}
		}
	}
}

func TestWebhookMatches(t *testing.T) {
	tickets := &payloads.Notification{Event: payloads.EventResourcesChanged, Routing: payloads.Routing{Resource: "tickets"}}
	licence := &payloads.Notification{Event: payloads.EventLicenceActivated}
	cases := []struct {
		w                Webhook
		tickets, licence bool
	}{
		{Webhook{}, true, true},
		{Webhook{Events: []string{payloads.EventResourcesChanged}}, true, false},
		{Webhook{Resources: []string{"tickets"}}, true, true},
		{Webhook{Resources: []string{"devices"}}, false, true},
		{Webhook{Events: []string{payloads.EventLicenceActivated}, Resources: []string{"tickets"}}, false, true},
	}
	for i, tc := range cases {
		if got := WebhookMatches(&tc.w, tickets); got != tc.tickets {
			t.Errorf("case %d, tickets: %v", i, got)
		}
		if got := WebhookMatches(&tc.w, licence); got != tc.licence {
			t.Errorf("case %d, licence: %v", i, got)
		}
	}
}
