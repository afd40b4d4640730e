// Package testclient is a Go SignalR client for notifyhub: WebSockets with the
// JSON or MessagePack hub protocol, negotiated or with skipNegotiation. The
// Go tests, the load tool and operators' scripts use it; it speaks the wire
// exactly as the official clients do (handshake, pings, invocations).
package testclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"notifyhub/payloads"
	"notifyhub/server/signalr"
)

// Options configure a connection. The zero value connects with negotiation,
// the JSON protocol and no token.
type Options struct {
	Token           string           // sent as Authorization: Bearer
	TokenInQuery    bool             // send the token as ?access_token= instead, as browsers do
	Protocol        signalr.Protocol // default JSON
	SkipNegotiation bool             // connect the WebSocket directly, without negotiate
	LocalAddr       net.IP           // source address, to spread many connections over 127.0.0.x
	Events          int              // OnEvent buffer; default 1024. A full buffer blocks the reader.
	// OnEvent, when set, is called on the reader goroutine for every OnEvent
	// instead of queueing it on Events(). The Event's Arg is only valid
	// during the call (it points into the read buffer): copy what you keep.
	OnEvent func(Event)
	// Method is the client method notifications arrive as; default OnEvent
	// (stream endpoints use ReceiveMessage).
	Method string
}

// Event is one notification invocation as received.
type Event struct {
	Arg      signalr.RawValue // the notification, encoded in the connection's protocol
	Received time.Time
	proto    signalr.Protocol
}

// Decode binds the notification to v (for example a map or a struct with
// json/msgpack tags).
func (e Event) Decode(v any) error { return e.proto.Unmarshal(e.Arg, v) }

// Client is one hub connection.
type Client struct {
	ws     *websocket.Conn
	proto  signalr.Protocol
	events chan Event
	onEv   func(Event)
	method string

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	nextID  int
	pending map[string]chan signalr.Message
	closed  chan struct{}
	err     error // why the connection ended
	closeM  *signalr.Message
}

// HTTPError is a refused negotiate or upgrade.
type HTTPError struct {
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Body) }

// Dial connects to hubURL (e.g. http://127.0.0.1:8080/signalr/v1/mainHub)
// and completes the handshake.
func Dial(ctx context.Context, hubURL string, opts Options) (*Client, error) {
	if opts.Protocol == nil {
		opts.Protocol = signalr.JSONProtocol{}
	}
	if opts.Events <= 0 {
		opts.Events = 1024
	}
	if opts.Method == "" {
		opts.Method = "OnEvent"
	}
	u, err := url.Parse(hubURL)
	if err != nil {
		return nil, fmt.Errorf("hub URL: %w", err)
	}
	// Browsers send the token as a header on negotiate and in the query on the
	// WebSocket, which cannot carry headers there.
	header, wsHeader := http.Header{}, http.Header{}
	q := u.Query()
	if opts.Token != "" {
		header.Set("Authorization", "Bearer "+opts.Token)
		if opts.TokenInQuery {
			q.Set("access_token", opts.Token)
		} else {
			wsHeader = header
		}
	}
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}
	httpClient := http.DefaultClient
	if opts.LocalAddr != nil {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: opts.LocalAddr}, Timeout: 10 * time.Second}
		dialer.NetDialContext = nd.DialContext
		// This transport serves one negotiate: without DisableKeepAlives its
		// idle connection would stay open (on both ends) beside the WebSocket.
		httpClient = &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, DisableKeepAlives: true}}
	}
	if !opts.SkipNegotiation {
		token, err := negotiate(ctx, httpClient, *u, header)
		if err != nil {
			return nil, err
		}
		q.Set("id", token)
	}
	u.RawQuery = q.Encode()
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	ws, resp, err := dialer.DialContext(ctx, u.String(), wsHeader)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, &HTTPError{StatusCode: resp.StatusCode, Body: string(body)}
		}
		return nil, fmt.Errorf("connect WebSocket: %w", err)
	}
	c := &Client{
		ws:      ws,
		proto:   opts.Protocol,
		onEv:    opts.OnEvent,
		method:  opts.Method,
		pending: map[string]chan signalr.Message{},
		closed:  make(chan struct{}),
	}
	if c.onEv == nil {
		c.events = make(chan Event, opts.Events)
	}
	if err := c.handshake(ctx); err != nil {
		ws.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

func negotiate(ctx context.Context, hc *http.Client, u url.URL, header http.Header) (string, error) {
	u.Path = strings.TrimSuffix(u.Path, "/") + "/negotiate"
	q := u.Query()
	q.Set("negotiateVersion", "1")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header = header.Clone()
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("negotiate: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", &HTTPError{StatusCode: resp.StatusCode, Body: string(body)}
	}
	var n struct {
		ConnectionToken string `json:"connectionToken"`
		ConnectionID    string `json:"connectionId"`
		Error           string `json:"error"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return "", fmt.Errorf("negotiate response: %w", err)
	}
	if n.Error != "" {
		return "", fmt.Errorf("negotiate: %s", n.Error)
	}
	if n.ConnectionToken == "" {
		return n.ConnectionID, nil
	}
	return n.ConnectionToken, nil
}

func (c *Client) handshake(ctx context.Context) error {
	req := fmt.Sprintf(`{"protocol":%q,"version":1}`+"\x1e", c.proto.Name())
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.ws.SetReadDeadline(dl)
	} else {
		_ = c.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	}
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read handshake response: %w", err)
	}
	_ = c.ws.SetReadDeadline(time.Time{})
	i := bytes.IndexByte(data, 0x1e)
	if i < 0 {
		return errors.New("handshake response without record separator")
	}
	var resp struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(data[:i], &resp); err != nil {
		return fmt.Errorf("handshake response: %w", err)
	}
	if resp.Error != "" {
		return fmt.Errorf("handshake refused: %s", resp.Error)
	}
	if rest := data[i+1:]; len(rest) > 0 {
		return errors.New("handshake response shared its frame with other messages")
	}
	return nil
}

// readLoop reads WebSocket messages into one buffer that it reuses, so that
// a notification costs no allocation here: the load tool runs thousands of
// these loops beside the hub, and their CPU is measurement overhead.
func (c *Client) readLoop() {
	scan, _ := c.proto.(EventScanner)
	var buf []byte // unread bytes (an incomplete record) and then the new message
	for {
		_, r, err := c.ws.NextReader()
		if err == nil {
			b := bytes.NewBuffer(buf)
			_, err = b.ReadFrom(r)
			buf = b.Bytes()
		}
		if err != nil {
			c.fail(err)
			return
		}
		rest := buf
		for len(rest) > 0 {
			if scan != nil {
				if arg, n := scan.ScanEvent(rest, c.method); n > 0 {
					rest = rest[n:]
					c.event(arg)
					continue
				}
			}
			var m signalr.Message
			n, err := c.proto.ReadMessage(rest, 0, &m)
			if err != nil {
				c.fail(fmt.Errorf("read message: %w", err))
				return
			}
			if n == 0 {
				break
			}
			rest = rest[n:]
			c.handle(&m)
		}
		buf = buf[:copy(buf, rest)] // keep an incomplete record at the front
		if cap(buf) > 64<<10 {
			buf = append([]byte(nil), buf...) // do not keep what one large message grew
		}
	}
}

// EventScanner is an optional extension of Options.Protocol for load
// generators: ScanEvent returns the argument of an invocation of method (the
// client method notifications arrive as) at the start of buf and the
// record's length with its framing, without decoding it; n == 0 means "not
// such an invocation", and the record goes through ReadMessage.
type EventScanner interface {
	ScanEvent(buf []byte, method string) (arg []byte, n int)
}

func (c *Client) handle(m *signalr.Message) {
	switch m.Type {
	case signalr.TypeInvocation:
		if !strings.EqualFold(m.Target, c.method) || len(m.Arguments) != 1 {
			return
		}
		raw, _ := m.Arguments[0].(signalr.RawValue)
		c.event(raw)
	case signalr.TypeCompletion:
		c.mu.Lock()
		ch := c.pending[m.InvocationID]
		delete(c.pending, m.InvocationID)
		c.mu.Unlock()
		if ch != nil {
			ch <- *m
		}
	case signalr.TypeClose:
		c.mu.Lock()
		c.closeM = m
		c.mu.Unlock()
	}
}

// event hands one notification to OnEvent, or a copy of it to Events: arg
// points into the read buffer.
func (c *Client) event(arg []byte) {
	ev := Event{Arg: arg, Received: time.Now(), proto: c.proto}
	if c.onEv != nil {
		c.onEv(ev)
		return
	}
	ev.Arg = append(signalr.RawValue(nil), arg...)
	select {
	case c.events <- ev:
	case <-c.closed:
	}
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return
	default:
	}
	c.err = err
	close(c.closed)
	c.ws.Close()
}

// Events returns the received OnEvent notifications (unless Options.OnEvent is set).
func (c *Client) Events() <-chan Event { return c.events }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.closed }

// CloseMessage returns the Close message the server sent, if any.
func (c *Client) CloseMessage() *signalr.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeM
}

// Send writes one message (framed by the connection's protocol).
func (c *Client) Send(m *signalr.Message) error {
	frame, err := c.proto.AppendMessage(nil, m)
	if err != nil {
		return err
	}
	return c.SendRaw(frame)
}

// SendRaw writes bytes as one WebSocket message, as they are: for tests of
// malformed input.
func (c *Client) SendRaw(data []byte) error {
	op := websocket.TextMessage
	if c.proto.TransferFormat() == signalr.BinaryFormat {
		op = websocket.BinaryMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(op, data)
}

// InvokeError is a completion that carried an error.
type InvokeError struct{ Message string }

func (e *InvokeError) Error() string { return e.Message }

// Invoke calls a hub method and waits for its completion.
func (c *Client) Invoke(ctx context.Context, target string, args ...any) error {
	c.mu.Lock()
	id := strconv.Itoa(c.nextID)
	c.nextID++
	ch := make(chan signalr.Message, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	if args == nil {
		args = []any{}
	}
	if err := c.Send(&signalr.Message{Type: signalr.TypeInvocation, InvocationID: id, Target: target, Arguments: args}); err != nil {
		return fmt.Errorf("send %s: %w", target, err)
	}
	select {
	case m := <-ch:
		if m.Error != "" {
			return &InvokeError{m.Error}
		}
		return nil
	case <-c.closed:
		return fmt.Errorf("invoke %s: connection closed: %w", target, c.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe invokes the hub's Subscribe method.
func (c *Client) Subscribe(ctx context.Context, req payloads.SubscriptionRequest) error {
	return c.Invoke(ctx, "Subscribe", req)
}

// Unsubscribe invokes the hub's Unsubscribe method.
func (c *Client) Unsubscribe(ctx context.Context, req payloads.SubscriptionRequest) error {
	return c.Invoke(ctx, "Unsubscribe", req)
}

// Close sends a Close message and closes the socket.
func (c *Client) Close() error {
	_ = c.Send(&signalr.Message{Type: signalr.TypeClose})
	c.fail(errors.New("closed by the client"))
	return nil
}
