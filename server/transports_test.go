package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"notifyhub/server"
)

func TestTransportAndStatefulReconnectSettings(t *testing.T) {
	def := server.DefaultConfig()
	if want := []string{"WebSockets", "ServerSentEvents", "LongPolling"}; !reflect.DeepEqual(def.Transports, want) {
		t.Errorf("default transports %v, want %v", def.Transports, want)
	}
	if !def.StatefulReconnect || def.StatefulReconnectBuffer != 100_000 {
		t.Errorf("default stateful reconnect %v with %d bytes, want on with 100000", def.StatefulReconnect, def.StatefulReconnectBuffer)
	}
	env := map[string]string{
		"HUB_TRANSPORTS":                "WebSockets, LongPolling",
		"HUB_STATEFUL_RECONNECT":        "false",
		"HUB_STATEFUL_RECONNECT_BUFFER": "5000",
	}
	cfg, err := server.FromEnv(def, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Transports, []string{"WebSockets", "LongPolling"}) || cfg.StatefulReconnect || cfg.StatefulReconnectBuffer != 5000 {
		t.Errorf("from env: transports %v, stateful %v, buffer %d", cfg.Transports, cfg.StatefulReconnect, cfg.StatefulReconnectBuffer)
	}
	if _, err := server.FromEnv(def, func(k string) string {
		return map[string]string{"HUB_STATEFUL_RECONNECT_BUFFER": "lots"}[k]
	}); err == nil || !strings.Contains(err.Error(), "HUB_STATEFUL_RECONNECT_BUFFER") {
		t.Errorf("a bad buffer size: %v, want an error naming the variable", err)
	}

	bad := def
	bad.HubAddr, bad.InternalAddr, bad.JWTSecret = "127.0.0.1:0", "127.0.0.1:0", testSecret
	bad.Transports = []string{"WebSockets", "Carrier pigeon"}
	if srv, err := server.Start(context.Background(), bad, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		_ = srv.Shutdown(context.Background())
		t.Error("an unknown transport name must stop the start")
	} else if !strings.Contains(err.Error(), "Carrier pigeon") {
		t.Errorf("error %q does not name the unknown transport", err)
	}
}

func TestNegotiateOffersConfiguredTransports(t *testing.T) {
	type offer struct {
		UseStatefulReconnect bool `json:"useStatefulReconnect"`
		AvailableTransports  []struct {
			Transport       string   `json:"transport"`
			TransferFormats []string `json:"transferFormats"`
		} `json:"availableTransports"`
	}
	negotiate := func(t *testing.T, env *hubEnv) offer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, env.hubURL()+"/negotiate?negotiateVersion=1&useStatefulReconnect=true", nil)
		req.Header.Set("Authorization", "Bearer "+env.clientToken("t1"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var o offer
		if err := json.NewDecoder(res.Body).Decode(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := negotiate(t, startHub(t))
	var got []string
	for _, tr := range o.AvailableTransports {
		got = append(got, tr.Transport+":"+strings.Join(tr.TransferFormats, "+"))
	}
	if want := "WebSockets:Text+Binary ServerSentEvents:Text LongPolling:Text+Binary"; strings.Join(got, " ") != want || !o.UseStatefulReconnect {
		t.Errorf("default hub offers %v (stateful %v), want %s and stateful reconnect", got, o.UseStatefulReconnect, want)
	}

	o = negotiate(t, startHub(t, func(c *server.Config) { c.Transports = []string{"WebSockets"}; c.StatefulReconnect = false }))
	if len(o.AvailableTransports) != 1 || o.AvailableTransports[0].Transport != "WebSockets" || o.UseStatefulReconnect {
		t.Errorf("WebSockets-only hub without stateful reconnect offers %+v", o)
	}
}
