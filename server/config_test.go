package server_test

import (
	"strings"
	"testing"
	"time"

	"notifyhub/server"
)

func TestFromEnvLimits(t *testing.T) {
	def := server.DefaultConfig()
	type limits struct {
		perTenant, perUser int
		rate               float64
		batch              int
	}
	got := func(c server.Config) limits {
		return limits{c.MaxConnectionsPerTenant, c.MaxConnectionsPerUser, c.InvocationRate, c.MaxBatch}
	}
	defaults := got(def)
	tests := []struct {
		name    string
		env     map[string]string
		want    limits
		wantErr string // "" for none
	}{
		{"unset: the defaults", nil, defaults, ""},
		{"tenant limit", map[string]string{"HUB_MAX_CONNECTIONS_PER_TENANT": "25"}, limits{25, def.MaxConnectionsPerUser, def.InvocationRate, def.MaxBatch}, ""},
		{"tenant limit 0 is unlimited", map[string]string{"HUB_MAX_CONNECTIONS_PER_TENANT": "0"}, limits{0, def.MaxConnectionsPerUser, def.InvocationRate, def.MaxBatch}, ""},
		{"user limit 0 is unlimited", map[string]string{"HUB_MAX_CONNECTIONS_PER_USER": "0"}, limits{def.MaxConnectionsPerTenant, 0, def.InvocationRate, def.MaxBatch}, ""},
		{"rate 0 is unlimited", map[string]string{"HUB_INVOCATION_RATE": "0"}, limits{def.MaxConnectionsPerTenant, def.MaxConnectionsPerUser, 0, def.MaxBatch}, ""},
		{"fractional rate", map[string]string{"HUB_INVOCATION_RATE": "2.5"}, limits{def.MaxConnectionsPerTenant, def.MaxConnectionsPerUser, 2.5, def.MaxBatch}, ""},
		{"negative tenant limit", map[string]string{"HUB_MAX_CONNECTIONS_PER_TENANT": "-1"}, defaults, `HUB_MAX_CONNECTIONS_PER_TENANT="-1": want 0 (unlimited) or a positive integer`},
		{"negative user limit", map[string]string{"HUB_MAX_CONNECTIONS_PER_USER": "-5"}, defaults, `HUB_MAX_CONNECTIONS_PER_USER="-5": want 0 (unlimited)`},
		{"not a number", map[string]string{"HUB_MAX_CONNECTIONS_PER_USER": "many"}, defaults, `HUB_MAX_CONNECTIONS_PER_USER="many"`},
		{"negative rate", map[string]string{"HUB_INVOCATION_RATE": "-1"}, defaults, `HUB_INVOCATION_RATE="-1": want 0 (unlimited) or a positive number`},
		{"NaN rate", map[string]string{"HUB_INVOCATION_RATE": "NaN"}, defaults, `HUB_INVOCATION_RATE="NaN"`},
		{"infinite rate", map[string]string{"HUB_INVOCATION_RATE": "+Inf"}, defaults, `HUB_INVOCATION_RATE="+Inf"`},
		// Limits without an "unlimited" still want a positive value.
		{"batch 0 is refused", map[string]string{"HUB_MAX_BATCH": "0"}, defaults, `HUB_MAX_BATCH="0": want a positive integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := server.FromEnv(def, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := got(cfg); g != tt.want {
				t.Fatalf("got %+v, want %+v", g, tt.want)
			}
		})
	}
}

func TestFromEnvListenerTimeouts(t *testing.T) {
	tests := []struct {
		env        map[string]string
		read, idle time.Duration
		wantErr    string
	}{
		{nil, 10 * time.Second, 2 * time.Minute, ""},
		{map[string]string{"HUB_READ_TIMEOUT": "5s", "HUB_IDLE_TIMEOUT": "30s"}, 5 * time.Second, 30 * time.Second, ""},
		{map[string]string{"HUB_READ_TIMEOUT": "0"}, 0, 0, `HUB_READ_TIMEOUT="0": want a positive duration`},
		{map[string]string{"HUB_IDLE_TIMEOUT": "soon"}, 0, 0, `HUB_IDLE_TIMEOUT="soon"`},
	}
	for _, tt := range tests {
		cfg, err := server.FromEnv(server.DefaultConfig(), func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one containing %q", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.ReadTimeout != tt.read || cfg.IdleTimeout != tt.idle {
			t.Errorf("%v: read %v idle %v (%v), want %v and %v", tt.env, cfg.ReadTimeout, cfg.IdleTimeout, err, tt.read, tt.idle)
		}
	}
}
