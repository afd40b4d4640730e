package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"notifyhub/payloads"
	"notifyhub/server"
	"notifyhub/testclient"
)

// startBinary builds and runs the real notifyhub binary with env, and returns
// it with its hub and internal URLs (read from its startup log) and stdout.
func startBinary(t *testing.T, env ...string) (cmd *exec.Cmd, hubURL, internalURL string, stdout *bufio.Reader) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "notifyhub")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(), "HUB_ADDR=127.0.0.1:0", "HUB_INTERNAL_ADDR=127.0.0.1:0")
	cmd.Env = append(cmd.Env, env...)
	stderr, _ := cmd.StderrPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logs := bufio.NewScanner(stderr)
	for logs.Scan() {
		var line struct{ Msg, Hub, Internal string }
		if json.Unmarshal(logs.Bytes(), &line) == nil && line.Msg == "notifyhub started" {
			hubURL, internalURL = line.Hub, line.Internal
			break
		}
	}
	if hubURL == "" {
		t.Fatal("the binary did not log its start")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	return cmd, hubURL, internalURL, bufio.NewReader(out)
}

func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	const secret = "binary-test-secret-0123456789"
	cmd, hubURL, internalURL, _ := startBinary(t, "HUB_JWT_SECRET="+secret)
	mint := func(r server.TokenRequest) string {
		tok, err := server.MintToken(secret, r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, hubURL, testclient.Options{Token: mint(server.TokenRequest{Subject: "u", Tenant: "t", Scopes: []string{"notifications.subscribe"}, TTL: time.Hour})})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated}); err != nil {
		t.Fatal(err)
	}
	pub := &testclient.Publisher{BaseURL: internalURL, Token: mint(server.TokenRequest{Subject: "svc", Scopes: []string{"notifications.publish"}, TTL: time.Hour})}
	var batch []any
	for range 50 {
		batch = append(batch, map[string]any{"e": payloads.EventLicenceActivated})
	}
	if res, err := pub.Publish(ctx, "t", batch); err != nil || res.Status != 202 {
		t.Fatalf("publish: %v %+v", err, res)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		select {
		case <-c.Events():
		case <-ctx.Done():
			t.Fatalf("%d of 50 accepted notifications arrived before shutdown", i)
		}
	}
	<-c.Done()
	if m := c.CloseMessage(); m == nil || !m.AllowReconnect {
		t.Fatalf("close message %+v, want allowReconnect", m)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}

func TestDevModePrintsWorkingTokens(t *testing.T) {
	_, hubURL, internalURL, stdout := startBinary(t, "HUB_JWT_SECRET=", "HUB_JWT_PUBLIC_KEY_FILE=")
	var clientTok, pubTok string
	for clientTok == "" || pubTok == "" {
		line, err := stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("banner ended early: %v", err)
		}
		if v, ok := strings.CutPrefix(line, "Client token:"); ok {
			clientTok = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Publisher token:"); ok {
			pubTok = strings.TrimSpace(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, hubURL, testclient.Options{Token: clientTok})
	if err != nil {
		t.Fatalf("printed client token: %v", err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, payloads.SubscriptionRequest{Event: payloads.EventLicenceActivated}); err != nil {
		t.Fatal(err)
	}
	pub := &testclient.Publisher{BaseURL: internalURL, Token: pubTok}
	if res, err := pub.Publish(ctx, "dev-tenant", map[string]any{"e": payloads.EventLicenceActivated, "p": map[string]any{"licence": "demo"}}); err != nil || res.Status != 202 {
		t.Fatalf("publish with the printed token: %v %+v", err, res)
	}
	select {
	case <-c.Events():
	case <-ctx.Done():
		t.Fatal("no notification")
	}
}
