package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook requests are signed as the Standard Webhooks specification
// (standardwebhooks.com) says, so that receivers can verify them with its
// libraries in any language as well as by hand:
//
//	webhook-id:        the delivery's id, the same on every attempt
//	webhook-timestamp: the attempt's Unix time in seconds
//	webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
//
// where key is the base64-decoded part of the endpoint's secret after
// "whsec_".
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"

	secretPrefix = "whsec_"
)

// NewWebhookSecret returns a fresh endpoint secret: "whsec_" and 32 random
// bytes in base64.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseWebhookSecret checks a secret given by a tenant and returns its key.
func ParseWebhookSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New(`must start with "whsec_" followed by base64`)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New(`the part after "whsec_" must be standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the key must be 24 to 64 bytes, got %d", len(key))
	}
	return key, nil
}

// SignWebhook returns the webhook-signature value of body sent as id at ts.
func SignWebhook(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a received webhook request's headers and body against
// the endpoint's secret, as a Go receiver would; tolerance bounds the age
// (and the clock skew) of the timestamp, against replays.
func VerifyWebhook(secret string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseWebhookSecret(secret)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, tsText, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsText == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a Unix time in seconds")
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp is %v away from now", d.Round(time.Second))
	}
	want := SignWebhook(key, id, ts, body)
	// Several space-separated signatures may be sent (e.g. during a secret
	// rotation); one match is enough.
	for _, sig := range strings.Fields(sigs) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no webhook-signature matches")
}

// sortableID returns prefix and a 26-character id that sorts by creation
// time (milliseconds) and is unique (80 random bits).
func sortableID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return prefix + strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// NewWebhookID returns a new endpoint id.
func NewWebhookID(now time.Time) string { return sortableID("wh_", now) }

// newMessageID returns the id of one accepted notification's deliveries.
func newMessageID(now time.Time) string { return sortableID("msg_", now) }
