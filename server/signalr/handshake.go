package signalr

import (
	"encoding/json"
	"fmt"
)

// HandshakeRequest is the first message a client sends: which hub protocol and
// version it speaks. It is always JSON text ending in 0x1E, for every protocol.
type HandshakeRequest struct {
	Protocol string
	Version  int
}

// ReadHandshakeRequest parses a handshake request at the start of buf and
// returns how many bytes it used (0 when incomplete). Unknown properties are
// ignored, as ASP.NET Core does; protocol and version are required.
func ReadHandshakeRequest(buf []byte, maxSize int) (HandshakeRequest, int, error) {
	var req HandshakeRequest
	record, n, err := nextTextRecord(buf, maxSize)
	if err != nil || n == 0 {
		return req, n, err
	}
	var w struct {
		Protocol *string `json:"protocol"`
		Version  *int    `json:"version"`
	}
	if err := json.Unmarshal(record, &w); err != nil {
		return req, n, fmt.Errorf("%w: handshake request is not a JSON object: %v", ErrInvalidMessage, err)
	}
	if w.Protocol == nil {
		return req, n, fmt.Errorf("%w: handshake request has no protocol", ErrInvalidMessage)
	}
	if w.Version == nil {
		return req, n, fmt.Errorf("%w: handshake request has no version", ErrInvalidMessage)
	}
	req.Protocol, req.Version = *w.Protocol, *w.Version
	return req, n, nil
}

// handshakeOK is the success response: an empty JSON object.
var handshakeOK = []byte("{}\x1e")

// appendHandshakeError appends a handshake error response.
func appendHandshakeError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = appendJSONString(dst, msg)
	return append(dst, '}', recordSeparator)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}
