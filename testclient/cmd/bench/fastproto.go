package main

import (
	"bytes"

	"notifyhub/server/signalr"
	"notifyhub/testclient"
)

var _ testclient.EventScanner = (*fastProtocol)(nil)

// fastProtocol is the hub protocol of the tool's connections: the real one,
// except that OnEvent invocations in exactly the form the hub writes them are
// cut out of the stream without decoding, so that the loader spends its CPU
// on counting rather than on parsing the envelope. Everything else (the
// handshake, completions, pings, Close, and OnEvent in any other form) goes
// through the real protocol.
type fastProtocol struct {
	signalr.Protocol
	binary bool
}

// The hub's encodings of an OnEvent invocation with one argument, around
// that argument.
var (
	jsonOnEventHead = []byte(`{"type":1,"target":"OnEvent","arguments":[`)
	jsonOnEventTail = []byte(`]}`)
	// [1, {}, nil, "OnEvent", [arg], []]
	msgpackOnEventHead = []byte{0x96, 0x01, 0x80, 0xc0, 0xa7, 'O', 'n', 'E', 'v', 'e', 'n', 't', 0x91}
	msgpackOnEventTail = []byte{0x90}
)

func newFastProtocol(p signalr.Protocol) *fastProtocol {
	return &fastProtocol{Protocol: p, binary: p.TransferFormat() == signalr.BinaryFormat}
}

// ReadMessage implements signalr.Protocol.
func (p *fastProtocol) ReadMessage(buf []byte, maxSize int, m *signalr.Message) (int, error) {
	if arg, n := p.onEvent(buf); n > 0 {
		*m = signalr.Message{Type: signalr.TypeInvocation, Target: "OnEvent", Arguments: []any{signalr.RawValue(arg)}}
		return n, nil
	}
	return p.Protocol.ReadMessage(buf, maxSize, m)
}

// ScanEvent implements testclient.EventScanner: the client takes OnEvent
// records straight from its read buffer, with no Message and no allocation.
func (p *fastProtocol) ScanEvent(buf []byte, method string) (arg []byte, n int) {
	if method != "OnEvent" {
		return nil, 0
	}
	return p.onEvent(buf)
}

// onEvent returns the argument of an OnEvent record at the start of buf and
// the record's length with its framing, or n == 0.
func (p *fastProtocol) onEvent(buf []byte) (arg []byte, n int) {
	var rec []byte
	if p.binary {
		size, k := 0, 0
		for shift := 0; k < len(buf) && k < 5; shift += 7 {
			b := buf[k]
			size |= int(b&0x7f) << shift
			k++
			if b < 0x80 {
				break
			}
		}
		if k == 0 || buf[k-1] >= 0x80 || len(buf)-k < size {
			return nil, 0
		}
		rec, n = buf[k:k+size], k+size
		if !bytes.HasPrefix(rec, msgpackOnEventHead) || !bytes.HasSuffix(rec, msgpackOnEventTail) || len(rec) <= len(msgpackOnEventHead)+len(msgpackOnEventTail) {
			return nil, 0
		}
		return rec[len(msgpackOnEventHead) : len(rec)-len(msgpackOnEventTail)], n
	}
	i := bytes.IndexByte(buf, 0x1e)
	if i < 0 {
		return nil, 0
	}
	rec, n = buf[:i], i+1
	if !bytes.HasPrefix(rec, jsonOnEventHead) || !bytes.HasSuffix(rec, jsonOnEventTail) || len(rec) <= len(jsonOnEventHead)+len(jsonOnEventTail) {
		return nil, 0
	}
	return rec[len(jsonOnEventHead) : len(rec)-len(jsonOnEventTail)], n
}
