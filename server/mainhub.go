package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"notifyhub/payloads"
	"notifyhub/server/signalr"
	"notifyhub/subscriptions"
)

// Hub method and client method names of the main hub.
const (
	methodSubscribe   = "Subscribe"
	methodUnsubscribe = "Unsubscribe"
	clientOnEvent     = "OnEvent"
)

// mainHub implements the Subscribe/Unsubscribe hub on top of the notify core.
type mainHub struct {
	*clients
	catalogue *payloads.Catalogue
	gate      eventGate
	channels  *channels
	rate      float64 // invocations per second per connection; 0: unlimited
	burst     int
}

// OnConnected implements signalr.Handler.
func (h *mainHub) OnConnected(c *signalr.Conn) error { return h.attach(c, clientOnEvent, argObject) }

// OnDisconnected implements signalr.Handler.
func (h *mainHub) OnDisconnected(c *signalr.Conn) { h.detach(c) }

// Invoke implements signalr.Handler. Method names match case-insensitively,
// as in ASP.NET Core.
func (h *mainHub) Invoke(c *signalr.Conn, target string, args []any) (any, error) {
	// Every invocation counts, known or not: each one costs a Completion.
	cl := c.UserData.(*client)
	if !cl.rate.allow(time.Now(), h.rate, h.burst) {
		h.rejected("rate_limited")
		return nil, fmt.Errorf("Failed to invoke '%s': rate limit exceeded (at most %g invocations per second).", target, h.rate)
	}
	var subscribe bool
	switch {
	case strings.EqualFold(target, methodSubscribe):
		subscribe = true
	case strings.EqualFold(target, methodUnsubscribe):
	case strings.EqualFold(target, methodSubscribeChannel):
		return h.invokeChannel(c, methodSubscribeChannel, args)
	case strings.EqualFold(target, methodUnsubscribeChannel):
		return h.invokeChannel(c, methodUnsubscribeChannel, args)
	default:
		return nil, fmt.Errorf("Failed to invoke '%s': the method does not exist. The hub has Subscribe, Unsubscribe, SubscribeChannel and UnsubscribeChannel.", target)
	}
	name := methodUnsubscribe
	if subscribe {
		name = methodSubscribe
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("Failed to invoke '%s': it takes 1 argument (the subscription request), got %d.", name, len(args))
	}
	raw, _ := args[0].(signalr.RawValue)
	var req payloads.SubscriptionRequest
	if err := c.Protocol().Unmarshal(raw, &req); err != nil || isNullArg(raw) {
		detail := "null"
		if err != nil {
			detail = err.Error()
		}
		return nil, fmt.Errorf("Failed to invoke '%s': the argument must be an object {e: event, r?: [{n: resource, a?: [actions]}]} (%s).", name, detail)
	}
	f, err := h.catalogue.Filter(&req)
	if err != nil {
		return nil, fmt.Errorf("Failed to invoke '%s': %v", name, err)
	}
	if subscribe {
		if err := h.gate.check(f.Event); err != nil {
			h.rejected("gated_event")
			return nil, fmt.Errorf("Failed to invoke '%s': %v.", name, err)
		}
	}
	if !subscribe {
		h.core.Unsubscribe(cl, f)
		return nil, nil
	}
	if _, err := h.core.Subscribe(cl, f); err != nil {
		if errors.Is(err, subscriptions.ErrTooManySubscriptions) {
			return nil, fmt.Errorf("Failed to invoke '%s': %v", name, err)
		}
		return nil, fmt.Errorf("Failed to invoke '%s' due to an error on the server.", name)
	}
	return nil, nil
}

// isNullArg reports whether a raw argument is null in either protocol.
func isNullArg(raw signalr.RawValue) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || (len(raw) == 1 && raw[0] == 0xc0)
}
