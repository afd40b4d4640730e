// Command bench is notifyhub's load tool. It opens many subscribed SignalR
// connections to a hub, publishes numbered, timestamped notifications through
// the internal API at a rate or in a burst, and reports what arrived: lost
// notifications, deliveries per second, deliveries per hub CPU-second,
// publish→receive latency and the hub's memory per connection.
//
//	go run ./testclient/cmd/bench -h
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
)

type config struct {
	hubURL, internalURL string
	secret              string
	clientToken         string
	publisherToken      string
	clientScope         string
	publishScope        string
	tokenTTL            time.Duration
	tenant              string
	users               int

	conns        int
	concurrency  int
	sources      string
	dialTimeout  time.Duration
	protocol     string
	negotiate    bool
	tokenInQuery bool

	subscribe string // event | filter
	event     string
	resource  string
	action    string

	rate         float64
	duration     time.Duration
	burst        int
	batch        int
	repeat       int
	payloadBytes int
	drain        time.Duration

	pid        int
	metricsURL string
	settle     time.Duration
	hold       time.Duration

	progress   time.Duration
	timeout    time.Duration
	json       bool
	cpuProfile string
}

func (c *config) filtered() bool      { return c.subscribe == "filter" }
func (c *config) resourceEvent() bool { return c.event == payloads.EventResourcesChanged }

func (c *config) actionNumber() payloads.Action {
	a, err := payloads.ParseAction(c.action)
	if err != nil {
		return payloads.ActionUpdated
	}
	return a
}

// subscription is the request every connection sends.
func (c *config) subscription() payloads.SubscriptionRequest {
	if !c.filtered() {
		return payloads.SubscriptionRequest{Event: c.event}
	}
	return payloads.SubscriptionRequest{Event: c.event, Resources: []payloads.SubscriptionRequestResource{
		{Name: c.resource, Actions: []string{c.action}},
	}}
}

const usageHead = `bench: load tool for notifyhub.

It opens -n subscribed SignalR connections (WebSockets, JSON or MessagePack)
to the hub, publishes notifications through the internal API and reports:
connections, the hub's memory per connection, delivered and lost
notifications, deliveries per second and per hub CPU-second, and
publish→receive latency (p50/p90/p99/max). Each notification carries its
sequence number in "r" and its send time in "ca" (nanoseconds).

Phases: connect (bounded concurrency, each connection subscribes), settle,
memory reading, then the publish phase -repeat times: a burst (-burst K
notifications in requests of -batch) or a steady rate (-rate per second for
-duration), each followed by up to -drain for the deliveries to arrive. With
neither -burst nor -rate it only measures connections (and holds them for
-hold). It always stops by itself: every phase is bounded, and -timeout
bounds the whole run.

Hub figures: with -pid (a hub on this machine) memory is VmRSS from
/proc/PID/status, CPU is utime+stime from /proc/PID/stat and write syscalls
(deliveries per write: how well the hub coalesces frames) come from
/proc/PID/io; otherwise the hub's own process_resident_memory_bytes and
process_cpu_seconds_total from -metrics. Heap, stacks and goroutines come
from -metrics.

Usage:
  go run ./testclient/cmd/bench [flags]

Flags:
`

const usageTail = `
Examples:
  # hub started with HUB_JWT_SECRET=s3cret HUB_ADDR=127.0.0.1:18080 HUB_INTERNAL_ADDR=127.0.0.1:18081
  # memory per idle subscribed connection
  bench -hub http://127.0.0.1:18080 -internal http://127.0.0.1:18081 -secret s3cret -n 10000 -pid $(pgrep -n notifyhub)
  # burst fan-out: 10k subscribers × 200 notifications in requests of 20
  bench ... -n 10000 -burst 200 -batch 20 -protocol messagepack
  # latency at a steady rate
  bench ... -n 1000 -rate 20 -duration 30s
`

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.hubURL, "hub", "http://127.0.0.1:8080"+server.HubPath, "hub URL: the public listener, with or without the hub path "+server.HubPath)
	fs.StringVar(&c.internalURL, "internal", "http://127.0.0.1:8081", "internal listener base URL (publish API, /metrics)")
	fs.StringVar(&c.secret, "secret", os.Getenv("HUB_JWT_SECRET"), "HS256 secret to mint the client and publisher tokens (default $HUB_JWT_SECRET); not needed with -token and -publisher-token")
	fs.StringVar(&c.clientToken, "token", "", "client JWT for every connection (instead of minting one with -secret)")
	fs.StringVar(&c.publisherToken, "publisher-token", "", "publisher JWT (instead of minting one with -secret)")
	fs.StringVar(&c.clientScope, "client-scope", "notifications.subscribe", "scope of minted client tokens (the hub's HUB_CLIENT_SCOPE)")
	fs.StringVar(&c.publishScope, "publish-scope", "notifications.publish", "scope of the minted publisher token (the hub's HUB_PUBLISH_SCOPE)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 24*time.Hour, "lifetime of minted tokens")
	fs.StringVar(&c.tenant, "tenant", "bench", "tenant of the connections and of the publishes")
	fs.IntVar(&c.users, "users", 0, "distinct users (token subjects) the minted client tokens spread the connections over, as hubs limit connections per user (0: one user per connection)")

	fs.IntVar(&c.conns, "n", 1000, "number of connections")
	fs.IntVar(&c.concurrency, "concurrency", 64, "connections being opened at the same time")
	fs.StringVar(&c.sources, "sources", "auto", "source addresses, spread round-robin so -n can exceed the ephemeral ports of one address: a count of loopback addresses from 127.0.0.1 (\"8\"), a range (\"127.0.0.2-127.0.0.9\"), a comma list, \"none\" (the kernel picks), or \"auto\" (one loopback address per 10,000 connections, at least 4, when the hub is on loopback; otherwise none)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 15*time.Second, "limit for one connection's connect, handshake and Subscribe")
	fs.StringVar(&c.protocol, "protocol", "json", "hub protocol: json or messagepack")
	fs.BoolVar(&c.negotiate, "negotiate", false, "negotiate before connecting the WebSocket (default: skipNegotiation, as the tool's connections are WebSocket-only)")
	fs.BoolVar(&c.tokenInQuery, "token-in-query", false, "send the client token as ?access_token= (as browsers do) instead of an Authorization header")

	fs.StringVar(&c.subscribe, "subscribe", "event", "what each connection subscribes to: \"event\" (the whole -event) or \"filter\" (-event, resource -resource, action -action); the tool publishes notifications that match")
	fs.StringVar(&c.event, "event", "", "event to subscribe to and publish (default "+payloads.EventLicenceActivated+", or "+payloads.EventResourcesChanged+" with -subscribe filter)")
	fs.StringVar(&c.resource, "resource", "bench.resource", "resource name of -subscribe filter (and of published "+payloads.EventResourcesChanged+" notifications)")
	fs.StringVar(&c.action, "action", "updated", "action of -subscribe filter: created, updated or deleted")

	fs.Float64Var(&c.rate, "rate", 0, "publish at this many notifications per second for -duration (steady mode)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of a steady publish phase")
	fs.IntVar(&c.burst, "burst", 0, "publish this many notifications back to back (burst mode; wins over -rate)")
	fs.IntVar(&c.batch, "batch", 20, "notifications per publish request (burst mode; the most a steady tick sends at once)")
	fs.IntVar(&c.repeat, "repeat", 1, "publish phases to run over the same connections (each is reported, and the medians)")
	fs.IntVar(&c.payloadBytes, "payload", 64, "padding bytes in each notification's payload")
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "after publishing, wait at most this long for outstanding deliveries")

	fs.IntVar(&c.pid, "pid", 0, "pid of the hub process on this machine, for VmRSS and CPU time from /proc (0: use -metrics)")
	fs.StringVar(&c.metricsURL, "metrics", "", "hub Prometheus URL (default: -internal + /metrics; \"none\" to skip)")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait after connecting before reading the hub's memory")
	fs.DurationVar(&c.hold, "hold", 0, "keep the connections open this long after the last phase (for profiling the hub)")

	fs.DurationVar(&c.progress, "progress", time.Second, "interval of the progress line on stderr (0: none)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "upper bound of the whole run")
	fs.BoolVar(&c.json, "json", false, "print the summary as JSON on stdout instead of a table")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the load tool's own CPU profile to this file (to check that the loader stays cheap)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageTail)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, c.check()
}

func (c *config) check() error {
	u, err := url.Parse(c.hubURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-hub %q: want an http(s) URL", c.hubURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = server.HubPath
	}
	c.hubURL = u.String()
	c.internalURL = strings.TrimSuffix(c.internalURL, "/")
	switch c.metricsURL {
	case "":
		c.metricsURL = c.internalURL + "/metrics"
	case "none":
		c.metricsURL = ""
	}
	if c.protocol != "json" && c.protocol != "messagepack" {
		return fmt.Errorf("-protocol %q: want json or messagepack", c.protocol)
	}
	if c.subscribe != "event" && c.subscribe != "filter" {
		return fmt.Errorf("-subscribe %q: want event or filter", c.subscribe)
	}
	if c.event == "" {
		c.event = eventFor(c.subscribe)
	}
	if _, err := payloads.ParseAction(c.action); err != nil {
		return fmt.Errorf("-action: %v", err)
	}
	if c.users < 0 {
		return errors.New("-users must not be negative")
	}
	if c.conns < 1 || c.concurrency < 1 || c.batch < 1 || c.repeat < 1 || c.payloadBytes < 0 {
		return errors.New("-n, -concurrency, -batch and -repeat must be positive, -payload not negative")
	}
	if c.rate < 0 || c.burst < 0 {
		return errors.New("-rate and -burst must not be negative")
	}
	if c.rate > 0 && c.burst == 0 && c.duration <= 0 {
		return errors.New("-duration must be positive with -rate")
	}
	if c.clientToken == "" && c.secret == "" {
		return errors.New("need -secret (or $HUB_JWT_SECRET) or -token")
	}
	if c.tokenTTL <= 0 {
		return errors.New("-token-ttl must be positive: the hub refuses tokens without exp")
	}
	if (c.burst > 0 || c.rate > 0) && c.publisherToken == "" && c.secret == "" {
		return errors.New("need -secret (or $HUB_JWT_SECRET) or -publisher-token to publish")
	}
	return nil
}

// sourceAddrs resolves -sources.
func (c *config) sourceAddrs() ([]net.IP, error) {
	spec := strings.TrimSpace(c.sources)
	switch spec {
	case "none", "":
		return nil, nil
	case "auto":
		u, _ := url.Parse(c.hubURL)
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil, nil
		}
		spec = fmt.Sprint(max(4, (c.conns+9999)/10000))
	}
	var n int
	if _, err := fmt.Sscanf(spec, "%d", &n); err == nil && fmt.Sprint(n) == spec {
		if n < 1 || n > 250 {
			return nil, fmt.Errorf("-sources %d: want 1..250 loopback addresses", n)
		}
		out := make([]net.IP, n)
		for i := range out {
			out[i] = net.IPv4(127, 0, 0, byte(1+i))
		}
		return out, nil
	}
	if from, to, ok := strings.Cut(spec, "-"); ok {
		a, b := net.ParseIP(strings.TrimSpace(from)).To4(), net.ParseIP(strings.TrimSpace(to)).To4()
		if a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, fmt.Errorf("-sources %q: want a range of IPv4 addresses that differ in the last byte", spec)
		}
		var out []net.IP
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)))
		}
		return out, nil
	}
	var out []net.IP
	for _, s := range strings.Split(spec, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("-sources: %q is not an IP address", s)
		}
		out = append(out, ip)
	}
	return out, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	res, err := run(ctx, cfg, os.Stderr)
	if res != nil {
		if cfg.json {
			if werr := res.writeJSON(os.Stdout); werr != nil {
				fmt.Fprintln(os.Stderr, "bench:", werr)
			}
		} else {
			res.writeTable(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
