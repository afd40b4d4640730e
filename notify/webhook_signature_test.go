package notify_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"notifyhub/notify"
)

// The reference vector published with the Standard Webhooks specification:
// receivers using its libraries verify notifyhub's signatures.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignatureMatchesTheStandardWebhooksVector(t *testing.T) {
	key, err := notify.ParseWebhookSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := notify.SignWebhook(key, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("signature %s, want %s", got, vectorSignature)
	}
}

func TestVerifyWebhook(t *testing.T) {
	at := time.Unix(vectorTimestamp, 0)
	headers := func(sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", vectorID)
		h.Set("webhook-timestamp", "1614265330")
		h.Set("webhook-signature", sig)
		return h
	}
	cases := []struct {
		name    string
		h       http.Header
		body    string
		now     time.Time
		wantErr string
	}{
		{"valid", headers(vectorSignature), vectorBody, at, ""},
		{"one of several (rotation)", headers("v1,bm9wZQ== " + vectorSignature), vectorBody, at.Add(time.Minute), ""},
		{"changed body", headers(vectorSignature), vectorBody + " ", at, "no webhook-signature matches"},
		{"replayed later", headers(vectorSignature), vectorBody, at.Add(10 * time.Minute), "away from now"},
		{"no signature", headers(""), vectorBody, at, "missing"},
	}
	for _, tc := range cases {
		err := notify.VerifyWebhook(vectorSecret, tc.h, []byte(tc.body), 5*time.Minute, tc.now)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestWebhookSecrets(t *testing.T) {
	s := notify.NewWebhookSecret()
	if _, err := notify.ParseWebhookSecret(s); err != nil || s == notify.NewWebhookSecret() {
		t.Fatalf("new secret %q: %v (or not random)", s, err)
	}
	for _, bad := range []string{"", "secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := notify.ParseWebhookSecret(bad); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}
