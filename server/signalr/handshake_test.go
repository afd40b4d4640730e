package signalr

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReadHandshakeRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		maxSize int
		want    HandshakeRequest
		n       int    // -1: the whole input
		err     string // substring; "" for success
		errIs   error
	}{
		{name: "json v1", in: `{"protocol":"json","version":1}` + "\x1e", want: HandshakeRequest{"json", 1}, n: -1},
		{name: "messagepack v1", in: `{"protocol":"messagepack","version":1}` + "\x1e", want: HandshakeRequest{"messagepack", 1}, n: -1},
		{name: "stateful reconnect asks v2", in: `{"protocol":"json","version":2}` + "\x1e", want: HandshakeRequest{"json", 2}, n: -1},
		{name: "order and extra properties", in: `{"version":1,"extra":{"a":[1]},"protocol":"json"}` + "\x1e", want: HandshakeRequest{"json", 1}, n: -1},
		{name: "whitespace", in: " {\n \"protocol\" : \"json\" , \"version\" : 1 }\r\n\x1e", want: HandshakeRequest{"json", 1}, n: -1},
		{name: "unknown protocol is the caller's business", in: `{"protocol":"xyz","version":9}` + "\x1e", want: HandshakeRequest{"xyz", 9}, n: -1},
		{name: "followed by a message", in: `{"protocol":"json","version":1}` + "\x1e" + `{"type":6}` + "\x1e",
			want: HandshakeRequest{"json", 1}, n: len(`{"protocol":"json","version":1}`) + 1},
		{name: "followed by binary frames", in: `{"protocol":"messagepack","version":1}` + "\x1e\x02\x91\x06",
			want: HandshakeRequest{"messagepack", 1}, n: len(`{"protocol":"messagepack","version":1}`) + 1},
		{name: "incomplete", in: `{"protocol":"json","version":1}`, n: 0},
		{name: "empty", in: ``, n: 0},
		{name: "at maxSize", in: `{"protocol":"json","version":1}` + "\x1e", maxSize: 31, want: HandshakeRequest{"json", 1}, n: -1},
		{name: "over maxSize", in: `{"protocol":"json","version":1}` + "\x1e", maxSize: 30, errIs: ErrMessageTooLarge},
		{name: "incomplete over maxSize", in: `{"protocol":"json","version":1`, maxSize: 10, errIs: ErrMessageTooLarge},

		{name: "missing protocol", in: `{"version":1}` + "\x1e", n: -1, err: "no protocol"},
		{name: "missing version", in: `{"protocol":"json"}` + "\x1e", n: -1, err: "no version"},
		{name: "null protocol", in: `{"protocol":null,"version":1}` + "\x1e", n: -1, err: "no protocol"},
		{name: "protocol not a string", in: `{"protocol":1,"version":1}` + "\x1e", n: -1, err: "not a JSON object"},
		{name: "version a string", in: `{"protocol":"json","version":"1"}` + "\x1e", n: -1, err: "not a JSON object"},
		{name: "version fractional", in: `{"protocol":"json","version":1.5}` + "\x1e", n: -1, err: "not a JSON object"},
		{name: "array", in: `["json",1]` + "\x1e", n: -1, err: "not a JSON object"},
		{name: "not JSON", in: `hello` + "\x1e", n: -1, err: "not a JSON object"},
		{name: "null", in: `null` + "\x1e", n: -1, err: "no protocol"},
		{name: "empty record", in: "\x1e", n: -1, err: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, n, err := ReadHandshakeRequest([]byte(tt.in), tt.maxSize)
			wantN := tt.n
			if wantN < 0 {
				wantN = len(tt.in)
			}
			switch {
			case tt.errIs != nil:
				if !errors.Is(err, tt.errIs) {
					t.Fatalf("err = %v, want %v", err, tt.errIs)
				}
				return
			case tt.err != "":
				if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrInvalidMessage containing %q", err, tt.err)
				}
				if n != wantN {
					t.Fatalf("n = %d, want %d: a bad request is still consumed", n, wantN)
				}
				return
			}
			if err != nil || n != wantN || req != tt.want {
				t.Fatalf("got %+v n=%d err=%v, want %+v n=%d", req, n, err, tt.want, wantN)
			}
		})
	}
}

// TestReadHandshakeRequestSplit feeds every prefix of a handshake request:
// incomplete until the separator arrives.
func TestReadHandshakeRequestSplit(t *testing.T) {
	in := []byte(`{"protocol":"messagepack","version":1}` + "\x1e")
	for cut := 0; cut < len(in); cut++ {
		if _, n, err := ReadHandshakeRequest(in[:cut], 1<<15); n != 0 || err != nil {
			t.Fatalf("cut %d: n=%d err=%v", cut, n, err)
		}
	}
	if req, n, err := ReadHandshakeRequest(in, 1<<15); err != nil || n != len(in) || req.Protocol != "messagepack" {
		t.Fatalf("whole: %+v n=%d err=%v", req, n, err)
	}
}

func TestHandshakeResponses(t *testing.T) {
	if string(handshakeOK) != "{}\x1e" {
		t.Fatalf("handshakeOK = %q", handshakeOK)
	}
	tests := []struct{ msg, want string }{
		{"The protocol 'xyz' is not supported.", `{"error":"The protocol 'xyz' is not supported."}` + "\x1e"},
		{`quote " and <tag> & newline` + "\n", `{"error":"quote \" and \u003ctag\u003e \u0026 newline\n"}` + "\x1e"},
	}
	for _, tt := range tests {
		got := appendHandshakeError([]byte("x"), tt.msg)
		if string(got) != "x"+tt.want {
			t.Errorf("appendHandshakeError(%q) = %q, want %q", tt.msg, got, "x"+tt.want)
		}
		// The error response is itself one text record a client can parse.
		record, n, err := nextTextRecord(got[1:], 0)
		if err != nil || n != len(got)-1 || bytes.IndexByte(record, recordSeparator) >= 0 {
			t.Errorf("error response is not one record: n=%d err=%v", n, err)
		}
	}
}

// FuzzReadHandshakeRequest reads arbitrary bytes as a handshake request: no
// panic, n and maxSize consistent with the first separator.
func FuzzReadHandshakeRequest(f *testing.F) {
	for _, s := range []string{
		`{"protocol":"json","version":1}` + "\x1e",
		`{"protocol":"messagepack","version":2}` + "\x1e\x02\x91\x06",
		`{"version":1,"protocol":"json","x":[{}]}` + "\x1e",
		`{"protocol":"json"}` + "\x1e",
		`{"protocol":1,"version":"1"}` + "\x1e",
		`{"protocol":"json","version":1}`,
		`null` + "\x1e",
		"\x1e",
		"",
	} {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 8)
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxSize int) {
		req, n, err := ReadHandshakeRequest(buf, maxSize)
		sep := bytes.IndexByte(buf, recordSeparator)
		switch {
		case errors.Is(err, ErrMessageTooLarge):
			if maxSize <= 0 {
				t.Fatal("too large without a limit")
			}
			if sep >= 0 && sep <= maxSize || sep < 0 && len(buf) <= maxSize {
				t.Fatalf("too large, but the record fits: sep=%d len=%d max=%d", sep, len(buf), maxSize)
			}
			return
		case n == 0:
			if err != nil || sep >= 0 {
				t.Fatalf("n=0 with err=%v, separator at %d", err, sep)
			}
			if maxSize > 0 && len(buf) > maxSize {
				t.Fatalf("waiting on %d bytes over maxSize %d", len(buf), maxSize)
			}
			return
		}
		if n != sep+1 {
			t.Fatalf("n=%d, separator at %d", n, sep)
		}
		if maxSize > 0 && sep > maxSize {
			t.Fatalf("record of %d bytes over maxSize %d", sep, maxSize)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("unexpected error %v", err)
			}
			if req != (HandshakeRequest{}) {
				t.Fatalf("request %+v returned with error %v", req, err)
			}
		}
	})
}
